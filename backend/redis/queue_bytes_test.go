package redis_test

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBlockedSubscriberBoundedByBytes: invalidations and events of 900
// KiB to subscribers whose handlers are blocked grow the heap by about
// the byte budget (coord.DefaultQueueBytes, 64 MiB), not by what was
// sent (144 MiB); what passes the budget is dropped and counted, and the
// invalidation subscriber gets a PurgeAll "overflow".
func TestBlockedSubscriberBoundedByBytes(t *testing.T) {
	const (
		item   = 900 << 10
		nInv   = 100
		nEv    = 60
		budget = coord.DefaultQueueBytes
		slack  = 32 << 20 // buffers, the messages in flight, GC timing
	)
	srv := redistest.Start(t)
	ctx := t.Context()
	pubClient := goredis.NewClient(srv.Options())
	subClient := goredis.NewClient(srv.Options())
	t.Cleanup(func() { _ = pubClient.Close(); _ = subClient.Close() })
	pub, err := coordredis.New(pubClient, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := coordredis.New(subClient, nil)
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(func() {
		open()
		_ = sub.Close(context.Background())
		_ = pub.Close(context.Background())
	})
	var purges atomic.Int32
	var last atomic.Value
	if _, err := sub.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
		<-gate
		if inv.Kind == coord.PurgeAll {
			purges.Add(1)
			last.Store(inv.Reason)
		}
	}); err != nil {
		t.Fatal(err)
	}
	var evs atomic.Int32
	if _, err := sub.Events().Subscribe(ctx, "big", func(coord.Event) { <-gate; evs.Add(1) }); err != nil {
		t.Fatal(err)
	}
	big := json.RawMessage(`"` + strings.Repeat("a", item-2) + `"`)
	base := heapInUse()
	// One message at a time, each read before the next is sent: a
	// subscriber reading slower than the publisher would otherwise be
	// disconnected by Redis's output buffer limit, which is not what this
	// test is about.
	for i := range max(nInv, nEv) {
		if i < nInv {
			if err := pub.Invalidator().Invalidate(ctx, "k", big); err != nil {
				t.Fatal(err)
			}
		}
		if i < nEv {
			if err := pub.Events().Publish(ctx, "big", big); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 10*time.Second, func() bool {
			is, es := sub.Invalidator().Stats(), sub.Events().Stats()
			return is.Received+is.Dropped >= uint64(min(i+1, nInv)) && es.Received+es.Dropped >= uint64(min(i+1, nEv))
		}, "the message received or dropped")
	}
	grown := int64(heapInUse()) - int64(base)
	t.Logf("heap grew by %d MiB for %d MiB sent to blocked handlers", grown>>20, (nInv+nEv)*item>>20)
	if grown > budget+slack {
		t.Errorf("heap grew by %d MiB, want at most the %d MiB budget and %d MiB slack", grown>>20, budget>>20, slack>>20)
	}
	is, es := sub.Invalidator().Stats(), sub.Events().Stats()
	if is.Dropped == 0 || es.Dropped == 0 {
		t.Errorf("nothing dropped past the budget: invalidations %+v, events %+v", is, es)
	}
	open()
	eventually(t, 5*time.Second, func() bool { return purges.Load() >= 1 }, "a PurgeAll after the dropped invalidations")
	if r, _ := last.Load().(string); r != coord.ReasonOverflow {
		t.Errorf("last PurgeAll reason %q, want %q", r, coord.ReasonOverflow)
	}
}
