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

// RunSemaphores runs the cases about [coord.Semaphores], its permits and
// [coord.WithPermit].
func RunSemaphores(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, semaphoreCases())
}

func semaphoreCases() []testCase {
	return []testCase{
		{name: "ReleaseWakesByNotification", serial: true, run: testSemReleaseWakes},
		{name: "LimitHonoured", run: testSemLimitHonoured},
		{name: "NeverMoreThanLimit", run: testSemNeverMoreThanLimit},
		{name: "PermitExpiresAndWakesWaiter", run: testSemPermitExpires},
		{name: "ReleaseWakesOneWaiter", run: testSemReleaseWakesOne},
		{name: "ReleaseIdempotent", run: testSemReleaseIdempotent},
		{name: "StaleReleaseErrExpired", run: testSemStale},
		{name: "ExtendAndAutoRenew", run: testSemExtendAutoRenew},
		{name: "FencesIncrease", run: testSemFences},
		{name: "HoldersRightAfterExpiry", run: testSemHoldersAfterExpiry},
		{name: "ForceRelease", run: testSemForceRelease},
		{name: "LimitIsTheCallers", run: testSemCallersLimit},
		{name: "DeadlineEndsWait", run: testSemDeadline},
		{name: "CloseReleases", run: testSemCloseReleases},
		{name: "BadInput", run: testSemBadInput},
		{name: "WithPermit", run: testSemWithPermit},
	}
}

// semAcquire returns an acquireFunc taking a permit of limit.
func semAcquire(limit int) acquireFunc {
	return func(ctx context.Context, b coord.Backend, res string, opts ...coord.LockOption) (coord.Lock, error) {
		return b.Semaphores().Acquire(ctx, res, limit, opts...)
	}
}

// holders reads Holders and fails t on error.
func holders(t *testing.T, b coord.Backend, res string) int {
	t.Helper()
	n, err := b.Semaphores().Holders(ctxOf(t), res)
	must(t, err, "Holders")
	return n
}

func testSemReleaseWakes(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	leaseWakeRounds(t, h, "release of a permit", func(ctx context.Context, holder coord.Backend, res string) func() {
		var ls []coord.Lock
		for i := 0; i < 2; i++ {
			l, err := holder.Semaphores().Acquire(ctx, res, 2, coord.WithTTL(tm.held))
			must(t, err, "Acquire")
			ls = append(ls, l)
		}
		return func() { must(t, ls[1].Release(ctx), "Release") }
	}, semAcquire(2))
}

func testSemLimitHonoured(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	const limit = 3
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	start := make(chan struct{})
	for i := 0; i < limit+1; i++ {
		wg.Go(func() {
			<-start
			_, err := ins[i%3].Semaphores().Acquire(ctx, "slh", limit, coord.WithTTL(tm.long), coord.WithRetry(0, 0))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, coord.ErrNotAcquired):
				refused.Add(1)
			default:
				t.Errorf("Acquire: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != limit || refused.Load() != 1 {
		t.Errorf("%d of %d tries on a %d-permit semaphore succeeded, %d were refused", ok.Load(), limit+1, limit, refused.Load())
	}
	if n := holders(t, ins[0], "slh"); n != limit {
		t.Errorf("Holders = %d, want %d", n, limit)
	}
	if n := holders(t, ins[0], "slh-unused"); n != 0 {
		t.Errorf("Holders of an unused semaphore = %d", n)
	}
}

func testSemNeverMoreThanLimit(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	const (
		limit   = 4
		workers = 12
		// 10k operations in all: an Acquire and a Release per pair.
		pairs = 5000 / workers
	)
	var inside, over, maxInside, acquired atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		in := ins[i%3]
		wg.Go(func() {
			for j := 0; j < pairs; j++ {
				wctx, cancel := context.WithTimeout(ctx, tm.guard)
				l, err := in.Semaphores().Acquire(wctx, "snm", limit, coord.WithTTL(tm.held), coord.WithWait(tm.prompt))
				cancel()
				if err != nil {
					errs <- err
					return
				}
				acquired.Add(1)
				n := inside.Add(1)
				if n > limit {
					over.Add(1)
				}
				for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
				}
				if j%8 == 0 {
					runtime.Gosched()
				}
				inside.Add(-1)
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
	if n := over.Load(); n != 0 {
		t.Errorf("%d times more than %d permits were held (at most %d)", n, limit, maxInside.Load())
	}
	t.Logf("%d permits taken, at most %d at once", acquired.Load(), maxInside.Load())
	if n := holders(t, ins[0], "snm"); n != 0 {
		t.Errorf("Holders after every permit was released = %d", n)
	}
}

func testSemPermitExpires(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	bound := tm.lease + tm.expiry
	l, err := ins[0].Semaphores().Acquire(ctx, "spe", 1, coord.WithTTL(tm.lease))
	must(t, err, "Acquire")
	start := time.Now()
	l2, err := ins[1].Semaphores().Acquire(ctx, "spe", 1, coord.WithTTL(tm.held), coord.WithRetry(3, 4*bound))
	must(t, err, "waiting Acquire")
	if d := time.Since(start); d > bound {
		t.Errorf("a waiter got the permit of a %v lease %v later (RetryDelay %v): not woken by the expiry", tm.lease, d, 4*bound)
	}
	if l2.Fence() <= l.Fence() {
		t.Errorf("fence %d after expiry is not above %d", l2.Fence(), l.Fence())
	}
	if !closedWithin(l.Done(), tm.prompt) {
		t.Errorf("Done of the expired permit not closed")
	}
	if n := holders(t, ins[0], "spe"); n != 1 {
		t.Errorf("Holders = %d, want 1", n)
	}
}

func testSemReleaseWakesOne(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	var held []coord.Lock
	for i := 0; i < 2; i++ {
		l, err := ins[0].Semaphores().Acquire(ctx, "srwo", 2, coord.WithTTL(tm.held))
		must(t, err, "Acquire")
		held = append(held, l)
	}
	got := make(chan coord.Lock, 2)
	for i := 0; i < 2; i++ {
		go func() {
			l, err := ins[1+i].Semaphores().Acquire(ctx, "srwo", 2, coord.WithTTL(tm.held), coord.WithRetry(3, tm.retry))
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
			}
			got <- l
		}()
	}
	hold(ctx, tm.settle)
	must(t, held[0].Release(ctx), "Release")
	var first coord.Lock
	select {
	case first = <-got:
	case <-time.After(tm.prompt):
		t.Fatalf("no waiter got the freed permit within %v", tm.prompt)
	}
	hold(ctx, tm.settle)
	select {
	case <-got:
		t.Fatalf("one release let two waiters in")
	default:
	}
	if n := holders(t, ins[0], "srwo"); n != 2 {
		t.Errorf("Holders = %d, want 2", n)
	}
	must(t, held[1].Release(ctx), "Release")
	select {
	case l := <-got:
		if l != nil {
			must(t, l.Release(ctx), "Release")
		}
	case <-time.After(tm.prompt):
		t.Fatalf("the second waiter not in within %v of the second release", tm.prompt)
	}
	if first != nil {
		must(t, first.Release(ctx), "Release")
	}
}

func testSemReleaseIdempotent(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	l, err := ins[0].Semaphores().Acquire(ctx, "sri", 2, coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	other, err := ins[1].Semaphores().Acquire(ctx, "sri", 2, coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = l.Release(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Release %d of one permit: %v, want nil", i, err)
		}
	}
	if n := holders(t, ins[0], "sri"); n != 1 {
		t.Errorf("Holders after releasing one of two permits (four times) = %d, want 1", n)
	}
	if isClosed(other.Done()) {
		t.Errorf("the other permit ended")
	}
	must(t, other.Release(ctx), "Release")
}

func testSemStale(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	stale, err := ins[0].Semaphores().Acquire(ctx, "sse", 1, coord.WithTTL(tm.short))
	must(t, err, "Acquire")
	l2, err := ins[1].Semaphores().Acquire(ctx, "sse", 1, coord.WithTTL(tm.long), coord.WithWait(tm.poll))
	must(t, err, "Acquire after expiry")
	if err := stale.Release(ctx); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("Release of an expired permit: %v, want ErrExpired", err)
	}
	if err := stale.Extend(ctx, tm.held); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("Extend of an expired permit: %v, want ErrExpired", err)
	}
	if _, err := stale.TTL(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Errorf("TTL of an expired permit: %v, want ErrNotHeld", err)
	}
	if n := holders(t, ins[0], "sse"); n != 1 {
		t.Errorf("stale calls changed Holders to %d", n)
	}
	if _, err := ins[0].Semaphores().Acquire(ctx, "sse", 1, coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("after a stale Release a permit over the limit was given: %v", err)
	}
	if ttl, err := l2.TTL(ctx); err != nil || ttl > tm.long || ttl <= tm.long-tm.drift {
		t.Errorf("the live permit's TTL after stale calls: %v, %v", ttl, err)
	}
	must(t, l2.Release(ctx), "Release")
}

func testSemExtendAutoRenew(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	l, err := ins[0].Semaphores().Acquire(ctx, "sear", 1, coord.WithTTL(tm.lease))
	must(t, err, "Acquire")
	must(t, l.Extend(ctx, tm.long), "Extend")
	if ttl, err := l.TTL(ctx); err != nil || ttl <= tm.long-tm.drift || ttl > tm.long {
		t.Errorf("TTL after Extend(%v) = %v, %v", tm.long, ttl, err)
	}
	hold(ctx, 2*tm.lease)
	if _, err := ins[1].Semaphores().Acquire(ctx, "sear", 1, coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("an extended permit was free after its first TTL: %v", err)
	}
	must(t, l.Release(ctx), "Release")
	ar, err := ins[0].Semaphores().Acquire(ctx, "sear", 1, coord.WithTTL(tm.renewed), coord.WithAutoRenew())
	must(t, err, "Acquire with AutoRenew")
	hold(ctx, 2*tm.renewed)
	if isClosed(ar.Done()) {
		t.Fatalf("an auto-renewed permit ended after two TTLs")
	}
	if n := holders(t, ins[1], "sear"); n != 1 {
		t.Errorf("Holders of an auto-renewed permit after two TTLs = %d", n)
	}
	must(t, ar.Release(ctx), "Release")
	if !closedWithin(ar.Done(), tm.prompt) {
		t.Errorf("Done not closed after Release")
	}
	if n := holders(t, ins[1], "sear"); n != 0 {
		t.Errorf("Holders after Release = %d", n)
	}
}

func testSemFences(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	var last int64
	for i := 0; i < 10; i++ {
		var ls []coord.Lock
		for j := 0; j < 3; j++ {
			l, err := ins[(i+j)%3].Semaphores().Acquire(ctx, "sf", 3, coord.WithTTL(tm.long), coord.WithRetry(0, 0))
			must(t, err, "Acquire")
			if l.Fence() <= last {
				t.Fatalf("permit %d.%d: fence %d is not above %d", i, j, l.Fence(), last)
			}
			last = l.Fence()
			ls = append(ls, l)
		}
		for _, l := range ls {
			must(t, l.Release(ctx), "Release")
		}
	}
	_, err := ins[0].Semaphores().Acquire(ctx, "sf", 1, coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	_, err = ins[1].Semaphores().ForceRelease(ctx, "sf")
	must(t, err, "ForceRelease")
	l, err := ins[2].Semaphores().Acquire(ctx, "sf", 1, coord.WithTTL(tm.long), coord.WithRetry(0, 0))
	must(t, err, "Acquire after ForceRelease")
	if l.Fence() <= last {
		t.Errorf("fence %d after a force release is not above %d", l.Fence(), last)
	}
}

func testSemHoldersAfterExpiry(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	live, err := ins[0].Semaphores().Acquire(ctx, "shae", 2, coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	_, err = ins[0].Semaphores().Acquire(ctx, "shae", 2, coord.WithTTL(tm.lease))
	must(t, err, "Acquire")
	// The permit's TTL started before Acquire returned.
	start := time.Now()
	if n := holders(t, ins[1], "shae"); n != 2 && time.Since(start) < tm.lease {
		t.Fatalf("Holders = %d, want 2", n)
	}
	// Holders counts only live permits: once the short one's end has
	// passed (and the backend's clock agrees), it is left out without any
	// sweep or release.
	hold(ctx, time.Until(start.Add(tm.lease+tm.tick)))
	eventually(t, tm.early+tm.tick, func() bool { return holders(t, ins[1], "shae") == 1 }, "Holders leaves out a permit whose TTL ran out: %d", func() any { return holders(t, ins[1], "shae") })
	l, err := ins[1].Semaphores().Acquire(ctx, "shae", 2, coord.WithTTL(tm.long), coord.WithRetry(0, 0))
	must(t, err, "Acquire in the expired permit's place")
	must(t, l.Release(ctx), "Release")
	must(t, live.Release(ctx), "Release")
}

func testSemForceRelease(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	if n, err := ins[0].Semaphores().ForceRelease(ctx, "sfr"); err != nil || n != 0 {
		t.Errorf("ForceRelease of an unused semaphore = %d, %v", n, err)
	}
	var ls []coord.Lock
	for i := 0; i < 3; i++ {
		l, err := ins[i].Semaphores().Acquire(ctx, "sfr", 3, coord.WithTTL(tm.held))
		must(t, err, "Acquire")
		ls = append(ls, l)
	}
	got := make(chan error, 1)
	go func() {
		_, err := ins[0].Semaphores().Acquire(ctx, "sfr", 3, coord.WithTTL(tm.held), coord.WithRetry(3, tm.retry))
		got <- err
	}()
	hold(ctx, tm.settle)
	n, err := ins[2].Semaphores().ForceRelease(ctx, "sfr")
	must(t, err, "ForceRelease")
	if n != 3 {
		t.Errorf("ForceRelease ended %d permits, want 3", n)
	}
	select {
	case err := <-got:
		must(t, err, "waiter")
	case <-time.After(tm.prompt):
		t.Fatalf("a waiter not woken within %v by ForceRelease", tm.prompt)
	}
	if n := holders(t, ins[1], "sfr"); n != 1 {
		t.Errorf("Holders after ForceRelease and one new permit = %d", n)
	}
	for i, l := range ls {
		if err := l.Release(ctx); !errors.Is(err, coord.ErrNotHeld) {
			t.Errorf("Release of force-released permit %d: %v, want ErrNotHeld", i, err)
		}
	}
}

func testSemCallersLimit(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	for i := 0; i < 2; i++ {
		_, err := ins[i].Semaphores().Acquire(ctx, "scl", 2, coord.WithTTL(tm.long))
		must(t, err, "Acquire")
	}
	if _, err := ins[0].Semaphores().Acquire(ctx, "scl", 2, coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("a third permit at limit 2: %v, want ErrNotAcquired", err)
	}
	l, err := ins[1].Semaphores().Acquire(ctx, "scl", 3, coord.WithTTL(tm.long), coord.WithRetry(0, 0))
	if err != nil {
		t.Fatalf("a caller passing limit 3 with two holders: %v, want a permit", err)
	}
	if _, err := ins[1].Semaphores().Acquire(ctx, "scl", 3, coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("a fourth permit at limit 3: %v, want ErrNotAcquired", err)
	}
	if n := holders(t, ins[0], "scl"); n != 3 {
		t.Errorf("Holders = %d, want 3", n)
	}
	must(t, l.Release(ctx), "Release")
	// Semaphores and locks of one name are apart.
	lk, err := ins[0].Locker().Acquire(ctx, "scl", coord.WithTTL(tm.long), coord.WithRetry(0, 0))
	must(t, err, "a Locker lease of a semaphore's name")
	must(t, lk.Release(ctx), "Release")
}

func testSemDeadline(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	_, err := ins[0].Semaphores().Acquire(ctx, "sd", 1, coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	dctx, cancel := context.WithTimeout(ctx, tm.deadline)
	defer cancel()
	start := time.Now()
	_, err = ins[1].Semaphores().Acquire(dctx, "sd", 1, coord.WithWait(tm.retry))
	if !errors.Is(err, coord.ErrNotAcquired) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire past its deadline: %v, want ErrNotAcquired joined with DeadlineExceeded", err)
	}
	if d := time.Since(start); d > tm.deadline+tm.cancel {
		t.Errorf("Acquire with a %v deadline returned after %v", tm.deadline, d)
	}
	if n := holders(t, ins[1], "sd"); n != 1 {
		t.Errorf("Holders after a wait that ended = %d", n)
	}
}

func testSemCloseReleases(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	var ls []coord.Lock
	for i := 0; i < 2; i++ {
		l, err := a.Semaphores().Acquire(ctx, "scr", 2, coord.WithTTL(tm.held))
		must(t, err, "Acquire")
		ls = append(ls, l)
	}
	got := make(chan error, 1)
	go func() {
		_, err := b.Semaphores().Acquire(ctx, "scr", 2, coord.WithTTL(tm.held), coord.WithRetry(10, tm.retry))
		got <- err
	}()
	hold(ctx, tm.settle)
	must(t, a.Close(ctx), "Close")
	select {
	case err := <-got:
		must(t, err, "waiter")
	case <-time.After(tm.prompt):
		t.Fatalf("a waiter not woken within %v by its holders' Close", tm.prompt)
	}
	if n := holders(t, b, "scr"); n != 1 {
		t.Errorf("Holders after Close = %d, want 1 (the waiter)", n)
	}
	for _, l := range ls {
		if !closedWithin(l.Done(), tm.prompt) {
			t.Errorf("Done of a permit released by Close not closed")
		}
	}
	if _, err := a.Semaphores().Holders(ctx, "scr"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Holders after Close: %v, want ErrClosed", err)
	}
}

func testSemBadInput(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	s := ins[0].Semaphores()
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	for label, n := range badNames() {
		_, err := s.Acquire(ctx, n, 1)
		invalid("Acquire with name "+label, err)
		_, err = s.Holders(ctx, n)
		invalid("Holders with name "+label, err)
		_, err = s.ForceRelease(ctx, n)
		invalid("ForceRelease with name "+label, err)
	}
	for _, limit := range []int{0, -1, -1 << 31} {
		_, err := s.Acquire(ctx, "sbad", limit)
		invalid(fmt.Sprintf("Acquire with limit %d", limit), err)
	}
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} { // bad input, refused before any timing
		_, err := s.Acquire(ctx, "sbad", 1, coord.WithTTL(d))
		invalid(fmt.Sprintf("Acquire with TTL %v", d), err)
	}
	_, err := s.Acquire(ctx, "sbad", 1, coord.WithRetry(-2, tm.poll))
	invalid("Acquire with retries -2", err)
	if n := holders(t, ins[1], "sbad"); n != 0 {
		t.Errorf("refused calls took %d permits", n)
	}
	l, err := s.Acquire(ctx, "sbad", 1, coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	invalid("Extend(0)", l.Extend(ctx, 0))
	if ttl, err := l.TTL(ctx); err != nil || ttl <= tm.long-tm.drift {
		t.Errorf("a refused Extend changed the TTL: %v, %v", ttl, err)
	}
	must(t, l.Release(ctx), "Release")
}

func testSemWithPermit(t *testing.T, h Harness) {
	requirePrimitive(t, h, Semaphores)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	var inside, most atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Go(func() {
			err := coord.WithPermit(ctx, ins[i%3].Semaphores(), "swp", 2, func(context.Context) error {
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				hold(ctx, tm.work)
				inside.Add(-1)
				return nil
			}, coord.WithTTL(tm.long), coord.WithWait(tm.prompt))
			if err != nil {
				t.Errorf("WithPermit: %v", err)
			}
		})
	}
	wg.Wait()
	if most.Load() > 2 {
		t.Errorf("%d functions ran at once under a 2-permit WithPermit", most.Load())
	}
	if n := holders(t, ins[0], "swp"); n != 0 {
		t.Errorf("Holders after WithPermit returned = %d", n)
	}
	want := errors.New("fn failed")
	err := coord.WithPermit(ctx, ins[0].Semaphores(), "swp", 1, func(context.Context) error { return want })
	if !errors.Is(err, want) {
		t.Errorf("WithPermit: %v, want fn's error", err)
	}
	_, err = ins[0].Semaphores().Acquire(ctx, "swp", 0)
	if !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("limit 0: %v", err)
	}
}
