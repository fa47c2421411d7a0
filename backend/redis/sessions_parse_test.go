package redis

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// jsonSamples are stored values the scanner must judge as json.Valid
// does: valid ones it should take itself (scanned is true), invalid ones
// of every kind near them.
var jsonSamples = []struct {
	s       string
	scanned bool // valid, and accepted by scanJSON without json.Valid
}{
	// Scalars.
	{`""`, true}, {`"a"`, true}, {`"Ann Example"`, true}, {`"\u00e9"`, true}, {`"\uD83D\uDE00"`, true},
	{`"a\"b"`, true}, {`"\\"`, true}, {`"\/\b\f\n\r\t"`, true}, {`"é ü 日本"`, true}, {`"` + "\xff\xfe" + `"`, true},
	{`"` + "\x7f" + `"`, true}, {`"\u00E9"`, true},
	{`"`, false}, {`"a`, false}, {`a"`, false}, {`"\"`, false}, {`"\x"`, false}, {`"\u12"`, false},
	{`"\u12g4"`, false}, {`"\u"`, false}, {`"\U0041"`, false}, {`"a` + "\n" + `"`, false}, {`"` + "\x00" + `"`, false},
	{`"a"b"`, false}, {`"a""b"`, false}, {`'a'`, false},
	{`0`, true}, {`-0`, true}, {`1`, true}, {`-1`, true}, {`1234567890123456789`, true},
	{`123456789012345678901234567890`, true}, {`1.5`, true}, {`-0.5e+10`, true}, {`1e3`, true}, {`1E-3`, true},
	{`0.0`, true}, {`-0.0e0`, true}, {`2.25E+00`, true},
	{`01`, false}, {`-01`, false}, {`-`, false}, {`--1`, false}, {`+1`, false}, {`.5`, false}, {`1.`, false},
	{`1.e3`, false}, {`1e`, false}, {`1e+`, false}, {`1e+-3`, false}, {`0x10`, false}, {`1.5.5`, false},
	{`NaN`, false}, {`Infinity`, false}, {`-Infinity`, false}, {`1_000`, false},
	{`true`, true}, {`false`, true}, {`null`, true},
	{`nul`, false}, {`truee`, false}, {`True`, false}, {`nulll`, false}, {`fals`, false}, {`t`, false},
	// Whitespace and trailing garbage.
	{` 1`, true}, {`1 `, true}, {" \t\r\n1\n", true}, {` "a" `, true}, {"\v1", false}, {"1\f", false},
	{"\u00a01", false}, {`1 2`, false}, {`"a" "b"`, false}, {`1,`, false}, {`[1]]`, false}, {`{}}`, false},
	{`[1] x`, false}, {`null,`, false}, {``, false}, {` `, false}, {"\x00", false},
	// Arrays and objects.
	{`[]`, true}, {`{}`, true}, {`[ ]`, true}, {`{ }`, true}, {"[\n]", true}, {`["admin","dev"]`, true},
	{`[101,202,303]`, true}, {`{"theme":"dark","lang":"en"}`, true}, {`{"a":1}`, true},
	{` [ 1 , "x" , true , null , -0.5e+10 ] `, true}, {`{ "a" : [ ] , "b" : { } }`, true},
	{`[[1,[2,[3]]],{"a":{"b":{"c":[]}}}]`, true}, {`{"\u00e9\"":"\\"}`, true}, {`[{"":""}]`, true},
	{`{"a":1,"a":2}`, true}, {`[` + strings.Repeat(`"x",`, 100) + `"x"]`, true},
	{`[`, false}, {`]`, false}, {`[1,`, false}, {`[1,]`, false}, {`[,1]`, false}, {`[1 2]`, false},
	{`[1;2]`, false}, {`{`, false}, {`}`, false}, {`{"a"}`, false}, {`{"a":}`, false}, {`{"a":1,}`, false},
	{`{,"a":1}`, false}, {`{a:1}`, false}, {`{1:1}`, false}, {`{"a" 1}`, false}, {`{"a":1 "b":2}`, false},
	{`{"a"::1}`, false}, {`["a]`, false}, {`{"a":"b}`, false}, {`[}`, false}, {`{]`, false},
	{`[1]` + "\x00", false}, {`{"a":[1,2}`, false}, {`[{"a":1]}`, false}, {`{'a':1}`, false},
	// Nesting beyond the scanner's depth goes to json.Valid, which
	// accepts it.
	{strings.Repeat("[", maxScanDepth+1) + strings.Repeat("]", maxScanDepth+1), false},
	{strings.Repeat("[", maxScanDepth) + strings.Repeat("]", maxScanDepth), true},
	{strings.Repeat(`{"a":`, maxScanDepth+5) + "1" + strings.Repeat("}", maxScanDepth+5), false},
	{strings.Repeat("[", 20000) + strings.Repeat("]", 20000), false},
}

// TestValidJSONTricky: validJSON agrees with json.Valid on each sample,
// the scanner never accepts what json.Valid rejects, and it takes the
// valid values sessions hold without json.Valid.
func TestValidJSONTricky(t *testing.T) {
	for _, c := range jsonSamples {
		b := []byte(c.s)
		want := json.Valid(b)
		if got := validJSON(b); got != want {
			t.Errorf("validJSON(%.60q) = %v, json.Valid = %v", c.s, got, want)
		}
		scanned := scanJSON(b)
		if scanned && !want {
			t.Errorf("scanJSON(%.60q) accepts what json.Valid rejects", c.s)
		}
		if scanned != c.scanned {
			t.Errorf("scanJSON(%.60q) = %v, want %v", c.s, scanned, c.scanned)
		}
	}
}

// FuzzValidJSON: validJSON is json.Valid, and the scanner never accepts
// what json.Valid rejects.
func FuzzValidJSON(f *testing.F) {
	for _, c := range jsonSamples {
		if len(c.s) < 1000 {
			f.Add([]byte(c.s))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b)
		if got := validJSON(b); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid = %v", b, got, want)
		}
		if scanJSON(b) && !want {
			t.Errorf("scanJSON(%q) accepts what json.Valid rejects", b)
		}
	})
}

// BenchmarkValidJSON: the ten values of the benchmark program's session.
func BenchmarkValidJSON(b *testing.B) {
	values := [][]byte{
		[]byte(`"Ann Example"`), []byte(`"ann@example.com"`), []byte(`1234567890123456789`),
		[]byte(`["admin","dev"]`), []byte(`{"lang":"en","theme":"dark"}`), []byte(`42`), []byte(`true`),
		[]byte(`"en-GB"`), []byte(`[101,202,303]`), []byte(`"pro"`),
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, v := range values {
			if !validJSON(v) {
				b.Fatalf("%s", v)
			}
		}
	}
}

// benchFields is the hash of the benchmark program's session: six meta
// fields and ten data fields of mixed types.
func benchFields() map[string]string {
	return map[string]string{
		"_u": "user-1", "_c": "1700000000000", "_a": "1700000000000", "_e": "1700086400000", "_x": "0", "_i": "86400000",
		"d:name": `"Ann Example"`, "d:email": `"ann@example.com"`, "d:id": "1234567890123456789",
		"d:roles": `["admin","dev"]`, "d:prefs": `{"lang":"en","theme":"dark"}`, "d:visits": "42",
		"d:verified": "true", "d:locale": `"en-GB"`, "d:cart": "[101,202,303]", "d:plan": `"pro"`,
	}
}

// BenchmarkParseTen: parseSession alone on the benchmark program's
// session.
func BenchmarkParseTen(b *testing.B) {
	fields := benchFields()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseSession(fields, "", "h"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseMillis: parseMillis accepts exactly what the scripts accept
// (session_lib.lua's num): 1 to 15 ASCII digits, nothing else, with the
// value strconv.ParseInt gives them.
func TestParseMillis(t *testing.T) {
	for _, s := range []string{
		"0", "1", "1700000000000", "999999999999999", "1000000000000000", "999999999999999999",
		"9223372036854775807", "9223372036854775808", "00012", "000000000000012", "+5", "-0", "-5", "",
		" 1", "1 ", "1e3", "1.0", "0x10", "١٢", strings.Repeat("9", 30),
	} {
		n, ok := parseMillis(s)
		want, err := strconv.ParseInt(s, 10, 64)
		digits := len(s) >= 1 && len(s) <= 15 && strings.Trim(s, "0123456789") == ""
		wantOK := err == nil && digits
		if ok != wantOK || (ok && n != want) {
			t.Errorf("parseMillis(%q) = %d, %v; want %d, %v", s, n, ok, want, wantOK)
		}
	}
}
