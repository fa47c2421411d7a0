package conformance

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// RunRWLocker runs the cases about [coord.RWLocker], its leases and
// [coord.WithRLock] and [coord.WithWriteLock].
func RunRWLocker(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, rwLockerCases())
}

func rwLockerCases() []testCase {
	return []testCase{
		{name: "ReleaseWakesByNotification", serial: true, run: testRWReleaseWakes},
		{name: "CancelledWriterUnblocksReaders", serial: true, run: testRWCancelledWriter},
		{name: "ClosedWriterUnblocksReaders", serial: true, run: testRWClosedWriter},
		{name: "WriterNotStarved", serial: true, run: testRWWriterNotStarved},
		{name: "ReadersShare", run: testRWReadersShare},
		{name: "WriterExcludesReaders", run: testRWWriterExcludesReaders},
		{name: "WriterExcludesWriter", run: testRWWriterExcludesWriter},
		{name: "ReadersQueueBehindWaitingWriter", run: testRWReadersQueue},
		{name: "CrashedReaderExpiresAlone", run: testRWReaderExpiresAlone},
		{name: "WriterExpiryWakesWaiters", run: testRWWriterExpiryWakes},
		{name: "FencesIncrease", run: testRWFences},
		{name: "StaleReleaseAndExtend", run: testRWStale},
		{name: "DoneClosesOnLoss", run: testRWDoneOnLoss},
		{name: "ExtendAndAutoRenew", run: testRWExtendAutoRenew},
		{name: "ForceRelease", run: testRWForceRelease},
		{name: "ExclusionChecker", run: testRWExclusionChecker},
		{name: "DeadlineEndsWait", run: testRWDeadline},
		{name: "ApartFromLocker", run: testRWApartFromLocker},
		{name: "NotInLockerHeld", run: testRWNotInHeld},
		{name: "CloseReleases", run: testRWCloseReleases},
		{name: "BadInput", run: testRWBadInput},
		{name: "WithRLockAndWithWriteLock", run: testRWHelpers},
	}
}

// acquireFunc takes a lease on res from one instance.
type acquireFunc func(ctx context.Context, b coord.Backend, res string, opts ...coord.LockOption) (coord.Lock, error)

func rlock(ctx context.Context, b coord.Backend, res string, opts ...coord.LockOption) (coord.Lock, error) {
	return b.RWLocker().RLock(ctx, res, opts...)
}

func wlock(ctx context.Context, b coord.Backend, res string, opts ...coord.LockOption) (coord.Lock, error) {
	return b.RWLocker().Lock(ctx, res, opts...)
}

// leaseWakeRounds is wakeRounds for any kind of lease: hold0 takes what
// keeps the waiter out and returns what frees it; the waiter takes its
// lease with acquire and a retry delay of the table's retry.
func leaseWakeRounds(t *testing.T, h Harness, what string, hold0 func(ctx context.Context, holder coord.Backend, res string) func(), acquire acquireFunc) {
	t.Helper()
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	const rounds = 5
	slow := 0
	for i := 0; i < rounds; i++ {
		res := fmt.Sprintf("lwake-%d", i)
		holder, waiter := ins[i%3], ins[(i+1)%3]
		release := hold0(ctx, holder, res)
		type result struct {
			at  time.Time
			err error
			l   coord.Lock
		}
		got := make(chan result, 1)
		go func() {
			l, err := acquire(ctx, waiter, res, coord.WithTTL(tm.held), coord.WithRetry(5, tm.retry))
			got <- result{time.Now(), err, l}
		}()
		hold(ctx, tm.settle)
		at := time.Now()
		release()
		r := <-got
		if r.err != nil {
			t.Fatalf("round %d: waiter: %v", i, r.err)
		}
		d := r.at.Sub(at)
		if d > tm.prompt {
			t.Fatalf("round %d: waiter held its lease %v after the %s (RetryDelay %v): waiters are polled, not woken", i, d, what, tm.retry)
		}
		if d > tm.wake {
			slow++
		}
		must(t, r.l.Release(ctx), "Release")
	}
	if slow > 1 {
		t.Fatalf("%d of %d waiters took over %v to get their lease after the %s (RetryDelay %v): waiters are polled, not woken", slow, rounds, tm.wake, what, tm.retry)
	}
}

func testRWReleaseWakes(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	holdWith := func(acquire acquireFunc) func(ctx context.Context, holder coord.Backend, res string) func() {
		return func(ctx context.Context, holder coord.Backend, res string) func() {
			l, err := acquire(ctx, holder, res, coord.WithTTL(tm.held))
			must(t, err, "holder")
			return func() { must(t, l.Release(ctx), "Release") }
		}
	}
	t.Run("WriterReleaseWakesReader", func(t *testing.T) { leaseWakeRounds(t, h, "writer's release", holdWith(wlock), rlock) })
	t.Run("WriterReleaseWakesWriter", func(t *testing.T) { leaseWakeRounds(t, h, "writer's release", holdWith(wlock), wlock) })
	t.Run("ReaderReleaseWakesWriter", func(t *testing.T) { leaseWakeRounds(t, h, "last reader's release", holdWith(rlock), wlock) })
	admin := instances(t, h, 1)[0]
	t.Run("ForceReleaseWakesWriter", func(t *testing.T) {
		leaseWakeRounds(t, h, "force release", func(ctx context.Context, holder coord.Backend, res string) func() {
			_, err := holder.RWLocker().RLock(ctx, res, coord.WithTTL(tm.held))
			must(t, err, "RLock")
			return func() {
				ok, err := admin.RWLocker().ForceRelease(ctx, res)
				if err != nil || !ok {
					t.Errorf("ForceRelease = %v, %v", ok, err)
				}
			}
		}, wlock)
	})
}

// rwState reads State and fails t on error.
func rwState(t *testing.T, b coord.Backend, res string) coord.RWState {
	t.Helper()
	st, err := b.RWLocker().State(ctxOf(t), res)
	must(t, err, "State")
	return st
}

func testRWReadersShare(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	if st := rwState(t, ins[0], "rs"); st != (coord.RWState{}) {
		t.Errorf("State of an unused resource = %+v, want zero", st)
	}
	var ls []coord.Lock
	for i, in := range ins {
		l, err := in.RWLocker().RLock(ctx, "rs", coord.WithTTL(tm.long), coord.WithRetry(0, 0))
		if err != nil {
			t.Fatalf("reader %d: %v: readers do not share", i, err)
		}
		ls = append(ls, l)
	}
	if st := rwState(t, ins[1], "rs"); st.Readers != 3 || st.Writer || st.WritersWaiting != 0 {
		t.Errorf("State with three readers = %+v", st)
	}
	if _, err := ins[0].RWLocker().Lock(ctx, "rs", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("a writer got in beside three readers: %v", err)
	}
	for _, l := range ls {
		if l.Resource() != "rs" || l.Token() == "" {
			t.Errorf("read lease: resource %q, token empty %v", l.Resource(), l.Token() == "")
		}
		must(t, l.Release(ctx), "Release")
	}
	if st := rwState(t, ins[2], "rs"); st != (coord.RWState{}) {
		t.Errorf("State after every reader released = %+v", st)
	}
	l, err := ins[0].RWLocker().Lock(ctx, "rs", coord.WithRetry(0, 0))
	must(t, err, "Lock after the readers left")
	must(t, l.Release(ctx), "Release")
}

func testRWWriterExcludesReaders(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	w, err := ins[0].RWLocker().Lock(ctx, "wer", coord.WithTTL(tm.long))
	must(t, err, "Lock")
	for i, in := range ins {
		if _, err := in.RWLocker().RLock(ctx, "wer", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
			t.Errorf("instance %d: a reader got in beside a writer: %v", i, err)
		}
	}
	if st := rwState(t, ins[1], "wer"); !st.Writer || st.Readers != 0 {
		t.Errorf("State with a writer = %+v", st)
	}
	must(t, w.Release(ctx), "Release")
	r, err := ins[1].RWLocker().RLock(ctx, "wer", coord.WithRetry(0, 0))
	must(t, err, "RLock after the writer left")
	must(t, r.Release(ctx), "Release")
}

func testRWWriterExcludesWriter(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	w, err := ins[0].RWLocker().Lock(ctx, "wew", coord.WithTTL(tm.long))
	must(t, err, "Lock")
	for i, in := range ins {
		if _, err := in.RWLocker().Lock(ctx, "wew", coord.WithRetry(1, tm.poll)); !errors.Is(err, coord.ErrNotAcquired) {
			t.Errorf("instance %d: a second writer got in: %v", i, err)
		}
	}
	// A Locker lease of the same name is another resource.
	must(t, w.Release(ctx), "Release")
	w2, err := ins[1].RWLocker().Lock(ctx, "wew", coord.WithRetry(0, 0))
	must(t, err, "Lock after the writer left")
	if w2.Fence() <= w.Fence() {
		t.Errorf("fence %d is not above %d", w2.Fence(), w.Fence())
	}
	must(t, w2.Release(ctx), "Release")
}

func testRWWriterNotStarved(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 4)
	ctx := ctxOf(t)
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var reads, readerErrs atomic.Int64
	// Two readers per instance on three instances, each holding for
	// work and starting again at once: their holds overlap, so without
	// writer preference the resource is never free.
	for i := 0; i < 6; i++ {
		in := ins[i%3]
		wg.Go(func() {
			time.Sleep(time.Duration(i) * tm.work / 6)
			for rctx.Err() == nil {
				l, err := in.RWLocker().RLock(rctx, "wns", coord.WithTTL(tm.held), coord.WithWait(tm.poll))
				if err != nil {
					if rctx.Err() == nil {
						readerErrs.Add(1)
					}
					return
				}
				reads.Add(1)
				hold(rctx, tm.work)
				if err := l.Release(context.WithoutCancel(ctx)); err != nil {
					readerErrs.Add(1)
				}
			}
		})
	}
	defer func() { stop(); wg.Wait() }()
	eventually(t, tm.guard, func() bool { return reads.Load() >= 12 }, "the readers run")
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, tm.retry)
	defer cancel()
	w, err := ins[3].RWLocker().Lock(wctx, "wns", coord.WithTTL(tm.held), coord.WithWait(tm.poll))
	if err != nil {
		t.Fatalf("a writer was starved by overlapping readers for %v: %v", time.Since(start), err)
	}
	if st := rwState(t, ins[0], "wns"); !st.Writer || st.Readers != 0 {
		t.Errorf("State while the writer holds = %+v", st)
	}
	before := reads.Load()
	hold(ctx, tm.settle)
	if reads.Load() != before {
		t.Errorf("%d reads began while the writer held the resource", reads.Load()-before)
	}
	must(t, w.Release(ctx), "Release")
	eventually(t, tm.prompt, func() bool { return reads.Load() > before }, "readers go on after the writer")
	if n := readerErrs.Load(); n != 0 {
		t.Errorf("%d reader errors", n)
	}
}

func testRWReadersQueue(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	r1, err := ins[0].RWLocker().RLock(ctx, "rq", coord.WithTTL(tm.held))
	must(t, err, "RLock")
	type got struct {
		l   coord.Lock
		err error
		at  time.Time
	}
	wch := make(chan got, 1)
	go func() {
		l, err := ins[1].RWLocker().Lock(ctx, "rq", coord.WithTTL(tm.held), coord.WithWait(tm.retry))
		wch <- got{l, err, time.Now()}
	}()
	eventually(t, tm.prompt, func() bool { return rwState(t, ins[2], "rq").WritersWaiting == 1 }, "State shows the waiting writer: %+v", func() any { return rwState(t, ins[2], "rq") })
	if _, err := ins[2].RWLocker().RLock(ctx, "rq", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("a new reader got in while a writer waited: %v", err)
	}
	rch := make(chan got, 1)
	go func() {
		l, err := ins[2].RWLocker().RLock(ctx, "rq", coord.WithTTL(tm.held), coord.WithWait(tm.retry))
		rch <- got{l, err, time.Now()}
	}()
	hold(ctx, tm.settle)
	select {
	case g := <-rch:
		t.Fatalf("a reader got in while a writer waited: %v", g.err)
	default:
	}
	must(t, r1.Release(ctx), "Release of the first reader")
	var w got
	select {
	case w = <-wch:
	case <-time.After(tm.prompt):
		t.Fatalf("the waiting writer not in within %v of the last reader's release", tm.prompt)
	}
	must(t, w.err, "writer")
	hold(ctx, tm.settle)
	select {
	case g := <-rch:
		t.Fatalf("a reader got in beside the writer: %v", g.err)
	default:
	}
	must(t, w.l.Release(ctx), "writer's Release")
	var r got
	select {
	case r = <-rch:
	case <-time.After(tm.prompt):
		t.Fatalf("the queued reader not in within %v of the writer's release", tm.prompt)
	}
	must(t, r.err, "queued reader")
	if r.l.Fence() <= w.l.Fence() || w.l.Fence() <= r1.Fence() {
		t.Errorf("fences %d, %d, %d do not increase in the order of acquisition", r1.Fence(), w.l.Fence(), r.l.Fence())
	}
	must(t, r.l.Release(ctx), "Release")
}

func testRWCancelledWriter(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	r1, err := ins[0].RWLocker().RLock(ctx, "cwur", coord.WithTTL(tm.held))
	must(t, err, "RLock")
	wctx, cancel := context.WithCancel(ctx)
	wdone := make(chan error, 1)
	go func() {
		// The writer retries every poll: its intent lapses within two
		// of them even if its cancellation were lost.
		_, err := ins[1].RWLocker().Lock(wctx, "cwur", coord.WithTTL(tm.held), coord.WithWait(tm.poll))
		wdone <- err
	}()
	eventually(t, tm.prompt, func() bool { return rwState(t, ins[2], "cwur").WritersWaiting == 1 }, "the writer waits")
	type got struct {
		l   coord.Lock
		err error
		at  time.Time
	}
	rch := make(chan got, 1)
	go func() {
		l, err := ins[2].RWLocker().RLock(ctx, "cwur", coord.WithTTL(tm.held), coord.WithWait(tm.retry))
		rch <- got{l, err, time.Now()}
	}()
	hold(ctx, tm.settle)
	cancelled := time.Now()
	cancel()
	if err := <-wdone; !errors.Is(err, coord.ErrNotAcquired) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled writer: %v, want ErrNotAcquired joined with context.Canceled", err)
	}
	var r got
	select {
	case r = <-rch:
	case <-time.After(tm.retry + tm.prompt):
		t.Fatalf("a reader still blocked %v after the waiting writer was cancelled", tm.retry+tm.prompt)
	}
	must(t, r.err, "reader")
	if d := r.at.Sub(cancelled); d > tm.prompt {
		t.Errorf("a cancelled writer blocked readers for %v (its retry delay %v, the reader's %v)", d, tm.poll, tm.retry)
	}
	if st := rwState(t, ins[0], "cwur"); st.Readers != 2 || st.WritersWaiting != 0 || st.Writer {
		t.Errorf("State after the cancelled writer = %+v, want two readers", st)
	}
	must(t, r.l.Release(ctx), "Release")
	must(t, r1.Release(ctx), "Release")
}

func testRWReaderExpiresAlone(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	// The crashed reader: a short lease nobody renews.
	crashed, err := ins[0].RWLocker().RLock(ctx, "crea", coord.WithTTL(tm.short))
	must(t, err, "RLock")
	live, err := ins[1].RWLocker().RLock(ctx, "crea", coord.WithTTL(tm.held))
	must(t, err, "RLock")
	wch := make(chan error, 1)
	var w coord.Lock
	go func() {
		var err error
		w, err = ins[2].RWLocker().Lock(ctx, "crea", coord.WithTTL(tm.held), coord.WithWait(tm.poll))
		wch <- err
	}()
	eventually(t, tm.short+tm.expiry, func() bool { return rwState(t, ins[2], "crea").Readers == 1 }, "the crashed reader's hold expires: %+v", func() any { return rwState(t, ins[2], "crea") })
	if !closedWithin(crashed.Done(), tm.expiry) {
		t.Errorf("Done of the expired read lease not closed")
	}
	if isClosed(live.Done()) {
		t.Fatalf("the live reader's lease ended with the crashed one")
	}
	if _, err := live.TTL(ctx); err != nil {
		t.Fatalf("the live reader's TTL: %v", err)
	}
	select {
	case err := <-wch:
		t.Fatalf("the writer got in beside a live reader: %v", err)
	default:
	}
	must(t, live.Release(ctx), "the live reader's Release")
	select {
	case err := <-wch:
		must(t, err, "writer")
	case <-time.After(tm.prompt):
		t.Fatalf("the writer not in within %v of the live reader's release", tm.prompt)
	}
	must(t, w.Release(ctx), "Release")
}

func testRWWriterExpiryWakes(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	bound := tm.lease + tm.expiry
	w, err := ins[0].RWLocker().Lock(ctx, "wew2", coord.WithTTL(tm.lease))
	must(t, err, "Lock")
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	fences := make([]int64, 2)
	for i := range errs {
		wg.Go(func() {
			l, err := ins[i+1].RWLocker().RLock(ctx, "wew2", coord.WithTTL(tm.held), coord.WithRetry(3, 4*bound))
			errs[i] = err
			if err == nil {
				fences[i] = l.Fence()
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
		if fences[i] <= w.Fence() {
			t.Errorf("reader %d: fence %d not above the expired writer's %d", i, fences[i], w.Fence())
		}
	}
	if d > bound {
		t.Errorf("readers got in %v after a %v write lease began (RetryDelay %v): the wait is not bounded by the writer's TTL", d, tm.lease, 4*bound)
	}
	if st := rwState(t, ins[0], "wew2"); st.Readers != 2 || st.Writer {
		t.Errorf("State = %+v, want two readers", st)
	}
}

func testRWFences(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	var last int64
	seen := map[int64]bool{}
	check := func(what string, l coord.Lock) {
		t.Helper()
		if l.Fence() <= last {
			t.Fatalf("%s: fence %d is not above %d", what, l.Fence(), last)
		}
		if seen[l.Fence()] {
			t.Fatalf("%s: fence %d handed out twice", what, l.Fence())
		}
		seen[l.Fence()] = true
		last = l.Fence()
	}
	for i := 0; i < 10; i++ {
		var readers []coord.Lock
		for j := 0; j < 3; j++ {
			r, err := ins[(i+j)%3].RWLocker().RLock(ctx, "rwf", coord.WithTTL(tm.long), coord.WithRetry(0, 0))
			must(t, err, "RLock")
			check(fmt.Sprintf("round %d reader %d", i, j), r)
			readers = append(readers, r)
		}
		for _, r := range readers {
			must(t, r.Release(ctx), "Release")
		}
		w, err := ins[i%3].RWLocker().Lock(ctx, "rwf", coord.WithTTL(tm.long), coord.WithRetry(0, 0))
		must(t, err, "Lock")
		check(fmt.Sprintf("round %d writer", i), w)
		must(t, w.Release(ctx), "Release")
	}
	// After a force release, the next fence is higher still.
	_, err := ins[0].RWLocker().RLock(ctx, "rwf", coord.WithTTL(tm.long))
	must(t, err, "RLock")
	_, err = ins[1].RWLocker().ForceRelease(ctx, "rwf")
	must(t, err, "ForceRelease")
	w, err := ins[2].RWLocker().Lock(ctx, "rwf", coord.WithTTL(tm.long), coord.WithRetry(0, 0))
	must(t, err, "Lock after ForceRelease")
	if w.Fence() <= last {
		t.Errorf("fence %d after a force release is not above %d", w.Fence(), last)
	}
}

func testRWStale(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	// A read lease that ran out, beside a live one.
	stale, err := ins[0].RWLocker().RLock(ctx, "srs", coord.WithTTL(tm.short))
	must(t, err, "RLock")
	live, err := ins[1].RWLocker().RLock(ctx, "srs", coord.WithTTL(tm.long))
	must(t, err, "RLock")
	eventually(t, tm.short+tm.expiry, func() bool { return rwState(t, ins[1], "srs").Readers == 1 }, "the short read lease expires")
	before, err := live.TTL(ctx)
	must(t, err, "the live reader's TTL")
	if err := stale.Extend(ctx, tm.held); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("Extend of an expired read lease: %v, want ErrExpired", err)
	}
	if err := stale.Release(ctx); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("Release of an expired read lease: %v, want ErrExpired", err)
	}
	if _, err := stale.TTL(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Errorf("TTL of an expired read lease: %v, want ErrNotHeld", err)
	}
	if st := rwState(t, ins[0], "srs"); st.Readers != 1 {
		t.Errorf("stale calls changed the state to %+v", st)
	}
	if ttl, err := live.TTL(ctx); err != nil || ttl <= 0 || ttl > before {
		t.Errorf("the live reader's TTL after stale calls: %v, %v (before them %v)", ttl, err, before)
	}
	must(t, live.Release(ctx), "Release")

	// A write lease that ran out and was taken by another writer.
	sw, err := ins[0].RWLocker().Lock(ctx, "srs", coord.WithTTL(tm.short))
	must(t, err, "Lock")
	w2, err := ins[1].RWLocker().Lock(ctx, "srs", coord.WithTTL(tm.long), coord.WithWait(tm.poll))
	must(t, err, "Lock after expiry")
	if err := sw.Release(ctx); !errors.Is(err, coord.ErrNotHeld) || errors.Is(err, coord.ErrExpired) {
		t.Errorf("stale writer's Release while another writes: %v, want ErrNotHeld (not ErrExpired)", err)
	}
	if err := sw.Extend(ctx, tm.held); !errors.Is(err, coord.ErrNotHeld) || errors.Is(err, coord.ErrExpired) {
		t.Errorf("stale writer's Extend while another writes: %v, want ErrNotHeld (not ErrExpired)", err)
	}
	if st := rwState(t, ins[0], "srs"); !st.Writer {
		t.Errorf("a stale Release freed the new writer: %+v", st)
	}
	if _, err := ins[0].RWLocker().RLock(ctx, "srs", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("after a stale Release a reader got in: %v", err)
	}
	if ttl, err := w2.TTL(ctx); err != nil || ttl > tm.long {
		t.Errorf("the new writer's TTL after a stale Extend: %v, %v", ttl, err)
	}
	must(t, w2.Release(ctx), "Release")
	if err := w2.Release(ctx); err != nil {
		t.Errorf("second Release: %v, want nil", err)
	}
}

func testRWDoneOnLoss(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	asked := time.Now()
	r, err := ins[0].RWLocker().RLock(ctx, "dol-r", coord.WithTTL(tm.lease))
	must(t, err, "RLock")
	w, err := ins[0].RWLocker().Lock(ctx, "dol-w", coord.WithTTL(tm.lease))
	must(t, err, "Lock")
	closed := isClosed(r.Done()) || isClosed(w.Done())
	// A lease is fresh while less than its TTL has passed since it was
	// asked for; a machine that stalled longer may see it end, rightly.
	if since := time.Since(asked); closed && since < tm.lease {
		t.Fatalf("Done closed on a fresh lease (%v after asking for %v leases)", since, tm.lease)
	}
	for name, l := range map[string]coord.Lock{"read": r, "write": w} {
		if !closedWithin(l.Done(), tm.lease+tm.expiry) {
			t.Errorf("Done of the %s lease not closed %v after its %v TTL", name, tm.expiry, tm.lease)
		}
	}
	// Force-released leases: Extend finds the loss and closes Done.
	fr, err := ins[0].RWLocker().RLock(ctx, "dol-f", coord.WithTTL(tm.held))
	must(t, err, "RLock")
	if ok, err := ins[1].RWLocker().ForceRelease(ctx, "dol-f"); err != nil || !ok {
		t.Fatalf("ForceRelease = %v, %v", ok, err)
	}
	if err := fr.Extend(ctx, tm.held); !errors.Is(err, coord.ErrNotHeld) {
		t.Errorf("Extend of a force-released read lease: %v, want ErrNotHeld", err)
	}
	if !closedWithin(fr.Done(), tm.prompt) {
		t.Errorf("Done not closed after Extend found the lease force-released")
	}
	// Release closes Done.
	rl, err := ins[0].RWLocker().RLock(ctx, "dol-rel", coord.WithTTL(tm.held))
	must(t, err, "RLock")
	must(t, rl.Release(ctx), "Release")
	if !closedWithin(rl.Done(), tm.prompt) {
		t.Errorf("Done not closed after Release")
	}
}

func testRWExtendAutoRenew(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	r, err := ins[0].RWLocker().RLock(ctx, "ear-r", coord.WithTTL(tm.renewed))
	must(t, err, "RLock")
	must(t, r.Extend(ctx, tm.long), "Extend")
	if ttl, err := r.TTL(ctx); err != nil || ttl <= tm.long-tm.drift || ttl > tm.long {
		t.Errorf("TTL after Extend(%v) = %v, %v", tm.long, ttl, err)
	}
	must(t, r.Release(ctx), "Release")
	rr, err := ins[0].RWLocker().RLock(ctx, "ear-ar", coord.WithTTL(tm.renewed), coord.WithAutoRenew())
	must(t, err, "RLock")
	ww, err := ins[0].RWLocker().Lock(ctx, "ear-aw", coord.WithTTL(tm.renewed), coord.WithAutoRenew())
	must(t, err, "Lock")
	hold(ctx, 2*tm.renewed)
	if isClosed(rr.Done()) || isClosed(ww.Done()) {
		t.Fatalf("an auto-renewed lease ended after two TTLs")
	}
	if st := rwState(t, ins[1], "ear-ar"); st.Readers != 1 {
		t.Errorf("an auto-renewed read lease is gone: %+v", st)
	}
	if _, err := ins[1].RWLocker().RLock(ctx, "ear-aw", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("a reader got in beside an auto-renewed writer: %v", err)
	}
	must(t, rr.Release(ctx), "Release")
	must(t, ww.Release(ctx), "Release")
	if !closedWithin(rr.Done(), tm.prompt) || !closedWithin(ww.Done(), tm.prompt) {
		t.Errorf("Done not closed after Release")
	}
}

func testRWForceRelease(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	if ok, err := ins[0].RWLocker().ForceRelease(ctx, "rwfr"); err != nil || ok {
		t.Errorf("ForceRelease of an unused resource = %v, %v, want false", ok, err)
	}
	r1, err := ins[0].RWLocker().RLock(ctx, "rwfr", coord.WithTTL(tm.held))
	must(t, err, "RLock")
	_, err = ins[1].RWLocker().RLock(ctx, "rwfr", coord.WithTTL(tm.held))
	must(t, err, "RLock")
	if ok, err := ins[2].RWLocker().ForceRelease(ctx, "rwfr"); err != nil || !ok {
		t.Fatalf("ForceRelease with two readers = %v, %v", ok, err)
	}
	if st := rwState(t, ins[2], "rwfr"); st.Readers != 0 || st.Writer {
		t.Errorf("State after ForceRelease = %+v", st)
	}
	if err := r1.Release(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Errorf("Release of a force-released read lease: %v, want ErrNotHeld", err)
	}
	w, err := ins[2].RWLocker().Lock(ctx, "rwfr", coord.WithTTL(tm.held), coord.WithRetry(0, 0))
	must(t, err, "Lock after ForceRelease")
	if ok, err := ins[0].RWLocker().ForceRelease(ctx, "rwfr"); err != nil || !ok {
		t.Fatalf("ForceRelease with a writer = %v, %v", ok, err)
	}
	if err := w.Release(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Errorf("Release of a force-released write lease: %v, want ErrNotHeld", err)
	}
	if st := rwState(t, ins[1], "rwfr"); st != (coord.RWState{}) {
		t.Errorf("State after ForceRelease = %+v", st)
	}
}

func testRWExclusionChecker(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	const perWorker = 40
	var readers, writers, violations, maxReaders atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 9; i++ {
		in := ins[i%3]
		wg.Go(func() {
			for j := 0; j < perWorker; j++ {
				write := (i+j)%4 == 0
				wctx, cancel := context.WithTimeout(ctx, tm.guard)
				var l coord.Lock
				var err error
				if write {
					l, err = in.RWLocker().Lock(wctx, "rwx", coord.WithTTL(tm.held), coord.WithWait(tm.prompt))
				} else {
					l, err = in.RWLocker().RLock(wctx, "rwx", coord.WithTTL(tm.held), coord.WithWait(tm.prompt))
				}
				cancel()
				if err != nil {
					errs <- err
					return
				}
				if write {
					if writers.Add(1) != 1 || readers.Load() != 0 {
						violations.Add(1)
					}
				} else {
					n := readers.Add(1)
					if writers.Load() != 0 {
						violations.Add(1)
					}
					for m := maxReaders.Load(); n > m && !maxReaders.CompareAndSwap(m, n); m = maxReaders.Load() {
					}
				}
				runtime.Gosched()
				time.Sleep(tm.critical)
				if write {
					writers.Add(-1)
				} else {
					readers.Add(-1)
				}
				if err := l.Release(context.WithoutCancel(ctx)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("worker: %v", err)
	}
	if n := violations.Load(); n != 0 {
		t.Errorf("%d times a writer held the resource beside another holder", n)
	}
	t.Logf("at most %d readers at once", maxReaders.Load())
}

func testRWDeadline(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	_, err := ins[0].RWLocker().Lock(ctx, "rwd", coord.WithTTL(tm.held))
	must(t, err, "Lock")
	for name, acquire := range map[string]acquireFunc{"RLock": rlock, "Lock": wlock} {
		dctx, cancel := context.WithTimeout(ctx, tm.deadline)
		start := time.Now()
		_, err := acquire(dctx, ins[1], "rwd", coord.WithWait(tm.retry))
		cancel()
		if !errors.Is(err, coord.ErrNotAcquired) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s past its deadline: %v, want ErrNotAcquired joined with DeadlineExceeded", name, err)
		}
		if d := time.Since(start); d > tm.deadline+tm.cancel {
			t.Errorf("%s with a %v deadline returned after %v", name, tm.deadline, d)
		}
	}
	if st := rwState(t, ins[1], "rwd"); st.WritersWaiting != 0 || st.Readers != 0 {
		t.Errorf("waits that ended left state behind: %+v", st)
	}
}

func testRWApartFromLocker(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	w, err := ins[0].RWLocker().Lock(ctx, "apart", coord.WithTTL(tm.long))
	must(t, err, "Lock")
	l, err := ins[1].Locker().Acquire(ctx, "apart", coord.WithTTL(tm.long), coord.WithRetry(0, 0))
	if err != nil {
		t.Fatalf("a Locker lease of the same name as a write lease: %v, want another resource", err)
	}
	if locked, err := ins[1].Locker().Locked(ctx, "apart"); err != nil || !locked {
		t.Errorf("Locked = %v, %v", locked, err)
	}
	must(t, l.Release(ctx), "Release")
	if st := rwState(t, ins[1], "apart"); !st.Writer {
		t.Errorf("the Locker's release changed the RW state: %+v", st)
	}
	must(t, w.Release(ctx), "Release")
}

func testRWCloseReleases(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	r, err := a.RWLocker().RLock(ctx, "crw-r", coord.WithTTL(tm.held))
	must(t, err, "RLock")
	w, err := a.RWLocker().Lock(ctx, "crw-w", coord.WithTTL(tm.renewed), coord.WithAutoRenew())
	must(t, err, "Lock")
	got := make(chan error, 1)
	go func() {
		_, err := b.RWLocker().Lock(ctx, "crw-r", coord.WithTTL(tm.held), coord.WithRetry(10, tm.retry))
		got <- err
	}()
	hold(ctx, tm.settle)
	closedAt := time.Now()
	must(t, a.Close(ctx), "Close")
	select {
	case err := <-got:
		must(t, err, "the waiting writer")
	case <-time.After(tm.prompt):
		t.Fatalf("the waiting writer not in within %v of the reader's Close", tm.prompt)
	}
	t.Logf("writer in %v after Close", time.Since(closedAt))
	if st := rwState(t, b, "crw-w"); st != (coord.RWState{}) {
		t.Errorf("State of a resource whose writer closed = %+v", st)
	}
	if !closedWithin(r.Done(), tm.prompt) || !closedWithin(w.Done(), tm.prompt) {
		t.Errorf("Done of a lease released by Close not closed")
	}
	if _, err := a.RWLocker().RLock(ctx, "crw-x"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("RLock after Close: %v, want ErrClosed", err)
	}
}

func testRWBadInput(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	rw := ins[0].RWLocker()
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	for label, n := range badNames() {
		_, err := rw.RLock(ctx, n)
		invalid("RLock with name "+label, err)
		_, err = rw.Lock(ctx, n)
		invalid("Lock with name "+label, err)
		_, err = rw.State(ctx, n)
		invalid("State with name "+label, err)
		_, err = rw.ForceRelease(ctx, n)
		invalid("ForceRelease with name "+label, err)
	}
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} { // bad input, refused before any timing
		_, err := rw.RLock(ctx, "rwbad", coord.WithTTL(d))
		invalid(fmt.Sprintf("RLock with TTL %v", d), err)
		_, err = rw.Lock(ctx, "rwbad", coord.WithTTL(d))
		invalid(fmt.Sprintf("Lock with TTL %v", d), err)
	}
	_, err := rw.Lock(ctx, "rwbad", coord.WithRetry(1, -time.Millisecond))
	invalid("Lock with a negative retry delay", err)
	if st := rwState(t, ins[1], "rwbad"); st != (coord.RWState{}) {
		t.Errorf("refused calls changed the state: %+v", st)
	}
	r, err := rw.RLock(ctx, "rwbad", coord.WithTTL(tm.long))
	must(t, err, "RLock")
	invalid("Extend(-1s) of a read lease", r.Extend(ctx, -time.Second))
	if ttl, err := r.TTL(ctx); err != nil || ttl <= tm.long-tm.drift {
		t.Errorf("a refused Extend changed the TTL: %v, %v", ttl, err)
	}
	must(t, r.Release(ctx), "Release")
}

func testRWHelpers(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	ran := 0
	err := coord.WithRLock(ctx, ins[0].RWLocker(), "rwh", func(ctx context.Context) error {
		ran++
		if st := rwState(t, ins[1], "rwh"); st.Readers != 1 {
			t.Errorf("inside WithRLock, State = %+v", st)
		}
		return coord.WithRLock(ctx, ins[1].RWLocker(), "rwh", func(context.Context) error {
			ran++
			return nil
		}, coord.WithRetry(0, 0))
	}, coord.WithTTL(tm.long))
	must(t, err, "WithRLock")
	err = coord.WithWriteLock(ctx, ins[1].RWLocker(), "rwh", func(ctx context.Context) error {
		ran++
		if _, err := ins[0].RWLocker().RLock(ctx, "rwh", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
			t.Errorf("a reader got in inside WithWriteLock: %v", err)
		}
		return nil
	}, coord.WithTTL(tm.long))
	must(t, err, "WithWriteLock")
	if ran != 3 {
		t.Errorf("fn ran %d times, want 3", ran)
	}
	if st := rwState(t, ins[0], "rwh"); st != (coord.RWState{}) {
		t.Errorf("State after the helpers returned = %+v", st)
	}
	// A lost lease cancels fn's context with cause ErrLeaseLost.
	err = coord.WithWriteLock(ctx, ins[0].RWLocker(), "rwh", func(fctx context.Context) error {
		if ok, err := ins[1].RWLocker().ForceRelease(ctx, "rwh"); err != nil || !ok {
			t.Errorf("ForceRelease = %v, %v", ok, err)
		}
		select {
		case <-fctx.Done():
		case <-time.After(tm.lease + tm.expiry):
			return errors.New("fn's context not cancelled after the lease was lost")
		}
		if !errors.Is(context.Cause(fctx), coord.ErrLeaseLost) {
			return fmt.Errorf("cause %v, want ErrLeaseLost", context.Cause(fctx))
		}
		return nil
	}, coord.WithTTL(tm.lease))
	if !errors.Is(err, coord.ErrLeaseLost) {
		t.Errorf("WithWriteLock after the lease was lost: %v, want ErrLeaseLost", err)
	}
}

// testRWNotInHeld checks that Locker.Held lists Locker leases only: not
// the instance's read and write leases, permits or leaderships, even of
// the same name.
func testRWNotInHeld(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	_, err := in.RWLocker().RLock(ctx, "nih-r", coord.WithTTL(tm.long))
	must(t, err, "RLock")
	_, err = in.RWLocker().Lock(ctx, "nih-w", coord.WithTTL(tm.long))
	must(t, err, "Lock")
	caps := h.Capabilities()
	if !caps.lacks(Semaphores) {
		_, err = in.Semaphores().Acquire(ctx, "nih-r", 2, coord.WithTTL(tm.long))
		must(t, err, "Semaphores.Acquire")
	}
	if !caps.lacks(Elections) {
		_, err = in.Elector().Campaign(ctx, "nih-r", "id", coord.WithTTL(tm.long))
		must(t, err, "Campaign")
	}
	if held := in.Locker().Held(); len(held) != 0 {
		t.Errorf("Locker.Held lists %d leases that are not the Locker's", len(held))
	}
	l, err := in.Locker().Acquire(ctx, "nih-r", coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	if held := in.Locker().Held(); len(held) != 1 || held[0].Fence() != l.Fence() {
		t.Errorf("Locker.Held lists %d leases, want the Locker's one", len(held))
	}
}

// testRWClosedWriter closes the instance of a waiting writer: the readers
// it held back get in within the bound of a crashed writer's intent (two
// of its retry delays), or sooner.
func testRWClosedWriter(t *testing.T, h Harness) {
	requirePrimitive(t, h, RWLocks)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	r1, err := ins[0].RWLocker().RLock(ctx, "clwr", coord.WithTTL(tm.held))
	must(t, err, "RLock")
	wdone := make(chan error, 1)
	go func() {
		_, err := ins[1].RWLocker().Lock(ctx, "clwr", coord.WithTTL(tm.held), coord.WithWait(tm.poll))
		wdone <- err
	}()
	eventually(t, tm.prompt, func() bool { return rwState(t, ins[2], "clwr").WritersWaiting == 1 }, "the writer waits")
	rch := make(chan error, 1)
	go func() {
		l, err := ins[2].RWLocker().RLock(ctx, "clwr", coord.WithTTL(tm.held), coord.WithWait(tm.retry))
		if err == nil {
			err = l.Release(ctx)
		}
		rch <- err
	}()
	hold(ctx, tm.settle)
	closed := time.Now()
	must(t, ins[1].Close(ctx), "Close of the waiting writer's instance")
	if err := <-wdone; !errors.Is(err, coord.ErrClosed) {
		t.Errorf("the closed instance's wait: %v, want ErrClosed", err)
	}
	select {
	case err := <-rch:
		must(t, err, "reader")
	case <-time.After(tm.retry + tm.prompt):
		t.Fatalf("a reader still blocked %v after the waiting writer's instance closed", tm.retry+tm.prompt)
	}
	if d := time.Since(closed); d > tm.prompt {
		t.Errorf("a closed writer blocked readers for %v (its retry delay %v, the reader's %v)", d, tm.poll, tm.retry)
	}
	must(t, r1.Release(ctx), "Release")
}
