package conformance

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/wire"
)

// The wire cases send foreign messages through the harness's raw publish
// hook and check that every backend gives each the outcome docs/WIRE.md
// states: accepted messages are delivered with the fields they carry,
// refused ones are not delivered and are counted as malformed. PurgeAll
// items are ignored: whether a refused invalidation is followed by one is
// not what these cases check.

// wireInvalidatorCases run in the Invalidator group.
func wireInvalidatorCases() []testCase {
	return []testCase{
		{name: "WireForeignInputs", needs: capForeign, run: testWireInvForeign},
		{name: "WireEmptyMetadata", run: testWireInvEmpty},
	}
}

// wireEventCases run in the EventBus group.
func wireEventCases() []testCase {
	return []testCase{
		{name: "WireForeignInputs", needs: capForeign, run: testWireEvForeign},
		{name: "WireEmptyPayload", run: testWireEvEmpty},
	}
}

// wireInput is one foreign message: a template whose %[1]s is the
// message's key or topic and %[2]s the name of its value field
// (metadata or payload), and the outcome.
type wireInput struct {
	name   string
	tmpl   string
	accept bool
	value  string // the delivered metadata or payload; "" for empty
	ts     int64  // the delivered timestamp in Unix ms; noTS for the zero time
}

const noTS = -1 << 63

func deep(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

// wireInputs are the inputs on which the two backends once disagreed,
// and their neighbours.
func wireInputs() []wireInput {
	return []wireInput{
		{"NodeFormat", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{"reason":"update"},"timestamp":1700000000123}`, true, `{"reason":"update"}`, 1700000000123},
		{"NullValue", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":null,"timestamp":1700000000001}`, true, "", 1700000000001},
		{"EmptyObjectValue", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{},"timestamp":1700000000002}`, true, "", 1700000000002},
		{"MissingValue", `{"instanceId":"node-legacy","%[3]s":"%[1]s","timestamp":1700000000003}`, true, "", 1700000000003},
		{"SpacedValueCompacted", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{ "a" : [ 1 , 2 ] },"timestamp":4}`, true, `{"a":[1,2]}`, 4},
		{"UnknownFieldsIgnored", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{"a":1},"timestamp":5,"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`, true, `{"a":1}`, 5},
		{"MissingTimestamp", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{"a":1}}`, true, `{"a":1}`, noTS},
		{"NullTimestamp", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{"a":1},"timestamp":null}`, true, `{"a":1}`, noTS},
		{"TimestampExponent", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{"a":1},"timestamp":1.7e12}`, true, `{"a":1}`, 1700000000000},
		{"ValueAtMaxDepth", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":` + deep(wire.MaxDepth) + `,"timestamp":6}`, true, deep(wire.MaxDepth), 6},
		{"MissingInstanceID", `{"%[3]s":"%[1]s","%[2]s":{},"timestamp":1700000000000}`, false, "", 0},
		{"EmptyInstanceID", `{"instanceId":"","%[3]s":"%[1]s","%[2]s":{},"timestamp":1700000000000}`, false, "", 0},
		{"NumberInstanceID", `{"instanceId":42,"%[3]s":"%[1]s","%[2]s":{},"timestamp":1700000000000}`, false, "", 0},
		{"Timestamp1e300", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{},"timestamp":1e300}`, false, "", 0},
		{"TimestampMaxInt64", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{},"timestamp":9223372036854775807}`, false, "", 0},
		{"TimestampBelowMinInt64", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{},"timestamp":-9223372036854775809}`, false, "", 0},
		{"StringTimestamp", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":{},"timestamp":"1700000000000"}`, false, "", 0},
		{"ValueOverMaxDepth", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":` + deep(wire.MaxDepth+1) + `,"timestamp":7}`, false, "", 0},
		{"Value10000Deep", `{"instanceId":"node-legacy","%[3]s":"%[1]s","%[2]s":` + deep(10000) + `,"timestamp":8}`, false, "", 0},
	}
}

func (w wireInput) message(name, nameField, valueField string) []byte {
	return fmt.Appendf(nil, w.tmpl, name, valueField, nameField)
}

func (w wireInput) check(t *testing.T, what, id, value string, ts time.Time) {
	t.Helper()
	want := time.UnixMilli(w.ts)
	if w.ts == noTS {
		want = time.Time{}
	}
	if id != "node-legacy" || value != w.value || !ts.Equal(want) {
		t.Errorf("%s %s: delivered from %q with value %.60q at %v; want from node-legacy with %.60q at %v", w.name, what, id, value, ts, w.value, want)
	}
}

func testWireInvForeign(t *testing.T, h Harness) {
	tm := timingOf(h)
	fp := foreign(t, h)
	ins := instances(t, h, 2)
	rec, _ := subInv(t, ins[1])
	invFence(t, tm, ins[0], "wire:before", rec)
	malformed0 := ins[1].Invalidator().Stats().Malformed
	inputs := wireInputs()
	refused, accepted := 0, 0
	for i, w := range inputs {
		for _, ch := range []string{"invalidate", "pattern"} {
			key := fmt.Sprintf("wire:%s:%d", ch, i)
			if ch == "pattern" {
				key += "*"
			}
			fp.PublishRaw(t, ch, w.message(key, "cacheKey", "metadata"))
			if w.accept {
				accepted++
			} else {
				refused++
			}
		}
	}
	eventually(t, tm.delivery, func() bool { return ins[1].Invalidator().Stats().Malformed-malformed0 >= uint64(refused) },
		"%d refused messages counted as malformed (Stats %+v)", refused, func() any { return ins[1].Invalidator().Stats() })
	foreignDelivered := func() int {
		n := 0
		for _, inv := range rec.all() {
			if inv.Kind != coord.PurgeAll && strings.HasPrefix(inv.Key, "wire:") && inv.InstanceID != ins[0].InstanceID() {
				n++
			}
		}
		return n
	}
	// The raw publisher and ins[0] may reach the subscriber through
	// different servers (a Cluster): wait for the accepted ones too.
	eventually(t, tm.delivery, func() bool { return foreignDelivered() >= accepted },
		"%d accepted messages delivered", accepted)
	invFence(t, tm, ins[0], "wire:after", rec)
	got := map[string]coord.Invalidation{}
	for _, inv := range rec.all() {
		if inv.Kind == coord.PurgeAll || inv.Key == "wire:before" || inv.Key == "wire:after" {
			continue
		}
		if _, dup := got[inv.Key]; dup {
			t.Errorf("%s delivered twice", inv.Key)
		}
		got[inv.Key] = inv
	}
	for i, w := range inputs {
		for _, ch := range []string{"invalidate", "pattern"} {
			key := fmt.Sprintf("wire:%s:%d", ch, i)
			kind := coord.KeyInvalidation
			if ch == "pattern" {
				key += "*"
				kind = coord.PatternInvalidation
			}
			inv, ok := got[key]
			switch {
			case !w.accept && ok:
				t.Errorf("%s on %s: refused by the rules, but delivered: %+v", w.name, ch, inv)
			case w.accept && !ok:
				t.Errorf("%s on %s: accepted by the rules, but not delivered", w.name, ch)
			case ok:
				if inv.Kind != kind {
					t.Errorf("%s on %s: kind %v", w.name, ch, inv.Kind)
				}
				if w.value == "" && inv.Metadata != nil {
					t.Errorf("%s on %s: empty metadata delivered as %#v, want nil", w.name, ch, inv.Metadata)
				}
				w.check(t, "on "+ch, inv.InstanceID, string(inv.Metadata), inv.Timestamp)
			}
		}
	}
	if n := ins[1].Invalidator().Stats().Malformed - malformed0; n != uint64(refused) {
		t.Errorf("Stats().Malformed grew by %d, want %d (one per refused message)", n, refused)
	}
	if len(got) != accepted {
		t.Errorf("%d foreign invalidations delivered, want %d", len(got), accepted)
	}
}

func testWireEvForeign(t *testing.T, h Harness) {
	tm := timingOf(h)
	fp := foreign(t, h)
	ins := instances(t, h, 2)
	rec, _ := subEv(t, ins[1], "wire")
	evFence(t, tm, ins[0], "wire", "before", rec)
	malformed0 := ins[1].Events().Stats().Malformed
	inputs := wireInputs()
	refused, accepted := 0, 0
	for _, w := range inputs {
		fp.PublishRaw(t, "event", w.message("wire", "event", "payload"))
		if w.accept {
			accepted++
		} else {
			refused++
		}
	}
	eventually(t, tm.delivery, func() bool { return ins[1].Events().Stats().Malformed-malformed0 >= uint64(refused) },
		"%d refused messages counted as malformed (Stats %+v)", refused, func() any { return ins[1].Events().Stats() })
	eventually(t, tm.delivery, func() bool {
		n := 0
		for _, ev := range rec.all() {
			if ev.InstanceID != ins[0].InstanceID() {
				n++
			}
		}
		return n >= accepted
	}, "%d accepted messages delivered", accepted)
	evFence(t, tm, ins[0], "wire", "after", rec)
	var got []coord.Event
	for _, ev := range rec.all() {
		if ev.InstanceID != ins[0].InstanceID() {
			got = append(got, ev)
		}
	}
	if len(got) != accepted {
		t.Fatalf("%d foreign events delivered, want %d: %v", len(got), accepted, got)
	}
	n := 0
	for _, w := range inputs {
		if !w.accept {
			continue
		}
		ev := got[n]
		n++
		value := string(ev.Payload)
		if value == "null" {
			value = "" // an empty payload is delivered as null
		}
		if w.value == "" && string(ev.Payload) != "null" {
			t.Errorf("%s: empty payload delivered as %q, want null", w.name, ev.Payload)
		}
		if ev.Topic != "wire" {
			t.Errorf("%s: topic %q", w.name, ev.Topic)
		}
		w.check(t, "event", ev.InstanceID, value, ev.Timestamp)
	}
	if n := ins[1].Events().Stats().Malformed - malformed0; n != uint64(refused) {
		t.Errorf("Stats().Malformed grew by %d, want %d (one per refused message)", n, refused)
	}
}

// emptyValues are values that every backend delivers as empty metadata
// (and as a null payload): on the wire they are {}.
func emptyValues() []any {
	return []any{nil, map[string]any{}, map[string]any(nil), json.RawMessage("null"), json.RawMessage(" { } "), struct{}{}}
}

func testWireInvEmpty(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	rec, _ := subInv(t, ins[1])
	values := emptyValues()
	for i, v := range values {
		must(t, ins[0].Invalidator().Invalidate(ctxOf(t), fmt.Sprintf("empty:%d", i), v), "Invalidate")
	}
	invFence(t, tm, ins[0], "empty:end", rec)
	for i, v := range values {
		key := fmt.Sprintf("empty:%d", i)
		for _, inv := range rec.all() {
			if inv.Key == key && inv.Kind != coord.PurgeAll && inv.Metadata != nil {
				t.Errorf("metadata %#v delivered as %q, want empty (nil)", v, inv.Metadata)
			}
		}
		if !rec.any(hasKey(key)) {
			t.Errorf("invalidation with metadata %#v not delivered", v)
		}
	}
	// Too deep to be accepted by a receiver: refused when sent.
	if err := ins[0].Invalidator().Invalidate(ctxOf(t), "deep", json.RawMessage(deep(wire.MaxDepth+1))); err == nil {
		t.Errorf("Invalidate with metadata nested %d deep: nil error, want ErrInvalid", wire.MaxDepth+1)
	}
}

func testWireEvEmpty(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	rec, _ := subEv(t, ins[1], "empty")
	values := emptyValues()
	for _, v := range values {
		must(t, ins[0].Events().Publish(ctxOf(t), "empty", v), "Publish")
	}
	evFence(t, tm, ins[0], "empty", "end", rec)
	got := rec.all()
	if len(got) != len(values)+1 {
		t.Fatalf("%d events delivered, want %d", len(got), len(values)+1)
	}
	for i, v := range values {
		if string(got[i].Payload) != "null" {
			t.Errorf("payload %#v delivered as %q, want null", v, got[i].Payload)
		}
	}
	if err := ins[0].Events().Publish(ctxOf(t), "empty", json.RawMessage(deep(wire.MaxDepth+1))); err == nil {
		t.Errorf("Publish of a payload nested %d deep: nil error, want ErrInvalid", wire.MaxDepth+1)
	}
}
