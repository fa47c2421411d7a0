package wire

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeView: the View decoders return what the owning ones return,
// field for field, and the same errors.
func FuzzDecodeView(f *testing.F) {
	seeds(func(s string) { f.Add(s) })
	f.Fuzz(func(t *testing.T, msg string) {
		for _, pattern := range []bool{false, true} {
			own, err := DecodeInvalidation(msg, pattern)
			view, verr := DecodeInvalidationView(msg, pattern)
			if !errors.Is(verr, err) && (err == nil || verr == nil || err.Error() != verr.Error()) || !reflect.DeepEqual(own, view) {
				t.Fatalf("%q (pattern %v): owning %+v, %v; view %+v, %v", msg, pattern, own, err, view, verr)
			}
		}
		own, err := DecodeEvent(msg)
		view, verr := DecodeEventView(msg)
		if !errors.Is(verr, err) && (err == nil || verr == nil || err.Error() != verr.Error()) || !reflect.DeepEqual(own, view) {
			t.Fatalf("event %q: owning %+v, %v; view %+v, %v", msg, own, err, view, verr)
		}
	})
}

// TestViewCopiesWritable: what a handler may write to (an invalidation's
// Metadata, an event's Payload) is a copy even from the View decoders,
// and an invalidation without metadata decodes without an allocation.
func TestViewCopiesWritable(t *testing.T) {
	msg := string(EncodeInvalidation("inst-1", "user:42", []byte(`{"reason":"x"}`), time.UnixMilli(1700000000123)))
	inv, err := DecodeInvalidationView(msg, false)
	if err != nil {
		t.Fatal(err)
	}
	inv.Metadata[2] = 'R'
	if again, _ := DecodeInvalidationView(msg, false); string(again.Metadata) != `{"reason":"x"}` {
		t.Fatalf("writing to Metadata changed the message: %s", again.Metadata)
	}
	ev, err := DecodeEventView(string(EncodeEvent("inst-1", "topic", []byte(`[1]`), time.UnixMilli(1))))
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Payload) != "[1]" || ev.Topic != "topic" || ev.InstanceID != "inst-1" {
		t.Fatalf("event = %+v", ev)
	}
	plain := string(EncodeInvalidation("inst-1", "user:42", nil, time.UnixMilli(1700000000123)))
	if n := testing.AllocsPerRun(100, func() {
		if _, err := DecodeInvalidationView(plain, false); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("DecodeInvalidationView of a message without metadata: %v allocations, want 0", n)
	}
}
