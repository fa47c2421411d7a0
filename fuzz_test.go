package coord_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cgn-bot/coord"
)

// The fuzz targets of this file check that the validation, glob and
// payload helpers of package coord refuse what they must with an error
// wrapping coord.ErrInvalid and never panic. Seeds are here and in
// testdata/fuzz/<target>/; reliability/fuzz.sh runs each target for a
// short time. The targets of the backends (session tokens, URLs, wire
// messages) are in the packages they fuzz.

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"", "a", "user:1", "{tag}:a}b{c", "a\nb", "a\r\nb", "nul\x00", "del\x7f", "\xff\xfe",
		"ключ:☃:名前", strings.Repeat("x", coord.MaxNameLen), strings.Repeat("x", coord.MaxNameLen+1), "glob*?[x]\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := coord.ValidateName("name", name)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("ValidateName(%q) = %v, which does not wrap ErrInvalid", name, err)
			}
			return
		}
		if name == "" || len(name) > coord.MaxNameLen || !utf8.ValidString(name) {
			t.Fatalf("ValidateName accepted %q (%d bytes)", name, len(name))
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("ValidateName accepted %q with control byte %#x", name, c)
			}
		}
	})
}

func FuzzValidateGlob(f *testing.F) {
	for _, s := range []string{"*", "user:*", "a[bc]d", "a[^b]", "a\\[", "[]]", "x[a-z]*", "a\\\\", "", "a[bc", "[", "a\\",
		"x[\\]", "a\nb", "[^", "[\\", "\\[]"} {
		f.Add(s, "user:1")
	}
	f.Fuzz(func(t *testing.T, glob, s string) {
		err := coord.ValidateGlob(glob)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("ValidateGlob(%q) = %v, which does not wrap ErrInvalid", glob, err)
			}
			return
		}
		if err := coord.ValidateName("glob", glob); err != nil {
			t.Fatalf("ValidateGlob accepted %q, which is not a valid name: %v", glob, err)
		}
		coord.MatchGlob(glob, s) // must not panic
	})
}

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

func FuzzEncodePayload(f *testing.F) {
	for _, s := range []string{`null`, `{"a":1}`, ` [1, 2 ,3] `, `"\u2028"`, `{"a":`, `1e999`, `123456789012345678901234567890`,
		"\xff", `{"a":1}{"b":2}`, ``, `"é😀"`, `{"a":{"b":{"c":[[[[]]]]}}}`} {
		f.Add([]byte(s), 0)
	}
	f.Add([]byte(`{"a":"bbbbbbbbbb"}`), 8)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		out, err := coord.EncodePayload(json.RawMessage(data), max)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("EncodePayload(raw %q) = %v, which does not wrap ErrInvalid", data, err)
			}
		} else {
			if !json.Valid(out) {
				t.Fatalf("EncodePayload(raw %q) = %q, not valid JSON", data, out)
			}
			var want bytes.Buffer
			if err := json.Compact(&want, data); err != nil || !bytes.Equal(out, want.Bytes()) {
				t.Fatalf("EncodePayload(raw %q) = %q, want the compact form %q", data, out, want.Bytes())
			}
			if lim := max; lim > 0 && len(data) > lim {
				t.Fatalf("EncodePayload(raw %q, %d) accepted %d bytes", data, max, len(data))
			}
		}
		// Any Go string round-trips (invalid UTF-8 is replaced, as
		// encoding/json does).
		s := string(data)
		out, err = coord.EncodePayload(s, 0)
		if err != nil {
			t.Fatalf("EncodePayload(string %q) = %v", s, err)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("EncodePayload(string %q) = %q, which does not decode: %v", s, out, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("EncodePayload(string %q) decodes to %q", s, back)
		}
		// Marshalled values (here a RawMessage inside a struct) come out
		// valid and compact without a second pass.
		if json.Valid(data) {
			out, err := coord.EncodePayload(struct {
				R json.RawMessage `json:"r"`
			}{data}, 0)
			if err != nil {
				t.Fatalf("EncodePayload(struct with raw %q) = %v", data, err)
			}
			var compact bytes.Buffer
			if !json.Valid(out) || json.Compact(&compact, out) != nil || !bytes.Equal(compact.Bytes(), out) {
				t.Fatalf("EncodePayload(struct with raw %q) = %q, not valid compact JSON", data, out)
			}
		}
	})
}

func FuzzEncodeData(f *testing.F) {
	f.Add("user", []byte(`{"id":123456789012345678}`), false)
	f.Add("k", []byte(`null`), true)
	f.Add("k", []byte(`null`), false)
	f.Add("", []byte(`1`), false)
	f.Add("a\nb", []byte(`1`), false)
	f.Add("k", []byte(`{`), true)
	f.Fuzz(func(t *testing.T, key string, value []byte, allowDelete bool) {
		data := map[string]any{key: json.RawMessage(value), "fixed": 1}
		sets, deletes, err := coord.EncodeData(data, allowDelete, 0)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("EncodeData(%q: %q) = %v, which does not wrap ErrInvalid", key, value, err)
			}
			return
		}
		for k, v := range sets {
			if coord.ValidateName("key", k) != nil {
				t.Fatalf("EncodeData set invalid key %q", k)
			}
			if !json.Valid(v) || string(v) == "null" {
				t.Fatalf("EncodeData set %q to %q", k, v)
			}
		}
		if !allowDelete && len(deletes) > 0 {
			t.Fatalf("EncodeData returned deletes %q without allowDelete", deletes)
		}
		if _, ok := sets[key]; !ok && !(allowDelete && len(deletes) == 1 && deletes[0] == key) && key != "fixed" {
			if !bytes.Equal(bytes.TrimSpace(value), []byte("null")) {
				t.Fatalf("EncodeData dropped %q: %q", key, value)
			}
		}
	})
}
