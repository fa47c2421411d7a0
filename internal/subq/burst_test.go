package subq

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord/internal/coordtest"
)

// TestBurstOneProcessor: a source that pushes a burst without ever
// blocking (a subscriber connection's reader with a backlog already in
// its buffer) does not overflow the queue of a handler that keeps up,
// even on one processor, where the handler's goroutine runs only when
// the source lets it: the source yields once the queue is half full.
func TestBurstOneProcessor(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var got atomic.Int64
	var dropped, purges atomic.Uint64
	q := New(Config[int]{
		Limit:   256,
		Handler: func(int) { got.Add(1) },
		Control: func(Control, string) int { return -1 },
		Dropped: &dropped,
		Purges:  &purges,
	})
	var wg sync.WaitGroup
	q.Start(context.Background(), &wg)
	defer func() {
		q.Unsubscribe()
		wg.Wait()
	}()
	const n = 20000
	for i := range n {
		q.Push(i)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return got.Load()+int64(dropped.Load()) >= n
	}, "every push handled or dropped")
	if d := dropped.Load(); d != 0 {
		t.Fatalf("%d of %d pushes dropped (handled %d, %d purges): the pusher never let the handler run", d, n, got.Load(), purges.Load())
	}
}

// TestBlockedHandlerDoesNotBlockPusher: with the handler blocked, pushes
// beyond the queue's length are dropped at once (the pusher yields but
// never waits), and the one PurgeAll follows what was queued.
func TestBlockedHandlerDoesNotBlockPusher(t *testing.T) {
	tq := newTestQueue(t, 64, nil, false)
	tq.Push(key(0))
	waitIn(t, tq)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 10000; i++ {
			tq.Push(key(i))
		}
	}()
	if !coordtest.ClosedWithin(done, 5*time.Second) {
		t.Fatal("pushes to a queue whose handler is blocked did not return within 5s")
	}
	if got := tq.dropped.Load(); got != 10000-64 {
		t.Fatalf("dropped = %d, want %d", got, 10000-64)
	}
	tq.open()
	coordtest.Eventually(t, 2*time.Second, func() bool { return len(tq.delivered()) == 66 }, "the queued items and one PurgeAll delivered")
	d := tq.delivered()
	for i := range 65 {
		if d[i].key != key(i).key {
			t.Fatalf("delivery %d = %+v", i, d[i])
		}
	}
	if d[65].ctl != Purge {
		t.Fatalf("last delivery = %+v, want a PurgeAll", d[65])
	}
}
