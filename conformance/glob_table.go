package conformance

// globKeys are the keys the glob case subscribes to, one subscription
// (OnlyKey) each.
var globKeys = []string{
	"user:1", "user:12", "user:", "user:a/b", "users:1", "session:1",
	"user:a", "user:b", "user:c", "user:d", "user:*", "user:?", "user:]",
	"user:-", "a/b/x", "hello", "hallo", "hxllo", "hllo", "heeeello",
}

// globCases lists patterns and exactly the keys of globKeys each matches
// under Redis's glob rules (stringmatchlen), which differ from path.Match:
// '*' crosses '/', ranges may be reversed, '\' escapes inside and outside
// classes.
var globCases = []struct {
	pattern string
	matches []string
}{
	{`user:*`, []string{"user:1", "user:12", "user:", "user:a/b", "user:a", "user:b", "user:c", "user:d", "user:*", "user:?", "user:]", "user:-"}},
	{`user:?`, []string{"user:1", "user:a", "user:b", "user:c", "user:d", "user:*", "user:?", "user:]", "user:-"}},
	{`user:??`, []string{"user:12"}},
	{`user:[ab]`, []string{"user:a", "user:b"}},
	{`user:[^a]`, []string{"user:1", "user:b", "user:c", "user:d", "user:*", "user:?", "user:]", "user:-"}},
	{`user:[a-c]`, []string{"user:a", "user:b", "user:c"}},
	{`user:[c-a]`, []string{"user:a", "user:b", "user:c"}},
	{`user:[\]]`, []string{"user:]"}},
	{`user:[a\-]`, []string{"user:a", "user:-"}},
	{`user:\*`, []string{"user:*"}},
	{`user:\?`, []string{"user:?"}},
	{`user:\a`, []string{"user:a"}},
	{`*/x`, []string{"a/b/x"}},
	{`*:1`, []string{"user:1", "users:1", "session:1"}},
	{`h?llo`, []string{"hello", "hallo", "hxllo"}},
	{`h*llo`, []string{"hello", "hallo", "hxllo", "hllo", "heeeello"}},
	{`h[ae]llo`, []string{"hello", "hallo"}},
	{`h[^e]llo`, []string{"hallo", "hxllo"}},
	{`h[a-b]llo`, []string{"hallo"}},
	{`user:1*`, []string{"user:1", "user:12"}},
	{`*`, globKeys},
	{`nomatch*`, nil},
}
