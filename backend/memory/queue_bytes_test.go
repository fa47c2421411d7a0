package memory

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// TestBlockedSubscriberBoundedByBytes: invalidations and events of 900
// KiB to subscribers whose handlers are blocked grow the heap by about
// the byte budget (coord.DefaultQueueBytes, 64 MiB), not by what was sent
// (225 MiB); what passes the budget is
// dropped and counted, and the invalidation subscriber gets a PurgeAll
// "overflow". The node's own accounting stays within the budget.
func TestBlockedSubscriberBoundedByBytes(t *testing.T) {
	const (
		item   = 900 << 10
		nInv   = 150
		nEv    = 100
		budget = coord.DefaultQueueBytes
		slack  = 32 << 20
	)
	ns := nodes(t, 2)
	pub, sub := ns[0], ns[1]
	ctx := t.Context()
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open)
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
	if _, err := sub.Events().Subscribe(ctx, "big", func(coord.Event) { <-gate }); err != nil {
		t.Fatal(err)
	}
	big := json.RawMessage(`"` + strings.Repeat("a", item-2) + `"`) // each publish encodes its own copy
	base := heapInUse()
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
		if u := sub.budget.Used(); u > budget {
			t.Fatalf("queued %d bytes, past the %d budget", u, budget)
		}
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
	eventually(t, 5*time.Second, func() bool { return sub.budget.Used() == 0 }, "the budget returned once drained")
	_ = sub.Close(context.Background())
}

// TestQueueBytesOption: NodeOptions.QueueBytes sets the budget; negative
// means none.
func TestQueueBytesOption(t *testing.T) {
	hub := NewHub(nil)
	for _, c := range []struct {
		opt, want int64
	}{{0, coord.DefaultQueueBytes}, {1 << 20, 1 << 20}, {-1, 0}} {
		n := hub.NewNode(&NodeOptions{QueueBytes: c.opt})
		if got := n.budget.Limit(); got != c.want {
			t.Errorf("QueueBytes %d: budget %d, want %d", c.opt, got, c.want)
		}
		_ = n.Close(context.Background())
	}
}
