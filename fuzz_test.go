package coord_test

import (
	"strings"
	"testing"

	"github.com/cgn-bot/coord"
)

// The fuzz target of this file checks coord's glob matcher; the targets
// of validation and encoding are in package driver, those of the backends
// (session tokens, URLs, wire messages) in the packages they fuzz. Seeds
// are here and in testdata/fuzz/<target>/; reliability/fuzz.sh runs each
// target for a short time.

// escapeGlob returns a pattern that matches exactly s.
func escapeGlob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func FuzzMatchGlob(f *testing.F) {
	for _, c := range [][2]string{
		{"*", "a/b"}, {"h?llo", "hello"}, {"h[^e]llo", "hallo"}, {"[a-", "a"}, {"[", "["}, {"\\", "\\"},
		{"a*b*c*d", "abcabcabcd"}, {"[c-a]", "b"}, {"[\\]]", "]"}, {"*\xff*", "\xff"}, {"[\x80-\xff]", "\x90"},
		{"**", ""}, {"?", ""}, {"a[", "a"}, {"[^", "x"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		coord.MatchGlob(pattern, s) // must not panic, whatever the pattern
		if !coord.MatchGlob(escapeGlob(s), s) {
			t.Fatalf("the escaped pattern %q does not match %q", escapeGlob(s), s)
		}
		// Redis's matcher (and so MatchGlob) never matches the empty
		// string, not even with "*"; names are never empty.
		if len(s) > 0 && !coord.MatchGlob("*", s) {
			t.Fatalf(`"*" does not match %q`, s)
		}
		if len(s) > 0 && !coord.MatchGlob(strings.Repeat("?", len(s)), s) {
			t.Fatalf("%d '?' do not match %q", len(s), s)
		}
		if coord.MatchGlob(escapeGlob(s)+"?", s) {
			t.Fatalf("%q matches %q, one byte longer than it", escapeGlob(s)+"?", s)
		}
	})
}
