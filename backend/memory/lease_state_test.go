package memory

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// waitOnNames runs, for each of count names from first, an acquire by a,
// a waiter from b queued behind it, the release that hands the lease to
// the waiter, and the waiter's release; workers goroutines share the work.
func waitOnNames(t *testing.T, a, b *Node, first, count, workers int) {
	t.Helper()
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := first + w; i < first+count; i += workers {
				if err := waitOnce(ctx, a, b, fmt.Sprintf("name-%d", i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func waitOnce(ctx context.Context, a, b *Node, name string) error {
	l, err := a.Locker().Acquire(ctx, name, coord.WithTTL(time.Minute))
	if err != nil {
		return err
	}
	got := make(chan error, 1)
	go func() {
		wl, err := b.Locker().Acquire(ctx, name, coord.WithTTL(time.Minute), coord.WithWait(time.Minute))
		if err == nil {
			err = wl.Release(ctx)
		}
		got <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for queued(a.hub, name) == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: the waiter did not queue within 5s", name)
		}
		runtime.Gosched()
	}
	if err := l.Release(ctx); err != nil {
		return err
	}
	return <-got
}

// TestNoStateLeftPerName: once no lease or waiter is left on a name, the
// hub keeps nothing of it: waiting on 100k distinct names leaves the heap
// near where it was (before, each name kept about 100 bytes for ever) and
// fences still strictly increase per name.
func TestNoStateLeftPerName(t *testing.T) {
	ns := nodes(t, 2)
	a, b := ns[0], ns[1]
	ctx := t.Context()
	waitOnNames(t, a, b, 0, 1000, 8) // warm up
	before := heapInUse()
	const names = 100_000
	waitOnNames(t, a, b, 1000, names, 8)
	after := heapInUse()
	grown := int64(after) - int64(before)
	t.Logf("heap %d -> %d bytes (%+d, %.1f B per name)", before, after, grown, float64(grown)/names)
	if grown > 2<<20 {
		t.Errorf("heap grew by %d bytes (%.0f B per name) after waiting on %d names", grown, float64(grown)/names, names)
	}
	a.hub.lmu.Lock()
	left := len(a.hub.resources)
	a.hub.lmu.Unlock()
	if left != 0 {
		t.Errorf("the hub keeps %d resources with no holder or waiter", left)
	}
	// Fences on one name keep increasing across its state being dropped.
	var last int64
	for i := range 3 {
		l, err := a.Locker().Acquire(ctx, "name-5")
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence() <= last {
			t.Fatalf("round %d: fence %d not above %d", i, l.Fence(), last)
		}
		last = l.Fence()
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
