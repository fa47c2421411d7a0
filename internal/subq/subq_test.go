package subq

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// msg is a test item: a key, or a control item.
type msg struct {
	key    string
	ctl    Control
	reason string
	body   []byte
}

// testQueue is a queue with a handler that records what it gets and,
// while gate is closed, blocks.
type testQueue struct {
	*Queue[msg]
	dropped, purges, panics atomic.Uint64

	mu   sync.Mutex
	got  []msg
	gate chan struct{}
	in   chan struct{} // a token when the handler starts (while there is room)
}

func newTestQueue(t *testing.T, limit int, budget *Budget, gaps bool) *testQueue {
	t.Helper()
	tq := &testQueue{gate: make(chan struct{}), in: make(chan struct{}, 1024)}
	tq.Queue = New(Config[msg]{
		Limit: limit,
		Handler: func(v msg) {
			select {
			case tq.in <- struct{}{}:
			default:
			}
			<-tq.gate
			tq.mu.Lock()
			tq.got = append(tq.got, v)
			tq.mu.Unlock()
		},
		Size:    func(v msg) int { return len(v.key) + len(v.body) },
		Control: func(c Control, reason string) msg { return msg{ctl: c, reason: reason} },
		Gaps:    gaps,
		Budget:  budget,
		Dropped: &tq.dropped,
		Purges:  &tq.purges,
		Panics:  &tq.panics,
	})
	var wg sync.WaitGroup
	tq.Start(context.Background(), &wg)
	t.Cleanup(func() {
		tq.Unsubscribe()
		tq.open()
		wg.Wait()
	})
	return tq
}

func (tq *testQueue) open() {
	select {
	case <-tq.gate:
	default:
		close(tq.gate)
	}
}

func (tq *testQueue) delivered() []msg {
	tq.mu.Lock()
	defer tq.mu.Unlock()
	return append([]msg(nil), tq.got...)
}

func key(i int) msg { return msg{key: "k" + strconv.Itoa(i)} }

func waitIn(t *testing.T, tq *testQueue) {
	t.Helper()
	select {
	case <-tq.in:
	case <-time.After(2 * time.Second):
		t.Fatal("handler not called within 2s")
	}
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestOverflowKeepsQueued: on overflow the new items are dropped and
// counted, what was queued is still delivered, and one PurgeAll
// "overflow" follows it; items pushed once there is room again come
// after the PurgeAll.
func TestOverflowKeepsQueued(t *testing.T) {
	const limit = 4
	tq := newTestQueue(t, limit, nil, false)
	tq.Push(key(0)) // handed to the goroutine, whose handler blocks
	waitIn(t, tq)
	for i := 1; i <= limit; i++ {
		if !tq.Push(key(i)) {
			t.Fatalf("push %d refused with %d queued", i, i-1)
		}
	}
	for i := limit + 1; i <= limit+3; i++ {
		if tq.Push(key(i)) {
			t.Fatalf("push %d accepted on a full queue", i)
		}
	}
	if got := tq.dropped.Load(); got != 3 {
		t.Fatalf("dropped = %d, want 3", got)
	}
	tq.open()
	waitFor(t, 2*time.Second, func() bool { return len(tq.delivered()) == limit+2 }, "queued items and the PurgeAll delivered")
	if !tq.Push(key(99)) {
		t.Fatal("push refused after the queue drained")
	}
	waitFor(t, 2*time.Second, func() bool { return len(tq.delivered()) == limit+3 }, "the item after the PurgeAll delivered")
	got := tq.delivered()
	for i := 0; i <= limit; i++ {
		if got[i].ctl != 0 || got[i].key != "k"+strconv.Itoa(i) {
			t.Fatalf("delivery %d = %+v, want key k%d (all: %+v)", i, got[i], i, got)
		}
	}
	if p := got[limit+1]; p.ctl != Purge || p.reason != "overflow" {
		t.Fatalf("delivery %d = %+v, want PurgeAll overflow", limit+1, p)
	}
	if last := got[limit+2]; last.key != "k99" {
		t.Fatalf("last delivery = %+v, want k99", last)
	}
	if n := tq.purges.Load(); n != 1 {
		t.Fatalf("purges = %d, want 1", n)
	}
}

// TestOverflowOnePurge: a sustained flood queues one PurgeAll at a time,
// never more than the queue plus that PurgeAll; a PurgeAll "reconnect"
// merged into it keeps its reason, so the end of a gap is never lost.
func TestOverflowOnePurge(t *testing.T) {
	const limit = 2
	tq := newTestQueue(t, limit, nil, false)
	tq.Push(key(0))
	waitIn(t, tq)
	for i := 1; i <= 50; i++ {
		tq.Push(key(i))
	}
	tq.Purge(ReasonReconnect) // behind an overflow PurgeAll: merged into it
	tq.Purge("overflow")      // and does not take the reconnect's place
	if n, _ := tq.Queued(); n != limit+1 {
		t.Fatalf("%d queued, want %d (the limit and one PurgeAll)", n, limit+1)
	}
	if got := tq.dropped.Load(); got != 50-limit {
		t.Fatalf("dropped = %d, want %d", got, 50-limit)
	}
	tq.open()
	waitFor(t, 2*time.Second, func() bool { return len(tq.delivered()) == limit+2 }, "queue drained")
	if got := tq.delivered(); got[limit+1].ctl != Purge || got[limit+1].reason != ReasonReconnect {
		t.Fatalf("deliveries %+v, want the PurgeAll reconnect last", got)
	}
}

// TestBudgetBoundsBytes: with a byte budget shared by two queues, large
// items pushed to blocked handlers are dropped once the budget is spent,
// however long the queues; the bytes charged never pass the budget, the
// invalidation-like queue ends in a PurgeAll "overflow", and the budget
// is returned as the queues drain or end.
func TestBudgetBoundsBytes(t *testing.T) {
	const itemBytes = 900 << 10
	budget := NewBudget(8 << 20)
	a := newTestQueue(t, 8192, budget, false)
	ev := New(Config[msg]{Limit: 1024, Handler: func(msg) { <-a.gate }, Size: func(v msg) int { return len(v.body) }, Budget: budget, Dropped: &a.dropped})
	var wg sync.WaitGroup
	ev.Start(context.Background(), &wg)
	defer func() {
		ev.Unsubscribe()
		wg.Wait()
	}()
	body := make([]byte, itemBytes) // shared: the test measures the engine's accounting
	a.Push(msg{key: "first", body: body})
	waitIn(t, a)
	ev.Push(msg{body: body}) // handed to its blocked handler
	queued := 0
	for i := range 200 {
		if a.Push(msg{key: "k" + strconv.Itoa(i), body: body}) {
			queued++
		}
		if ev.Push(msg{body: body}) {
			queued++
		}
		if u := budget.Used(); u > budget.Limit() {
			t.Fatalf("budget used %d past its limit %d", u, budget.Limit())
		}
	}
	if max := int(budget.Limit() / itemBytes); queued > max || queued < max-1 {
		t.Fatalf("%d items of 900 KiB queued within 8 MiB, want about %d", queued, max)
	}
	if a.dropped.Load() < 300 {
		t.Fatalf("dropped = %d, want the ~%d items past the budget", a.dropped.Load(), 400-queued)
	}
	a.open()
	waitFor(t, 2*time.Second, func() bool {
		got := a.delivered()
		return len(got) > 0 && got[len(got)-1].ctl == Purge && got[len(got)-1].reason == "overflow"
	}, "the PurgeAll overflow delivered last")
	ev.Unsubscribe()
	waitFor(t, 2*time.Second, func() bool { return budget.Used() == 0 }, "budget returned")
}

// TestGapAhead: a Gap notice goes ahead of queued items but behind a
// queued PurgeAll "reconnect", is queued once, and only for a queue that
// asked for them.
func TestGapAhead(t *testing.T) {
	tq := newTestQueue(t, 16, nil, true)
	tq.Push(key(0))
	waitIn(t, tq)
	tq.Push(key(1))
	tq.Push(key(2))
	tq.Gap("silent")
	tq.Gap("silent")
	tq.Purge(ReasonReconnect)
	tq.Push(key(3))
	tq.Gap("disconnected") // a new gap: after the reconnect
	tq.open()
	want := []msg{key(0), {ctl: Gap, reason: "silent"}, key(1), key(2), {ctl: Purge, reason: ReasonReconnect}, {ctl: Gap, reason: "disconnected"}, key(3)}
	waitFor(t, 2*time.Second, func() bool { return len(tq.delivered()) == len(want) }, "all delivered")
	got := tq.delivered()
	for i := range want {
		if got[i].key != want[i].key || got[i].ctl != want[i].ctl || got[i].reason != want[i].reason {
			t.Fatalf("deliveries %+v, want %+v", got, want)
		}
	}

	plain := newTestQueue(t, 16, nil, false)
	plain.open()
	plain.Gap("silent")
	plain.Push(key(1))
	waitFor(t, 2*time.Second, func() bool { return len(plain.delivered()) == 1 }, "delivered")
	if got := plain.delivered(); got[0].ctl != 0 {
		t.Fatalf("a queue without Gaps got %+v", got)
	}
}

// TestUnsubscribeParked: Unsubscribe wakes a goroutine parked on an empty
// queue, and nothing pushed afterwards is delivered.
func TestUnsubscribeParked(t *testing.T) {
	tq := newTestQueue(t, 8, nil, false)
	tq.open()
	tq.Push(key(1))
	waitFor(t, 2*time.Second, func() bool { return len(tq.delivered()) == 1 }, "first item delivered")
	waitFor(t, 2*time.Second, tq.Idle, "goroutine parked")
	tq.Unsubscribe()
	select {
	case <-tq.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed within 2s of Unsubscribe")
	}
	if tq.Push(key(2)) {
		t.Fatal("push accepted after Unsubscribe")
	}
	if got := tq.delivered(); len(got) != 1 {
		t.Fatalf("delivered %+v after Unsubscribe", got)
	}
}

// TestUnsubscribeDropsQueued: items queued behind a running handler are
// not delivered once Unsubscribe has returned, and their bytes go back
// to the budget.
func TestUnsubscribeDropsQueued(t *testing.T) {
	budget := NewBudget(1 << 20)
	tq := newTestQueue(t, 8, budget, false)
	tq.Push(key(0))
	waitIn(t, tq)
	for i := 1; i <= 3; i++ {
		tq.Push(key(i))
	}
	if budget.Used() == 0 {
		t.Fatal("queued items not charged to the budget")
	}
	tq.Unsubscribe()
	if u := budget.Used(); u != 0 {
		t.Fatalf("budget used %d after Unsubscribe, want 0", u)
	}
	tq.open()
	select {
	case <-tq.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed within 2s of Unsubscribe")
	}
	if got := tq.delivered(); len(got) != 1 || got[0].key != "k0" {
		t.Fatalf("delivered %+v, want only the running k0", got)
	}
}

// TestHandOff: many pushes, some finding the goroutine parked and some
// finding it running, arrive once each and in order.
func TestHandOff(t *testing.T) {
	tq := newTestQueue(t, 1<<16, nil, false)
	tq.open()
	const n = 5000
	for i := range n {
		if !tq.Push(key(i)) {
			t.Fatalf("push %d refused", i)
		}
		if i%64 == 0 {
			waitFor(t, 2*time.Second, func() bool { return len(tq.delivered()) == i+1 }, "caught up")
		}
	}
	waitFor(t, 5*time.Second, func() bool { return len(tq.delivered()) == n }, "all delivered")
	for i, v := range tq.delivered() {
		if v.key != "k"+strconv.Itoa(i) {
			t.Fatalf("delivery %d = %q", i, v.key)
		}
	}
}

// TestPanicRecovered: a panicking handler is recovered and counted, and
// the next item is delivered.
func TestPanicRecovered(t *testing.T) {
	var panics atomic.Uint64
	got := make(chan string, 2)
	q := New(Config[msg]{Limit: 4, Panics: &panics, Handler: func(v msg) {
		if v.key == "boom" {
			panic("boom")
		}
		got <- v.key
	}})
	var wg sync.WaitGroup
	q.Start(context.Background(), &wg)
	defer func() {
		q.Unsubscribe()
		wg.Wait()
	}()
	q.Push(msg{key: "boom"})
	q.Push(msg{key: "after"})
	select {
	case k := <-got:
		if k != "after" {
			t.Fatalf("got %q", k)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("item after a panic not delivered within 2s")
	}
	if panics.Load() != 1 {
		t.Fatalf("panics = %d, want 1", panics.Load())
	}
}

// TestLimiter: the first hit fires at once, hits within the interval fire
// once when it ends, and Stop cancels a pending fire.
func TestLimiter(t *testing.T) {
	var fired atomic.Int32
	l := NewLimiter(200*time.Millisecond, func() { fired.Add(1) })
	l.Hit()
	if fired.Load() != 1 {
		t.Fatalf("fired %d after the first hit, want 1", fired.Load())
	}
	for range 50 {
		l.Hit()
	}
	if fired.Load() != 1 {
		t.Fatalf("fired %d within the interval, want 1", fired.Load())
	}
	waitFor(t, 2*time.Second, func() bool { return fired.Load() == 2 }, "trailing fire")
	l.Hit() // within the interval of the trailing fire: pending
	l.Stop()
	time.Sleep(300 * time.Millisecond) // longer than the interval: a fire would have come
	if fired.Load() != 2 {
		t.Fatalf("fired %d after Stop, want 2", fired.Load())
	}
}

// TestWaitHonoursCtx: Wait returns ctx's error when a goroutine does not
// end in time, and nil once it has.
func TestWaitHonoursCtx(t *testing.T) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	wg.Go(func() { <-release })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := Wait(ctx, &wg); err == nil {
		t.Fatal("Wait returned nil with a goroutine running")
	}
	close(release)
	if err := Wait(context.Background(), &wg); err != nil {
		t.Fatal(err)
	}
}
