package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cgn-bot/coord"
)

// nested returns a value nested depth deep: [[…[1]…]].
func nested(depth int) string {
	return strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth)
}

// rule is one foreign input and the outcome every backend must give it.
type rule struct {
	name    string
	msg     string
	accept  bool
	id, key string // on acceptance
	meta    string // Metadata on acceptance ("" is empty)
	ts      int64  // Unix ms on acceptance; zeroTS for the zero time
}

const zeroTS = -1 << 63

func inv(fields string) string {
	return `{"instanceId":"node-1","cacheKey":"user:1"` + fields + `}`
}

// invalidationRules are the decisions docs/WIRE.md lists.
var invalidationRules = []rule{
	{name: "node format", msg: inv(`,"metadata":{"reason":"update"},"timestamp":1700000000123`), accept: true, id: "node-1", key: "user:1", meta: `{"reason":"update"}`, ts: 1700000000123},
	{name: "missing instanceId", msg: `{"cacheKey":"user:1","metadata":{},"timestamp":1}`},
	{name: "null instanceId", msg: `{"instanceId":null,"cacheKey":"user:1","timestamp":1}`},
	{name: "empty instanceId", msg: `{"instanceId":"","cacheKey":"user:1","metadata":{},"timestamp":1}`},
	{name: "number instanceId", msg: `{"instanceId":7,"cacheKey":"user:1","timestamp":1}`},
	{name: "instanceId with a control byte", msg: `{"instanceId":"a\u0001","cacheKey":"user:1","timestamp":1}`},
	{name: "instanceId matched exactly", msg: `{"InstanceId":"node-1","cacheKey":"user:1","timestamp":1}`},
	{name: "timestamp 1e300", msg: inv(`,"metadata":{},"timestamp":1e300`)},
	{name: "timestamp max int64", msg: inv(`,"metadata":{},"timestamp":9223372036854775807`)},
	{name: "timestamp below min int64", msg: inv(`,"metadata":{},"timestamp":-9223372036854775809`)},
	{name: "timestamp just over the range", msg: inv(`,"metadata":{},"timestamp":8640000000000001`)},
	{name: "timestamp at the range", msg: inv(`,"metadata":{},"timestamp":8640000000000000`), accept: true, id: "node-1", key: "user:1", ts: MaxTimestamp},
	{name: "timestamp at the negative range", msg: inv(`,"metadata":{},"timestamp":-8640000000000000`), accept: true, id: "node-1", key: "user:1", ts: -MaxTimestamp},
	{name: "timestamp string", msg: inv(`,"metadata":{},"timestamp":"1700000000000"`)},
	{name: "timestamp bool", msg: inv(`,"metadata":{},"timestamp":true`)},
	{name: "timestamp object", msg: inv(`,"metadata":{},"timestamp":{}`)},
	{name: "timestamp missing", msg: inv(`,"metadata":{}`), accept: true, id: "node-1", key: "user:1", ts: zeroTS},
	{name: "timestamp null", msg: inv(`,"metadata":{},"timestamp":null`), accept: true, id: "node-1", key: "user:1", ts: zeroTS},
	{name: "timestamp fraction", msg: inv(`,"timestamp":1700000000123.9`), accept: true, id: "node-1", key: "user:1", ts: 1700000000123},
	{name: "timestamp exponent", msg: inv(`,"timestamp":1.7e12`), accept: true, id: "node-1", key: "user:1", ts: 1700000000000},
	{name: "metadata null", msg: inv(`,"metadata":null,"timestamp":5`), accept: true, id: "node-1", key: "user:1", ts: 5},
	{name: "metadata {}", msg: inv(`,"metadata":{},"timestamp":5`), accept: true, id: "node-1", key: "user:1", ts: 5},
	{name: "metadata { } spaced", msg: inv(`,"metadata":{ },"timestamp":5`), accept: true, id: "node-1", key: "user:1", ts: 5},
	{name: "metadata missing", msg: inv(`,"timestamp":5`), accept: true, id: "node-1", key: "user:1", ts: 5},
	{name: "metadata not an object", msg: inv(`,"metadata":[1,"x"],"timestamp":5`), accept: true, id: "node-1", key: "user:1", meta: `[1,"x"]`, ts: 5},
	{name: "metadata spaced is compacted", msg: inv(`,"metadata":{ "a" : [ 1 , 2 ] },"timestamp":5`), accept: true, id: "node-1", key: "user:1", meta: `{"a":[1,2]}`, ts: 5},
	{name: "metadata at MaxDepth", msg: inv(`,"metadata":` + nested(MaxDepth) + `,"timestamp":5`), accept: true, id: "node-1", key: "user:1", meta: nested(MaxDepth), ts: 5},
	{name: "metadata over MaxDepth", msg: inv(`,"metadata":` + nested(MaxDepth+1) + `,"timestamp":5`)},
	{name: "metadata 10000 deep", msg: inv(`,"metadata":` + nested(10000) + `,"timestamp":5`)},
	{name: "metadata 10001 deep", msg: inv(`,"metadata":` + nested(10001) + `,"timestamp":5`)},
	{name: "unknown fields ignored", msg: inv(`,"metadata":{"a":1},"timestamp":5,"traceparent":"00-ab-cd-01","x":{"y":[1]}`), accept: true, id: "node-1", key: "user:1", meta: `{"a":1}`, ts: 5},
	{name: "fields in another order", msg: `{"timestamp":5,"metadata":{"a":1},"cacheKey":"user:1","instanceId":"node-1"}`, accept: true, id: "node-1", key: "user:1", meta: `{"a":1}`, ts: 5},
	{name: "repeated field: the last wins", msg: inv(`,"metadata":1,"timestamp":5,"timestamp":6`), accept: true, id: "node-1", key: "user:1", meta: `1`, ts: 6},
	{name: "escaped key", msg: `{"instanceId":"node-1","cacheKey":"user:\u0031","timestamp":5}`, accept: true, id: "node-1", key: "user:1", ts: 5},
	{name: "missing cacheKey", msg: `{"instanceId":"node-1","timestamp":5}`},
	{name: "empty cacheKey", msg: `{"instanceId":"node-1","cacheKey":"","timestamp":5}`},
	{name: "null cacheKey", msg: `{"instanceId":"node-1","cacheKey":null,"timestamp":5}`},
	{name: "number cacheKey", msg: `{"instanceId":"node-1","cacheKey":7,"timestamp":5}`},
	{name: "cacheKey with DEL", msg: "{\"instanceId\":\"node-1\",\"cacheKey\":\"k\x7f\",\"timestamp\":5}"},
	{name: "not JSON", msg: `not json`},
	{name: "array", msg: `[1,2]`},
	{name: "null", msg: `null`},
	{name: "string", msg: `""`},
	{name: "trailing garbage", msg: inv(`,"timestamp":5`) + `x`},
}

func check(t *testing.T, r rule, got coord.Invalidation, err error) {
	t.Helper()
	if !r.accept {
		if err == nil {
			t.Errorf("%s: accepted %+v, want refused", r.name, got)
		} else if !errors.Is(err, ErrMalformed) || !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: error %v does not wrap ErrMalformed and coord.ErrInvalid", r.name, err)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: refused (%v), want accepted", r.name, err)
		return
	}
	wantTS := time.UnixMilli(r.ts)
	if r.ts == zeroTS {
		wantTS = time.Time{}
	}
	if got.InstanceID != r.id || got.Key != r.key || string(got.Metadata) != r.meta || !got.Timestamp.Equal(wantTS) {
		t.Errorf("%s: got id %q key %q meta %q ts %v; want %q %q %q %v", r.name, got.InstanceID, got.Key, got.Metadata, got.Timestamp, r.id, r.key, r.meta, wantTS)
	}
	if r.meta == "" && got.Metadata != nil {
		t.Errorf("%s: empty metadata is %#v, want nil", r.name, got.Metadata)
	}
}

func TestInvalidationRules(t *testing.T) {
	for _, r := range invalidationRules {
		got, err := DecodeInvalidation(r.msg, false)
		check(t, r, got, err)
		if err == nil && got.Kind != coord.KeyInvalidation {
			t.Errorf("%s: kind %v", r.name, got.Kind)
		}
		slow, serr := decodeInvalidationSlow(r.msg, false)
		check(t, r, slow, serr)
		// The same rules on the pattern channel (user:1 is a valid glob).
		pgot, perr := DecodeInvalidation(r.msg, true)
		check(t, r, pgot, perr)
		if perr == nil && pgot.Kind != coord.PatternInvalidation {
			t.Errorf("%s: pattern kind %v", r.name, pgot.Kind)
		}
	}
}

func TestEventRules(t *testing.T) {
	for _, r := range invalidationRules {
		msg := strings.Replace(strings.Replace(r.msg, `"cacheKey"`, `"event"`, 1), `"metadata"`, `"payload"`, -1)
		got, err := DecodeEvent(msg)
		want := r
		if want.meta == "" {
			want.meta = "null"
		}
		check(t, want, coord.Invalidation{InstanceID: got.InstanceID, Key: got.Topic, Metadata: got.Payload, Timestamp: got.Timestamp}, err)
		slow, serr := decodeEventSlow(msg)
		check(t, want, coord.Invalidation{InstanceID: slow.InstanceID, Key: slow.Topic, Metadata: slow.Payload, Timestamp: slow.Timestamp}, serr)
	}
}

func TestPatternChannelRules(t *testing.T) {
	for _, c := range []struct {
		glob   string
		accept bool
	}{{"user:*", true}, {"user:[a-z]?", true}, {`user:\*`, true}, {"user:[", false}, {`user:\`, false}, {"", false}} {
		key, _ := json.Marshal(c.glob)
		msg := `{"instanceId":"n","cacheKey":` + string(key) + `,"metadata":{},"timestamp":1}`
		got, err := DecodeInvalidation(msg, true)
		if (err == nil) != c.accept || err == nil && (got.Key != c.glob || got.Kind != coord.PatternInvalidation) {
			t.Errorf("glob %q: %+v, %v; want accepted %v", c.glob, got, err, c.accept)
		}
	}
}

// TestEncodeSendsEmptyObject: nil or null metadata and payload go on the
// wire as {}, never null.
func TestEncodeSendsEmptyObject(t *testing.T) {
	for _, v := range []any{nil, json.RawMessage("null"), json.RawMessage(" null "), map[string]any(nil), (*struct{})(nil), map[string]int{}} {
		raw, err := EncodeValue(v, 0)
		if err != nil || string(raw) != "{}" {
			t.Errorf("EncodeValue(%#v) = %s, %v; want {}", v, raw, err)
		}
	}
	ts := time.UnixMilli(1700000000123)
	for _, raw := range []json.RawMessage{nil, {}, json.RawMessage("null")} {
		if got, want := string(EncodeInvalidation("a", "user:1", raw, ts)), `{"instanceId":"a","cacheKey":"user:1","metadata":{},"timestamp":1700000000123}`; got != want {
			t.Errorf("invalidation with metadata %q: %s, want %s", raw, got, want)
		}
		if got, want := string(EncodeEvent("a", "t", raw, ts)), `{"instanceId":"a","event":"t","payload":{},"timestamp":1700000000123}`; got != want {
			t.Errorf("event with payload %q: %s, want %s", raw, got, want)
		}
	}
	// A value is sent as it is.
	if got, want := string(EncodeInvalidation("a", "k", json.RawMessage(`{"reason":"x"}`), ts)), `{"instanceId":"a","cacheKey":"k","metadata":{"reason":"x"},"timestamp":1700000000123}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// And received as empty.
	inv, err := DecodeInvalidation(string(EncodeInvalidation("a", "k", nil, ts)), false)
	if err != nil || inv.Metadata != nil {
		t.Errorf("decoded nil metadata as %q, %v; want nil", inv.Metadata, err)
	}
	ev, err := DecodeEvent(string(EncodeEvent("a", "t", nil, ts)))
	if err != nil || string(ev.Payload) != "null" {
		t.Errorf("decoded nil payload as %q, %v; want null", ev.Payload, err)
	}
}

func TestEncodeValueRefusesWhatReceiversRefuse(t *testing.T) {
	if _, err := EncodeValue(json.RawMessage(nested(MaxDepth)), 0); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	for _, v := range []any{json.RawMessage(nested(MaxDepth + 1)), json.RawMessage(`{"a":`), func() {}} {
		if _, err := EncodeValue(v, 0); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("EncodeValue(%.40v) = %v, want ErrInvalid", v, err)
		}
	}
	if _, err := EncodeValue(strings.Repeat("a", 100), 10); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("over the limit: %v, want ErrInvalid", err)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, key := range []string{"user:1", `quote"back\slash`, "é☃", "<&>", "\u2028"} {
		msg := EncodeInvalidation("id-1", key, json.RawMessage(`{"a":1}`), time.UnixMilli(42))
		if !json.Valid(msg) {
			t.Fatalf("%q: invalid JSON %s", key, msg)
		}
		inv, err := DecodeInvalidation(string(msg), false)
		if err != nil || inv.Key != key || inv.InstanceID != "id-1" || string(inv.Metadata) != `{"a":1}` || inv.Timestamp.UnixMilli() != 42 {
			t.Errorf("%q: %+v, %v", key, inv, err)
		}
	}
	// A key that is not valid still encodes as JSON (the publisher
	// validates it first).
	if msg := EncodeInvalidation("id", "tab\tnl\n", nil, time.UnixMilli(1)); !json.Valid(msg) {
		t.Errorf("invalid JSON %s", msg)
	}
}

// within reports whether string or slice data p lies inside buf.
func within(p unsafe.Pointer, buf []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return uintptr(p) >= start && uintptr(p) < start+uintptr(cap(buf))
}

// TestDecodedOwnsItsMemory: nothing decoded refers to the received
// buffer, on the fast path and on the slow one.
func TestDecodedOwnsItsMemory(t *testing.T) {
	pad := strings.Repeat("x", 1<<20)
	for _, c := range []struct{ name, inv, ev string }{
		{"fast",
			`{"instanceId":"node-1","cacheKey":"user:1","metadata":{"pad":"` + pad + `"},"timestamp":5}`,
			`{"instanceId":"node-1","event":"topic","payload":{"pad":"` + pad + `"},"timestamp":5}`},
		{"slow",
			`{"instanceId":"node-1","cacheKey":"user:1","metadata":{"a":1},"timestamp":5,"pad":"` + pad + `"}`,
			`{"instanceId":"node-1","event":"topic","payload":{"a":1},"timestamp":5,"pad":"` + pad + `"}`},
	} {
		buf := []byte(c.inv)
		msg := bytesString(buf) // as a received message: a view of the read buffer
		got, err := DecodeInvalidation(msg, false)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if within(unsafe.Pointer(unsafe.StringData(got.InstanceID)), buf) || within(unsafe.Pointer(unsafe.StringData(got.Key)), buf) ||
			within(unsafe.Pointer(unsafe.SliceData(got.Metadata)), buf) {
			t.Errorf("%s: the decoded invalidation refers to the received buffer", c.name)
		}
		if c.name == "slow" && cap(got.Metadata) > 64 {
			t.Errorf("%s: metadata %q keeps %d bytes", c.name, got.Metadata, cap(got.Metadata))
		}
		ebuf := []byte(c.ev)
		ev, err := DecodeEvent(bytesString(ebuf))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if within(unsafe.Pointer(unsafe.StringData(ev.InstanceID)), ebuf) || within(unsafe.Pointer(unsafe.StringData(ev.Topic)), ebuf) ||
			within(unsafe.Pointer(unsafe.SliceData(ev.Payload)), ebuf) {
			t.Errorf("%s: the decoded event refers to the received buffer", c.name)
		}
	}
}

// TestDecodedMetadataIsSeparate: writing into (or appending to) decoded
// metadata changes neither the decoded strings nor another message.
func TestDecodedMetadataIsSeparate(t *testing.T) {
	msg := `{"instanceId":"node-1","cacheKey":"user:1","metadata":[1],"timestamp":5}`
	got, err := DecodeInvalidation(msg, false)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(got.Metadata, "xxxxxxxxxxxxxxxxxxxx"...)
	for i := range got.Metadata {
		got.Metadata[i] = '?'
	}
	if got.InstanceID != "node-1" || got.Key != "user:1" {
		t.Errorf("writing to Metadata changed the strings: %q %q", got.InstanceID, got.Key)
	}
	ev, err := DecodeEvent(`{"instanceId":"n","event":"t","payload":{},"timestamp":5}`)
	if err != nil {
		t.Fatal(err)
	}
	ev.Payload[0] = 'x'
	if ev2, _ := DecodeEvent(`{"instanceId":"n","event":"t","payload":{},"timestamp":5}`); string(ev2.Payload) != "null" {
		t.Errorf("an empty payload is shared: %q", ev2.Payload)
	}
}

func TestScanCompact(t *testing.T) {
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{`{}`, true}, {`[]`, true}, {`{"a":[1,{"b":null}],"c":"\u00e9\n"}`, true}, {`-0.5e+3`, true}, {`"x"`, true},
		{`true`, true}, {`false`, true}, {`null`, true}, {nested(MaxDepth), true},
		{``, false}, {` {}`, false}, {`{} `, false}, {`{ }`, false}, {`[1, 2]`, false}, {`{"a" :1}`, false},
		{`{"a":1,}`, false}, {`[1,]`, false}, {`{"a"}`, false}, {`{1:2}`, false}, {`[1}`, false}, {`{"a":1]`, false},
		{`01`, false}, {`1.`, false}, {`.5`, false}, {`1e`, false}, {`tru`, false}, {`nul`, false}, {`"a`, false},
		{`"\x"`, false}, {`"\u12"`, false}, {"\"\x01\"", false}, {`1 2`, false}, {`{}{}`, false}, {nested(MaxDepth + 1), false},
		{`[`, false}, {`{`, false}, {`{"a":`, false}, {`["a",`, false},
	} {
		if got := scanCompact(c.s); got != c.ok {
			t.Errorf("scanCompact(%.50q) = %v, want %v", c.s, got, c.ok)
		}
	}
}
