package redis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

func BenchmarkParseSession(b *testing.B) {
	token := secret.SessionToken()
	fields := map[string]string{
		"_u": "user-1", "_c": "1700000000000", "_a": "1700000000000", "_e": "1700086400000", "_x": "0", "_i": "86400000",
		"d:name": `"Ann"`, "d:id": "1234567890123456789", "d:roles": `["admin","dev"]`, "d:prefs": `{"lang":"en","theme":"dark"}`, "d:n": "3",
	}
	b.ReportAllocs()
	for b.Loop() {
		if !secret.ValidSessionToken(token) {
			b.Fatal("bad token")
		}
		h := secret.Handle(token)
		if _, err := parseSession(fields, token, h); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValidJSON(t *testing.T) {
	for _, s := range []string{
		`""`, `"a"`, `"\u00e9"`, `"a\"b"`, `"` + "\xff" + `"`, `"a` + "\n" + `"`, `"`, `"a`, `a"`,
		`0`, `-0`, `01`, `-`, `-1`, `123456789012345678901234567890`, `1.5`, `1e3`, `1 `, ` 1`, `--1`,
		`true`, `false`, `null`, `nul`, `truee`, `{}`, `[]`, `{"a":1}`, `[1,`, ``, ` `,
	} {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid = %v", s, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"", "a", "a b", "ключ", "a\x00", "a\x7f", "\xff", strings.Repeat("a", coord.MaxNameLen), strings.Repeat("a", coord.MaxNameLen+1), "tab\t", "é\n"} {
		if got, want := validName(s), driver.ValidateName("x", s) == nil; got != want {
			t.Errorf("validName(%q) = %v, want %v", s, got, want)
		}
	}
}
