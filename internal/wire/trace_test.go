package wire

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

const testParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestTraceRoundTrip(t *testing.T) {
	c := coord.TraceCarrier{"traceparent": testParent, "tracestate": "rojo=00f067aa0ba902b7"}
	ts := time.UnixMilli(1700000000000)
	ev := AppendTrace(EncodeEvent("i1", "topic", []byte(`{"a":1}`), ts), c)
	want := `{"instanceId":"i1","event":"topic","payload":{"a":1},"timestamp":1700000000000,` +
		`"trace":{"traceparent":"` + testParent + `","tracestate":"rojo=00f067aa0ba902b7"}}`
	if string(ev) != want {
		t.Fatalf("encoded %s, want %s", ev, want)
	}
	got, err := DecodeEvent(string(ev))
	if err != nil || !reflect.DeepEqual(got.Trace, c) || got.Topic != "topic" || string(got.Payload) != `{"a":1}` {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	inv, err := DecodeInvalidation(string(AppendTrace(EncodeInvalidation("i1", "k*", nil, ts), c)), true)
	if err != nil || !reflect.DeepEqual(inv.Trace, c) || inv.Key != "k*" || inv.Metadata != nil {
		t.Fatalf("decoded %+v, %v", inv, err)
	}
}

func TestAppendTraceRefusesBadCarrier(t *testing.T) {
	msg := EncodeEvent("i1", "topic", nil, time.UnixMilli(1))
	for name, c := range map[string]coord.TraceCarrier{
		"nil":        nil,
		"empty":      {},
		"upper key":  {"TraceParent": testParent},
		"empty key":  {"": "x"},
		"quote":      {"traceparent": `a"b`},
		"control":    {"traceparent": "a\nb"},
		"non-ascii":  {"traceparent": "é"},
		"long value": {"tracestate": strings.Repeat("a", MaxTraceValue+1)},
		"long key":   {strings.Repeat("k", MaxTraceKey+1): "v"},
		"too many":   {"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1", "g": "1", "h": "1", "i": "1"},
		"too big":    {"a": strings.Repeat("x", 500), "b": strings.Repeat("x", 500), "c": strings.Repeat("x", 30)},
	} {
		if got := AppendTrace(msg, c); string(got) != string(msg) {
			t.Errorf("%s: message became %s", name, got)
		}
	}
}

// TestDecodeIgnoresRefusedTrace: a trace field that is not a valid
// carrier is ignored; the message is delivered without it, and the fast
// and slow decoders agree.
func TestDecodeIgnoresRefusedTrace(t *testing.T) {
	base := `{"instanceId":"i1","event":"e","payload":{"x":1},"timestamp":5`
	for _, tr := range []string{
		`null`, `1`, `"s"`, `[]`, `{}`, `{"traceparent":1}`, `{"TRACEPARENT":"x"}`,
		`{"traceparent":"a\nb"}`, `{"traceparent":{"a":"b"}}`,
		`{"tracestate":"` + strings.Repeat("a", MaxTraceValue+1) + `"}`,
	} {
		msg := base + `,"trace":` + tr + `}`
		ev, err := DecodeEvent(msg)
		if err != nil || ev.Trace != nil || ev.Topic != "e" || string(ev.Payload) != `{"x":1}` {
			t.Errorf("%s: %+v, %v", msg, ev, err)
		}
		slow, serr := decodeEventSlow(msg)
		if serr != nil || !reflect.DeepEqual(ev, slow) {
			t.Errorf("%s: fast %+v, slow %+v, %v", msg, ev, slow, serr)
		}
	}
}

// TestTraceFastSlowAgree: the decoders agree on messages whose trace
// field, or something like it, is placed where the fast path looks.
func TestTraceFastSlowAgree(t *testing.T) {
	for _, msg := range []string{
		`{"instanceId":"i1","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"traceparent":"` + testParent + `"}}`,
		`{"instanceId":"i1","cacheKey":"k","metadata":{"trace":{"a":"b"}},"timestamp":5}`,
		`{"instanceId":"i1","cacheKey":"k","timestamp":5,"metadata":{"y":1,"trace":{"a":"b"}}}`,
		`{"instanceId":"i1","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"a":"b}`,
		`{"instanceId":"i1","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"a":"b"},"trace":{"c":"d"}}`,
		`{"instanceId":"i1","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"a":"b"}}}`,
		`{"trace":{"a":"b"},"instanceId":"i1","cacheKey":"k","metadata":{},"timestamp":5}`,
		`{"instanceId":"i1","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"a":"b{c","d":"e"}}`,
		`{"instanceId":"i1","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"a":"}}"}}`,
		`{"instanceId":"i1","cacheKey":"k","metadata":{},"timestamp":5,"trace":{"a":",\"trace\":{"}}`,
		`{"instanceId":"i1","cacheKey":"k","metadata":{"m":{}},"timestamp":5,"trace":{"a":"b"}}`,
		`{"instanceId":"i1","cacheKey":"k","metadata":{"m":"}}"}}`,
		`"trace":{"a":"b"}}`,
		`{}}`,
	} {
		got, err := DecodeInvalidation(msg, false)
		slow, serr := decodeInvalidationSlow(msg, false)
		if (err == nil) != (serr == nil) || !reflect.DeepEqual(got, slow) {
			t.Errorf("%s: fast %+v, %v; slow %+v, %v", msg, got, err, slow, serr)
		}
	}
	// A Node-style message, without the field, has no trace.
	inv, err := DecodeInvalidation(`{"instanceId":"node-1","cacheKey":"k","metadata":{"reason":"x"},"timestamp":5}`, false)
	if err != nil || inv.Trace != nil || inv.Key != "k" {
		t.Fatalf("node message: %+v, %v", inv, err)
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	plain := string(EncodeEvent("bot-1", "shard.rebalance", []byte(`{"shard":3}`), time.UnixMilli(1700000000000)))
	traced := string(AppendTrace([]byte(plain), coord.TraceCarrier{"traceparent": testParent}))
	for _, c := range []struct{ name, msg string }{{"plain", plain}, {"trace", traced}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeEvent(c.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
