package redis

import (
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// TestDeliverInvalidationAllocs: the subscriber's work for an
// invalidation without metadata, from the received payload to the
// subscription's queue and its handler, allocates nothing: its key and
// instance ID slice the payload (a string go-redis made for this message
// alone), which the queued item is charged for.
func TestDeliverInvalidationAllocs(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	client := goredis.NewClient(srv.Options())
	defer client.Close()
	b, err := New(client, &Options{InstanceID: "sub", HealthInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close(ctx) }()
	var got atomic.Int64
	var last atomic.Pointer[string]
	s, err := b.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
		if inv.Kind == coord.KeyInvalidation {
			if got.Add(1) == 1 {
				k := inv.Key
				last.Store(&k)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	payload := string(encodeInvalidation("pub", "user:42:profile", nullPayload, time.UnixMilli(1700000000123)))
	const runs = 1000
	n := testing.AllocsPerRun(runs, func() { b.inv.deliver(payload, false) })
	coordtest.Eventually(t, 5*time.Second, func() bool { return got.Load() == runs+1 }, "every invalidation handled")
	if k := last.Load(); k == nil || *k != "user:42:profile" {
		t.Fatalf("handler got key %v", k)
	}
	if n != 0 {
		t.Fatalf("deliver of an invalidation without metadata: %v allocations, want 0", n)
	}
}

// BenchmarkDeliver: the subscriber loop's work for one received message,
// from the payload go-redis returns to the subscription's handler (decode,
// queue, the hop to the handler's goroutine), as fast as one goroutine
// can deliver; dropped/op is the share the queue dropped.
func BenchmarkDeliver(b *testing.B) {
	srv := redistest.Start(b)
	ctx := b.Context()
	client := goredis.NewClient(srv.Options())
	defer client.Close()
	be, err := New(client, &Options{InstanceID: "sub", HealthInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = be.Close(ctx) }()
	var got atomic.Int64
	is, err := be.Invalidator().Subscribe(ctx, func(coord.Invalidation) { got.Add(1) })
	if err != nil {
		b.Fatal(err)
	}
	defer is.Unsubscribe()
	es, err := be.Events().Subscribe(ctx, "bench", func(coord.Event) { got.Add(1) })
	if err != nil {
		b.Fatal(err)
	}
	defer es.Unsubscribe()
	for _, c := range []struct {
		name    string
		payload string
		deliver func(string)
		dropped func() uint64
	}{
		{"invalidation", string(encodeInvalidation("pub", "k:12345", nullPayload, time.UnixMilli(1700000000123))),
			func(p string) { be.inv.deliver(p, false) }, func() uint64 { return be.inv.dropped.Load() }},
		{"event", string(encodeMessage(envelopeHead("pub"), fieldEvent, "bench", fieldPayload, []byte("12345"), time.UnixMilli(1700000000123))),
			be.events.deliver, func() uint64 { return be.events.dropped.Load() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			got0, dropped0 := got.Load(), c.dropped()
			b.ReportAllocs()
			for b.Loop() {
				c.deliver(c.payload)
			}
			n := int64(b.N)
			coordtest.Eventually(b, 10*time.Second, func() bool { return got.Load()-got0+int64(c.dropped()-dropped0) >= n }, "drained")
			b.ReportMetric(float64(c.dropped()-dropped0)/float64(b.N), "dropped/op")
		})
	}
}
