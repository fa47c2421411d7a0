package redis

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

var wireSamples = []string{
	`{"instanceId":"bot-1-2-abc","cacheKey":"user:1","metadata":{"by":"node"},"timestamp":1700000000123}`,
	`{"instanceId":"bot-1-2-abc","cacheKey":"user:*","metadata":null,"timestamp":1700000000123}`,
	`{"instanceId":"a","cacheKey":"k","metadata":"x,\"timestamp\":1","timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":5,"extra":1}`,
	`{"instanceId":"a","cacheKey":"k","metadata":,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k","metadata": 1,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1 ,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":+5}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":05}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":-5}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":-05}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":-0}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":-}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":0}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":123456789012345678}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":1234567890123456789}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":12345678901234567890}`,
	`{"instanceId":"a","cacheKey":"k","metadata":{"timestamp":1},"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":5,"timestamp":6}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"x":"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k` + "\x7f" + `","metadata":1,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"é☃","metadata":1,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k","metadata":1,"timestamp":1.5}`,
	`{"instanceId":"a","cacheKey":"k\u0041","metadata":1,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k` + "\xff" + `","metadata":1,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k` + "\t" + `","metadata":1,"timestamp":5}`,
	`{"instanceId":"","cacheKey":"k","metadata":1,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"","metadata":1,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"user:[","metadata":1,"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k","metadata":[1,{"a":"}"}],"timestamp":5}`,
	`{"instanceId":"a","cacheKey":"k","metadata":{"a":1},"timestamp":5}  `,
	`{"instanceId":"a","cacheKey":"k","metadata":{"a":1}}`,
	`{"cacheKey":"k","instanceId":"a","metadata":{"a":1},"timestamp":5}`,
	`{"instanceId":"a","event":"t","payload":{"shard":3,"id":1234567890123456789},"timestamp":1700000000789}`,
	`{"instanceId":"a","event":"","payload":1,"timestamp":1}`,
	`{"instanceId":"a","event":"t","payload":"` + strings.Repeat("é", 100) + `","timestamp":1}`,
	`not json`, `""`, `[1,2]`, `{}`,
}

// TestFastEnvelopeMatchesEncodingJSON: the fast path decodes exactly as
// encoding/json does, or leaves the message to it.
func TestFastEnvelopeMatchesEncodingJSON(t *testing.T) {
	norm := func(raw json.RawMessage) string {
		if len(raw) == 0 {
			return ""
		}
		return string(raw)
	}
	for _, m := range wireSamples {
		for _, pattern := range []bool{false, true} {
			fast, ferr := decodeInvalidation(m, pattern)
			slow, serr := decodeInvalidationSlow(m, pattern)
			if (ferr == nil) != (serr == nil) || fast.Key != slow.Key || fast.InstanceID != slow.InstanceID ||
				!fast.Timestamp.Equal(slow.Timestamp) || fast.Kind != slow.Kind || norm(fast.Metadata) != norm(slow.Metadata) {
				t.Errorf("invalidation %q (pattern %v): fast %+v, %v; slow %+v, %v", m, pattern, fast, ferr, slow, serr)
			}
		}
		fast, ferr := decodeEvent(m)
		slow, serr := decodeEventSlow(m)
		if (ferr == nil) != (serr == nil) || !reflect.DeepEqual(fast, slow) && !(fast.Topic == slow.Topic && string(fast.Payload) == string(slow.Payload) && fast.Timestamp.Equal(slow.Timestamp)) {
			t.Errorf("event %q: fast %+v, %v; slow %+v, %v", m, fast, ferr, slow, serr)
		}
	}
}

// FuzzDecode: decoding never panics and the fast path agrees with
// encoding/json.
func FuzzDecode(f *testing.F) {
	for _, m := range wireSamples {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, m string) {
		fast, ferr := decodeInvalidation(m, false)
		slow, serr := decodeInvalidationSlow(m, false)
		if (ferr == nil) != (serr == nil) || fast.Key != slow.Key || fast.InstanceID != slow.InstanceID {
			t.Errorf("%q: fast %+v, %v; slow %+v, %v", m, fast, ferr, slow, serr)
		}
		ev, eerr := decodeEvent(m)
		evs, eserr := decodeEventSlow(m)
		if (eerr == nil) != (eserr == nil) || ev.Topic != evs.Topic {
			t.Errorf("event %q: fast %+v, %v; slow %+v, %v", m, ev, eerr, evs, eserr)
		}
	})
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, key := range []string{"user:1", `quote"back\slash`, "tab\tnl\n", "é☃", "<&>"} {
		msg := encodeInvalidation("id-1", key, json.RawMessage(`{"a":1}`), time.UnixMilli(42))
		if !json.Valid(msg) {
			t.Fatalf("%q: invalid JSON %s", key, msg)
		}
		inv, err := decodeInvalidationSlow(string(msg), false)
		if key == "tab\tnl\n" {
			continue // not a valid key, but the encoding must still be JSON
		}
		if err != nil || inv.Key != key || inv.InstanceID != "id-1" || string(inv.Metadata) != `{"a":1}` || inv.Timestamp.UnixMilli() != 42 {
			t.Errorf("%q: %+v, %v", key, inv, err)
		}
	}
}
