package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
)

// TestWireSendsEmptyObjectForNil: with nil metadata or payload the
// messages on the wire carry {}, as the Node design's do, on the channels
// of the Backend's prefix, which Channels reports.
func TestWireSendsEmptyObjectForNil(t *testing.T) {
	m := miniredis.RunT(t)
	client := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
	defer client.Close()
	b, err := New(client, &Options{Prefix: "app7:", InstanceID: "inst-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ci, cp, ce := b.Channels()
	if ci != "app7:cache:invalidate" || cp != "app7:cache:invalidate:pattern" || ce != "app7:shard:event" {
		t.Fatalf("Channels() = %q %q %q", ci, cp, ce)
	}
	if i, p, e := b.Invalidator().(*Invalidator).Channels(); i != ci || p != cp || e != ce {
		t.Errorf("Invalidator.Channels() = %q %q %q", i, p, e)
	}
	if i, p, e := b.Events().(*Events).Channels(); i != ci || p != cp || e != ce {
		t.Errorf("Events.Channels() = %q %q %q", i, p, e)
	}
	ctx := context.Background()
	raw := client.Subscribe(ctx, ci, cp, ce)
	defer raw.Close()
	for range 3 { // the subscription confirmations
		if _, err := raw.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Invalidator().Invalidate(ctx, "user:1", nil))
	must(b.Invalidator().InvalidatePattern(ctx, "user:*", json.RawMessage("null")))
	must(b.Events().Publish(ctx, "topic", nil))
	must(b.Invalidator().Invalidate(ctx, "user:2", map[string]string(nil)))
	want := []struct{ channel, re string }{
		{ci, `^\{"instanceId":"inst-1","cacheKey":"user:1","metadata":\{\},"timestamp":\d+\}$`},
		{cp, `^\{"instanceId":"inst-1","cacheKey":"user:\*","metadata":\{\},"timestamp":\d+\}$`},
		{ce, `^\{"instanceId":"inst-1","event":"topic","payload":\{\},"timestamp":\d+\}$`},
		{ci, `^\{"instanceId":"inst-1","cacheKey":"user:2","metadata":\{\},"timestamp":\d+\}$`},
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, w := range want {
		msg, err := raw.ReceiveMessage(rctx)
		if err != nil {
			t.Fatalf("waiting for a message on %s: %v", w.channel, err)
		}
		if msg.Channel != w.channel || !regexp.MustCompile(w.re).MatchString(msg.Payload) {
			t.Errorf("on %s: %s; want on %s matching %s", msg.Channel, msg.Payload, w.channel, w.re)
		}
	}
}

// foreignRig is a Redis backend on a miniredis, subscribed to every
// invalidation and to events on one topic, to which the fuzzer publishes
// raw messages as a foreign program would.
type foreignRig struct {
	m      *miniredis.Miniredis
	b      *Backend
	client *goredis.Client

	mu     sync.Mutex
	invs   []coord.Invalidation
	events []coord.Event
	marker int
}

const foreignTopic = "fuzz-topic"

func newForeignRig(f *testing.F) *foreignRig {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		f.Fatal(err)
	}
	r := &foreignRig{m: m, client: goredis.NewClient(&goredis.Options{Addr: m.Addr()})}
	b, err := New(r.client, &Options{InstanceID: "fuzz-self"})
	if err != nil {
		f.Fatal(err)
	}
	r.b = b
	f.Cleanup(func() {
		_ = b.Close(context.Background())
		_ = r.client.Close()
		m.Close()
	})
	ctx := context.Background()
	if _, err := b.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
		r.mu.Lock()
		r.invs = append(r.invs, inv)
		r.mu.Unlock()
	}, coord.WithQueueSize(1<<16)); err != nil {
		f.Fatal(err)
	}
	if _, err := b.Events().Subscribe(ctx, foreignTopic, func(e coord.Event) {
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
	}, coord.WithQueueSize(1<<16)); err != nil {
		f.Fatal(err)
	}
	return r
}

// sync publishes a marker event and waits until it arrives: everything
// published before it has been dispatched by then.
func (r *foreignRig) sync(t *testing.T) {
	r.mu.Lock()
	r.marker++
	want := fmt.Sprintf(`{"marker":%d}`, r.marker)
	r.mu.Unlock()
	msg := fmt.Sprintf(`{"instanceId":"fuzz-marker","event":%q,"payload":%s,"timestamp":1}`, foreignTopic, want)
	r.m.Publish("cgn:shard:event", msg)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		for _, e := range r.events {
			if string(e.Payload) == want {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("marker %s not delivered within 5s", want)
		}
		time.Sleep(time.Millisecond)
	}
}

// FuzzForeignMessage publishes raw bytes on the Redis backend's wire
// channels as another program would: each message is either decoded and
// delivered (with a valid key, glob or topic) or counted as malformed and
// dropped, and nothing panics.
func FuzzForeignMessage(f *testing.F) {
	for _, s := range []string{
		`{"instanceId":"other","cacheKey":"user:1","metadata":{"a":1},"timestamp":1700000000000}`,
		`{"instanceId":"other","cacheKey":"user:*","timestamp":1.7e12}`,
		`{"instanceId":"other","event":"fuzz-topic","payload":[1,2],"timestamp":null}`,
		`{"instanceId":"","cacheKey":"k"}`, `{"instanceId":"o","cacheKey":"a\nb"}`, `{"instanceId":"o","cacheKey":"[a"}`,
		`{"instanceId":"o","cacheKey":"k","timestamp":"x"}`, `{"instanceId":"o","cacheKey":"k","timestamp":1e300}`,
		`not json`, ``, `null`, `[]`, `{"instanceId":7}`, "\xff\xfe", `{"instanceId":"fuzz-self","cacheKey":"k"}`,
	} {
		for ch := range byte(3) {
			f.Add(ch, []byte(s))
		}
	}
	r := newForeignRig(f)
	channels := []string{"cgn:cache:invalidate", "cgn:cache:invalidate:pattern", "cgn:shard:event"}
	f.Fuzz(func(t *testing.T, ch byte, payload []byte) {
		channel := channels[int(ch)%len(channels)]
		is0, es0 := r.b.Invalidator().Stats(), r.b.Events().Stats()
		r.mu.Lock()
		ni, ne := len(r.invs), len(r.events)
		r.mu.Unlock()
		r.m.Publish(channel, string(payload))
		r.sync(t)
		is1, es1 := r.b.Invalidator().Stats(), r.b.Events().Stats()
		// Events are counted by what the handler saw: the backend counts
		// a delivery just after queueing it, so the marker's count may
		// lag behind its handler. Malformed messages and invalidations
		// were counted before the marker was dispatched.
		r.mu.Lock()
		foreignEvents := 0
		for _, e := range r.events[ne:] {
			if e.InstanceID != "fuzz-marker" {
				foreignEvents++
			}
		}
		r.mu.Unlock()
		counted := (is1.Malformed - is0.Malformed) + (is1.Received - is0.Received) +
			(es1.Malformed - es0.Malformed) + uint64(foreignEvents)
		if counted > 1 {
			t.Fatalf("one message on %s counted %d times: %+v -> %+v, %+v -> %+v, %d events", channel, counted, is0, is1, es0, es1, foreignEvents)
		}
		// Wait for the handler to have what was counted as received.
		deadline := time.Now().Add(5 * time.Second)
		for {
			r.mu.Lock()
			gotI := len(r.invs) - ni
			r.mu.Unlock()
			if uint64(gotI) >= is1.Received-is0.Received || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, inv := range r.invs[ni:] {
			switch inv.Kind {
			case coord.KeyInvalidation:
				if coord.ValidateName("key", inv.Key) != nil {
					t.Fatalf("delivered an invalidation of invalid key %q", inv.Key)
				}
			case coord.PatternInvalidation:
				if coord.ValidateGlob(inv.Key) != nil {
					t.Fatalf("delivered an invalidation of invalid glob %q", inv.Key)
				}
			case coord.PurgeAll:
				// A malformed invalidation is a gap: it purges.
				if inv.Reason != coord.ReasonMalformed {
					t.Fatalf("a foreign message made a PurgeAll %q", inv.Reason)
				}
				continue
			default:
				t.Fatalf("delivered invalidation kind %v from a foreign message", inv.Kind)
			}
			if inv.InstanceID == "" || inv.InstanceID == "fuzz-self" {
				t.Fatalf("delivered an invalidation from instance %q", inv.InstanceID)
			}
			if len(inv.Metadata) > 0 && !json.Valid(inv.Metadata) {
				t.Fatalf("delivered invalid metadata %q", inv.Metadata)
			}
		}
		for _, e := range r.events[ne:] {
			if e.Topic != foreignTopic || !json.Valid(e.Payload) || e.InstanceID == "" || e.InstanceID == "fuzz-self" {
				t.Fatalf("delivered a bad event %+v", e)
			}
		}
		// Keep memory bounded over a long run.
		r.invs, r.events = r.invs[:0], r.events[:0]
	})
}
