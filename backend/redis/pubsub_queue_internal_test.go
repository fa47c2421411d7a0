package redis

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

// testSub is an invalidation subscription with a handler that records
// what it gets and, while gate is closed, blocks.
type testSub struct {
	*subscription[coord.Invalidation]
	dropped, purges, panics atomic.Uint64

	mu   sync.Mutex
	got  []coord.Invalidation
	gate chan struct{}
	in   chan struct{} // a token when the handler starts (while there is room)
}

func newTestSub(t *testing.T, limit int) *testSub {
	t.Helper()
	ts := &testSub{gate: make(chan struct{}), in: make(chan struct{}, 1024)}
	ts.subscription = newSubscription(limit, func(v coord.Invalidation) {
		select {
		case ts.in <- struct{}{}:
		default:
		}
		<-ts.gate
		ts.mu.Lock()
		ts.got = append(ts.got, v)
		ts.mu.Unlock()
	}, subCounters{&ts.dropped, &ts.purges, &ts.panics})
	ts.purge = func(reason string) coord.Invalidation {
		return coord.Invalidation{Kind: coord.PurgeAll, Reason: reason}
	}
	ts.isPurge = func(v coord.Invalidation) bool { return v.Kind == coord.PurgeAll }
	var wg sync.WaitGroup
	wg.Go(ts.run)
	t.Cleanup(func() {
		ts.Unsubscribe()
		ts.open()
		wg.Wait()
	})
	return ts
}

func (ts *testSub) open() {
	select {
	case <-ts.gate:
	default:
		close(ts.gate)
	}
}

func (ts *testSub) delivered() []coord.Invalidation {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]coord.Invalidation(nil), ts.got...)
}

func keyInv(i int) coord.Invalidation {
	return coord.Invalidation{Kind: coord.KeyInvalidation, Key: "k" + strconv.Itoa(i)}
}

func waitIn(t *testing.T, ts *testSub) {
	t.Helper()
	select {
	case <-ts.in:
	case <-time.After(2 * time.Second):
		t.Fatal("handler not called within 2s")
	}
}

// TestSubscriptionOverflowKeepsQueued: on overflow the new items are
// dropped and counted, what was queued is still delivered, and one
// PurgeAll "overflow" follows it; items pushed once there is room again
// come after the PurgeAll.
func TestSubscriptionOverflowKeepsQueued(t *testing.T) {
	const limit = 4
	ts := newTestSub(t, limit)
	ts.push(keyInv(0)) // handed to the goroutine, whose handler blocks
	waitIn(t, ts)
	for i := 1; i <= limit; i++ {
		if !ts.push(keyInv(i)) {
			t.Fatalf("push %d refused with %d queued", i, i-1)
		}
	}
	for i := limit + 1; i <= limit+3; i++ {
		if ts.push(keyInv(i)) {
			t.Fatalf("push %d accepted on a full queue", i)
		}
	}
	if got := ts.dropped.Load(); got != 3 {
		t.Fatalf("dropped = %d, want 3", got)
	}
	ts.open()
	waitFor(t, 2*time.Second, func() bool { return len(ts.delivered()) == limit+2 }, "queued items and the PurgeAll delivered")
	if !ts.push(keyInv(99)) {
		t.Fatal("push refused after the queue drained")
	}
	waitFor(t, 2*time.Second, func() bool { return len(ts.delivered()) == limit+3 }, "the item after the PurgeAll delivered")
	got := ts.delivered()
	for i := 0; i <= limit; i++ {
		if got[i].Kind != coord.KeyInvalidation || got[i].Key != "k"+strconv.Itoa(i) {
			t.Fatalf("delivery %d = %+v, want key k%d (all: %+v)", i, got[i], i, got)
		}
	}
	if p := got[limit+1]; p.Kind != coord.PurgeAll || p.Reason != "overflow" {
		t.Fatalf("delivery %d = %+v, want PurgeAll overflow", limit+1, p)
	}
	if last := got[limit+2]; last.Key != "k99" {
		t.Fatalf("last delivery = %+v, want k99", last)
	}
	if n := ts.purges.Load(); n != 1 {
		t.Fatalf("purges = %d, want 1", n)
	}
}

// TestSubscriptionOverflowOnePurge: a sustained flood queues one PurgeAll
// at a time, never more than the queue plus that PurgeAll.
func TestSubscriptionOverflowOnePurge(t *testing.T) {
	const limit = 2
	ts := newTestSub(t, limit)
	ts.push(keyInv(0))
	waitIn(t, ts)
	for i := 1; i <= 50; i++ {
		ts.push(keyInv(i))
	}
	ts.pushPurge("reconnect") // behind an overflow PurgeAll: covered by it
	ts.subscription.mu.Lock()
	n := ts.n
	ts.subscription.mu.Unlock()
	if n != limit+1 {
		t.Fatalf("%d queued, want %d (the limit and one PurgeAll)", n, limit+1)
	}
	if got := ts.dropped.Load(); got != 50-limit {
		t.Fatalf("dropped = %d, want %d", got, 50-limit)
	}
	ts.open()
	waitFor(t, 2*time.Second, func() bool { return len(ts.delivered()) == limit+2 }, "queue drained")
	if got := ts.delivered(); got[limit+1].Kind != coord.PurgeAll || got[limit+1].Reason != "overflow" {
		t.Fatalf("deliveries %+v, want the PurgeAll overflow last", got)
	}
}

// TestSubscriptionUnsubscribeParked: Unsubscribe wakes a goroutine parked
// on an empty queue, and nothing pushed afterwards is delivered.
func TestSubscriptionUnsubscribeParked(t *testing.T) {
	ts := newTestSub(t, 8)
	ts.open()
	ts.push(keyInv(1))
	waitFor(t, 2*time.Second, func() bool { return len(ts.delivered()) == 1 }, "first item delivered")
	// The goroutine parks on the empty queue.
	waitFor(t, 2*time.Second, func() bool {
		ts.subscription.mu.Lock()
		defer ts.subscription.mu.Unlock()
		return ts.idle
	}, "goroutine parked")
	ts.Unsubscribe()
	select {
	case <-ts.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed within 2s of Unsubscribe")
	}
	if ts.push(keyInv(2)) {
		t.Fatal("push accepted after Unsubscribe")
	}
	if got := ts.delivered(); len(got) != 1 {
		t.Fatalf("delivered %+v after Unsubscribe", got)
	}
}

// TestSubscriptionUnsubscribeDropsQueued: items queued behind a running
// handler are not delivered once Unsubscribe has returned.
func TestSubscriptionUnsubscribeDropsQueued(t *testing.T) {
	ts := newTestSub(t, 8)
	ts.push(keyInv(0))
	waitIn(t, ts)
	for i := 1; i <= 3; i++ {
		ts.push(keyInv(i))
	}
	ts.Unsubscribe()
	ts.open()
	select {
	case <-ts.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed within 2s of Unsubscribe")
	}
	if got := ts.delivered(); len(got) != 1 || got[0].Key != "k0" {
		t.Fatalf("delivered %+v, want only the running k0", got)
	}
}

// TestSubscriptionHandOff: many pushes, some finding the goroutine parked
// and some finding it running, arrive once each and in order.
func TestSubscriptionHandOff(t *testing.T) {
	ts := newTestSub(t, 1<<16)
	ts.open()
	const n = 5000
	for i := range n {
		if !ts.push(keyInv(i)) {
			t.Fatalf("push %d refused", i)
		}
		if i%64 == 0 {
			waitFor(t, 2*time.Second, func() bool { return len(ts.delivered()) == i+1 }, "caught up")
		}
	}
	waitFor(t, 5*time.Second, func() bool { return len(ts.delivered()) == n }, "all delivered")
	for i, v := range ts.delivered() {
		if v.Key != "k"+strconv.Itoa(i) {
			t.Fatalf("delivery %d = %q", i, v.Key)
		}
	}
}

// TestInvalidationQueueDefault: invalidation subscriptions get
// coord.DefaultInvalidationQueueSize and event subscriptions
// coord.DefaultQueueSize unless Options.QueueSize or WithQueueSize sets a
// size.
func TestInvalidationQueueDefault(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	for _, c := range []struct {
		optSize, subSize, wantInv, wantEv int
	}{
		{0, 0, coord.DefaultInvalidationQueueSize, coord.DefaultQueueSize},
		{100, 0, 100, 100},
		{0, 5, 5, 5},
		{100, 7, 7, 7},
	} {
		client := goredis.NewClient(srv.Options())
		b, err := New(client, &Options{QueueSize: c.optSize})
		if err != nil {
			t.Fatal(err)
		}
		var opts []coord.SubscribeOption
		if c.subSize > 0 {
			opts = append(opts, coord.WithQueueSize(c.subSize))
		}
		is, err := b.Invalidator().Subscribe(ctx, func(coord.Invalidation) {}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		es, err := b.Events().Subscribe(ctx, "t", func(coord.Event) {}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := is.(*invSub).limit; got != c.wantInv {
			t.Errorf("Options.QueueSize %d, WithQueueSize %d: invalidation queue %d, want %d", c.optSize, c.subSize, got, c.wantInv)
		}
		if got := es.(*evSub).limit; got != c.wantEv {
			t.Errorf("Options.QueueSize %d, WithQueueSize %d: event queue %d, want %d", c.optSize, c.subSize, got, c.wantEv)
		}
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
		_ = client.Close()
	}
}
