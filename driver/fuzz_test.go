package driver_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"", "a", "user:1", "{tag}:a}b{c", "a\nb", "a\r\nb", "nul\x00", "del\x7f", "\xff\xfe",
		"ключ:☃:名前", strings.Repeat("x", coord.MaxNameLen), strings.Repeat("x", coord.MaxNameLen+1), "glob*?[x]\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := driver.ValidateName("name", name)
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
		err := driver.ValidateGlob(glob)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("ValidateGlob(%q) = %v, which does not wrap ErrInvalid", glob, err)
			}
			return
		}
		if err := driver.ValidateName("glob", glob); err != nil {
			t.Fatalf("ValidateGlob accepted %q, which is not a valid name: %v", glob, err)
		}
		coord.MatchGlob(glob, s) // must not panic
	})
}

func FuzzEncodePayload(f *testing.F) {
	for _, s := range []string{`null`, `{"a":1}`, ` [1, 2 ,3] `, `"\u2028"`, `{"a":`, `1e999`, `123456789012345678901234567890`,
		"\xff", `{"a":1}{"b":2}`, ``, `"é😀"`, `{"a":{"b":{"c":[[[[]]]]}}}`} {
		f.Add([]byte(s), 0)
	}
	f.Add([]byte(`{"a":"bbbbbbbbbb"}`), 8)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		out, err := driver.EncodePayload(json.RawMessage(data), max)
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
		out, err = driver.EncodePayload(s, 0)
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
			out, err := driver.EncodePayload(struct {
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
		sets, deletes, err := driver.EncodeData(data, allowDelete, 0)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("EncodeData(%q: %q) = %v, which does not wrap ErrInvalid", key, value, err)
			}
			return
		}
		for k, v := range sets {
			if driver.ValidateName("key", k) != nil {
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
