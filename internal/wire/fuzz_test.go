package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seeds adds the rule table's messages and a few more, each as it is and
// with the invalidation fields renamed to an event's.
func seeds(add func(string)) {
	more := []string{
		`{"instanceId":"a","cacheKey":"k","metadata":"x,\"timestamp\":1","timestamp":5}`,
		`{"instanceId":"a","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"traceparent":"00-01-02-01"}}`,
		`{"instanceId":"a","event":"e","payload":{"trace":{"a":"b"}},"timestamp":5,"trace":{"a":"b"}}`,
		`{"instanceId":"a","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"a":"b","a":"c"}}`,
		`{"instanceId":"a","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"A":"b"}}`,
		`{"instanceId":"a","cacheKey":"k","metadata":,"timestamp":5}`,
		`{"instanceId":"a","cacheKey":"k","metadata": 1,"timestamp":5}`,
		`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":+5}`,
		`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":05}`,
		`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":-0}`,
		`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":-}`,
		`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":1234567890123456}`,
		`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":12345678901234567}`,
		`{"instanceId":"a","cacheKey":"k","metadata":{"timestamp":1},"timestamp":5}`,
		`{"instanceId":"a","cacheKey":"k","metadata":1,"x":"timestamp":5}`,
		`{"instanceId":"a","cacheKey":"é☃","metadata":1,"timestamp":5}`,
		`{"instanceId":"a","cacheKey":"k` + "\xff" + `","metadata":1,"timestamp":5}`,
		`{"instanceId":"a` + "\xff" + `","cacheKey":"k","metadata":1,"timestamp":5}`,
		`{"instanceId":"a","cacheKey":"user:[","metadata":1,"timestamp":5}`,
		`{"instanceId":"a","cacheKey":"k","metadata":[1,{"a":"}"}],"timestamp":5}  `,
		`{"instanceId":"a","cacheKey":"k","metadata":"\ud800","timestamp":5}`,
		`{"instanceId":"a","event":"t","payload":{"shard":3,"id":1234567890123456789},"timestamp":1700000000789}`,
		`{"instanceId":"a","event":"t","payload":"` + strings.Repeat("é", 100) + `","timestamp":1}`,
	}
	for _, r := range invalidationRules {
		more = append(more, r.msg)
	}
	for _, m := range more {
		add(m)
		add(strings.Replace(strings.Replace(m, `"cacheKey"`, `"event"`, 1), `"metadata"`, `"payload"`, -1))
	}
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	dec := func(b []byte) (any, bool) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	va, oka := dec(a)
	vb, okb := dec(b)
	return oka && okb && reflect.DeepEqual(va, vb)
}

// FuzzDecode: decoding never panics; an error wraps ErrMalformed; the fast
// path agrees with the slow one; and what is accepted is what
// encoding/json reads from the message, within the rules.
func FuzzDecode(f *testing.F) {
	seeds(func(s string) { f.Add(s) })
	f.Fuzz(func(t *testing.T, msg string) {
		var ref map[string]json.RawMessage
		refErr := json.Unmarshal([]byte(msg), &ref)
		refString := func(name string) string {
			var s string
			if err := json.Unmarshal(ref[name], &s); err != nil {
				t.Fatalf("%q: accepted, but encoding/json reads %s as %v", msg, name, err)
			}
			return s
		}
		checkCommon := func(id string, ts time.Time, rawName string, raw json.RawMessage, empty string) {
			if refErr != nil {
				t.Fatalf("%q: accepted, but encoding/json refuses it: %v", msg, refErr)
			}
			if id != refString("instanceId") || coord.ValidateName("id", id) != nil {
				t.Fatalf("%q: instance ID %q", msg, id)
			}
			if r := ref["timestamp"]; len(r) == 0 || string(r) == "null" {
				if !ts.IsZero() {
					t.Fatalf("%q: timestamp %v, want zero", msg, ts)
				}
			} else {
				var n float64
				if err := json.Unmarshal(r, &n); err != nil || math.Abs(n) > MaxTimestamp || math.Abs(float64(ts.UnixMilli())-n) >= 1.001 {
					t.Fatalf("%q: timestamp %v from %s", msg, ts.UnixMilli(), r)
				}
			}
			r := ref[rawName]
			if len(r) == 0 || sameJSON(r, []byte("null")) || sameJSON(r, []byte("{}")) {
				if string(raw) != empty {
					t.Fatalf("%q: empty %s decoded as %q", msg, rawName, raw)
				}
				return
			}
			if !sameJSON(raw, r) || !scanCompact(string(raw)) {
				t.Fatalf("%q: %s %q, encoding/json reads %s", msg, rawName, raw, r)
			}
		}
		for _, pattern := range []bool{false, true} {
			got, err := DecodeInvalidation(msg, pattern)
			slow, serr := decodeInvalidationSlow(msg, pattern)
			if (err == nil) != (serr == nil) || !reflect.DeepEqual(got, slow) {
				t.Fatalf("%q (pattern %v): fast %+v, %v; slow %+v, %v", msg, pattern, got, err, slow, serr)
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) || !errors.Is(err, coord.ErrInvalid) {
					t.Fatalf("%q: error %v", msg, err)
				}
				continue
			}
			checkCommon(got.InstanceID, got.Timestamp, "metadata", got.Metadata, "")
			if key := refString("cacheKey"); key != got.Key ||
				pattern && coord.ValidateGlob(key) != nil || !pattern && coord.ValidateName("key", key) != nil {
				t.Fatalf("%q: key %q", msg, got.Key)
			}
		}
		ev, err := DecodeEvent(msg)
		slow, serr := decodeEventSlow(msg)
		if (err == nil) != (serr == nil) || !reflect.DeepEqual(ev, slow) {
			t.Fatalf("event %q: fast %+v, %v; slow %+v, %v", msg, ev, err, slow, serr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%q: error %v", msg, err)
			}
			return
		}
		checkCommon(ev.InstanceID, ev.Timestamp, "payload", ev.Payload, "null")
		if topic := refString("event"); topic != ev.Topic || coord.ValidateName("topic", topic) != nil {
			t.Fatalf("%q: topic %q", msg, ev.Topic)
		}
	})
}

// FuzzRoundTrip: what a publisher may send decodes to what it sent, on
// both channels and as an event.
func FuzzRoundTrip(f *testing.F) {
	f.Add("node-1", "user:1", []byte(`{"reason":"update"}`), int64(1700000000123))
	f.Add("é☃", `quo"te\*`, []byte(`null`), int64(-1))
	f.Add("a", "k", []byte(` [1, {"a" : "\u00e9"}] `), int64(0))
	f.Add("a", "k[", []byte(nested(MaxDepth+1)), int64(MaxTimestamp))
	f.Fuzz(func(t *testing.T, id, key string, value []byte, ms int64) {
		if coord.ValidateName("id", id) != nil || coord.ValidateName("key", key) != nil {
			return
		}
		ms %= MaxTimestamp + 1
		raw, err := EncodeValue(json.RawMessage(value), 0)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("EncodeValue(%q): %v", value, err)
			}
			return
		}
		ts := time.UnixMilli(ms)
		want := Metadata(raw)
		msg := EncodeInvalidation(id, key, raw, ts)
		inv, err := DecodeInvalidation(string(msg), false)
		if err != nil || inv.InstanceID != id || inv.Key != key || !bytes.Equal(inv.Metadata, want) || inv.Timestamp.UnixMilli() != ms || inv.Kind != coord.KeyInvalidation {
			t.Fatalf("%s: %+v, %v", msg, inv, err)
		}
		if coord.ValidateGlob(key) == nil {
			inv, err := DecodeInvalidation(string(msg), true)
			if err != nil || inv.Key != key || inv.Kind != coord.PatternInvalidation {
				t.Fatalf("pattern %s: %+v, %v", msg, inv, err)
			}
		}
		msg = EncodeEvent(id, key, raw, ts)
		ev, err := DecodeEvent(string(msg))
		if err != nil || ev.InstanceID != id || ev.Topic != key || !bytes.Equal(ev.Payload, Payload(raw)) || ev.Timestamp.UnixMilli() != ms {
			t.Fatalf("%s: %+v, %v", msg, ev, err)
		}
		if bytes.Contains(msg, []byte(`"payload":null`)) {
			t.Fatalf("%s: null on the wire", msg)
		}
	})
}

// FuzzScanCompact: scanCompact accepts exactly the valid JSON that
// json.Compact leaves unchanged and that nests at most MaxDepth deep.
func FuzzScanCompact(f *testing.F) {
	for _, s := range []string{`{}`, `[1,{"a":"b"}]`, `{ }`, `"\u00e9"`, `1e5`, `-0`, nested(MaxDepth), nested(MaxDepth + 1), `{"a":1}x`, "\"\xff\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := scanCompact(s)
		var buf bytes.Buffer
		compact := json.Valid([]byte(s)) && json.Compact(&buf, []byte(s)) == nil && buf.String() == s
		if got && !compact {
			t.Fatalf("scanCompact(%q) accepts what is not valid compact JSON", s)
		}
		if !got && compact && depth(s) <= MaxDepth {
			t.Fatalf("scanCompact(%q) refuses valid compact JSON %d deep", s, depth(s))
		}
	})
}

// depth returns how deep arrays and objects nest in valid JSON s.
func depth(s string) int {
	d, max, in := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == '{' || c == '['):
			d++
			if d > max {
				max = d
			}
		case !in && (c == '}' || c == ']'):
			d--
		}
	}
	return max
}
