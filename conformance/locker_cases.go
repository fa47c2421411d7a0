package conformance

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

func lockerCases() []testCase {
	return []testCase{
		{name: "WaiterWokenByRelease", serial: true, run: testWaiterWokenByRelease},
		{name: "WaiterWokenByForceRelease", serial: true, run: testWaiterWokenByForceRelease},
		{name: "WaiterWokenByExpiry", serial: true, run: testWaiterWokenByExpiry},
		{name: "CancelEndsWait", serial: true, run: testCancelEndsWait},
		{name: "AcquireRelease", run: testAcquireRelease},
		{name: "HeldElsewhereNotAcquired", run: testHeldElsewhereNotAcquired},
		{name: "NotAcquiredAfterRetries", run: testNotAcquiredAfterRetries},
		{name: "DeadlineEndsWait", run: testDeadlineEndsWait},
		{name: "MutualExclusion", run: testMutualExclusion},
		{name: "ConcurrentTryOneWinner", run: testConcurrentTryOneWinner},
		{name: "FenceIncreasesAcrossInstances", run: testFenceAcrossInstances},
		{name: "FenceIncreasesAfterExpiry", run: testFenceAfterExpiry},
		{name: "FenceIncreasesAfterForceRelease", run: testFenceAfterForceRelease},
		{name: "ReleaseIdempotent", run: testReleaseIdempotent},
		{name: "StaleReleaseNotHeld", run: testStaleReleaseNotHeld},
		{name: "StaleExtendNotHeld", run: testStaleExtendNotHeld},
		{name: "ExpiredLeaseErrExpired", run: testExpiredLeaseErrExpired},
		{name: "ForceRelease", run: testForceRelease},
		{name: "TTLAndExtend", run: testTTLAndExtend},
		{name: "ExtendKeepsLease", run: testExtendKeepsLease},
		{name: "AutoRenewKeepsLease", run: testAutoRenewKeepsLease},
		{name: "DoneClosesOnExpiry", run: testDoneClosesOnExpiry},
		{name: "DoneClosesOnForceRelease", run: testDoneClosesOnForceRelease},
		{name: "Held", run: testHeld},
		{name: "NamesAcceptedAndDistinct", run: testLockNames},
		{name: "BadInput", run: testLockerBadInput},
		{name: "WithLockRunsAndReleases", run: testWithLockRuns},
		{name: "WithLockLeaseLost", run: testWithLockLeaseLost},
		{name: "WithLockReleasesOnCancel", run: testWithLockReleasesOnCancel},
		{name: "WithLockAutoRenews", run: testWithLockAutoRenews},
		{name: "ReleaseWithEndedCtxGivesUp", run: testReleaseWithEndedCtx},
		{name: "WaitersServedInOrderAcrossInstances", serial: true, run: testServedInOrder},
	}
}

// wakeRounds measures, over several rounds, how long after a release
// (done by release) a waiter on another instance holds the lease. The
// waiter's retry delay is the table's retry, twenty times its wake: at
// most one round may exceed wake (a scheduling hiccup on a loaded
// machine) and none may exceed prompt (half the retry delay).
func wakeRounds(t *testing.T, h Harness, what string, hold0 func(ctx context.Context, holder coord.Backend, res string) func()) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	const rounds = 5
	slow := 0
	for i := 0; i < rounds; i++ {
		res := fmt.Sprintf("wake-%d", i)
		holder, waiter := ins[i%3], ins[(i+1)%3]
		release := hold0(ctx, holder, res)
		type result struct {
			at  time.Time
			err error
			l   coord.Lock
		}
		got := make(chan result, 1)
		go func() {
			l, err := waiter.Locker().Acquire(ctx, res, coord.WithTTL(tm.held), coord.WithRetry(5, tm.retry))
			got <- result{time.Now(), err, l}
		}()
		hold(ctx, tm.settle) // let the waiter try once and start waiting
		at := time.Now()
		release()
		r := <-got
		if r.err != nil {
			t.Fatalf("round %d: waiter: %v", i, r.err)
		}
		d := r.at.Sub(at)
		t.Logf("round %d: waiter held the lease %v after the %s", i, d, what)
		if d > tm.prompt {
			t.Fatalf("round %d: waiter held the lease %v after the %s (RetryDelay %v): waiters are polled, not woken", i, d, what, tm.retry)
		}
		if d > tm.wake {
			slow++
		}
		must(t, r.l.Release(ctx), "Release")
	}
	if slow > 1 {
		t.Fatalf("%d of %d waiters took over %v to get the lease after the %s (RetryDelay %v): waiters are polled, not woken", slow, rounds, tm.wake, what, tm.retry)
	}
}

func testWaiterWokenByRelease(t *testing.T, h Harness) {
	tm := timingOf(h)
	wakeRounds(t, h, "release", func(ctx context.Context, holder coord.Backend, res string) func() {
		l, err := holder.Locker().Acquire(ctx, res, coord.WithTTL(tm.held))
		must(t, err, "Acquire")
		return func() { must(t, l.Release(ctx), "Release") }
	})
}

func testWaiterWokenByForceRelease(t *testing.T, h Harness) {
	tm := timingOf(h)
	admin := instances(t, h, 1)[0]
	wakeRounds(t, h, "force release", func(ctx context.Context, holder coord.Backend, res string) func() {
		_, err := holder.Locker().Acquire(ctx, res, coord.WithTTL(tm.held))
		must(t, err, "Acquire")
		return func() {
			ok, err := admin.Locker().ForceRelease(ctx, res)
			must(t, err, "ForceRelease")
			if !ok {
				t.Errorf("ForceRelease of a held lease reported no lease")
			}
		}
	})
}

func testWaiterWokenByExpiry(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	// A waiter that only retries on its delay would take four times the
	// bound.
	bound := tm.lease + tm.expiry
	retry := 4 * bound
	l, err := ins[0].Locker().Acquire(ctx, "wbe", coord.WithTTL(tm.lease))
	must(t, err, "Acquire")
	start := time.Now()
	l2, err := ins[1].Locker().Acquire(ctx, "wbe", coord.WithTTL(tm.held), coord.WithRetry(3, retry))
	must(t, err, "waiting Acquire")
	d := time.Since(start)
	if d > bound {
		t.Errorf("waiter got a lease that expired after %v only %v later (RetryDelay %v): the wait is not bounded by the holder's TTL", tm.lease, d, retry)
	}
	if l2.Fence() <= l.Fence() {
		t.Errorf("fence %d after expiry is not above %d", l2.Fence(), l.Fence())
	}
}

func testCancelEndsWait(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	l, err := a.Locker().Acquire(ctx, "cew", coord.WithTTL(tm.held))
	must(t, err, "Acquire")

	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	var at atomic.Int64
	go func() {
		_, err := b.Locker().Acquire(wctx, "cew", coord.WithTTL(tm.held), coord.WithWait(tm.retry))
		at.Store(time.Now().UnixNano())
		done <- err
	}()
	hold(ctx, tm.settle)
	cancelled := time.Now()
	cancel()
	select {
	case err = <-done:
	case <-time.After(tm.retry + tm.prompt):
		t.Fatalf("a cancelled wait did not end within %v", tm.retry+tm.prompt)
	}
	if d := time.Unix(0, at.Load()).Sub(cancelled); d > tm.cancel {
		t.Errorf("a cancelled wait ended %v after the cancel (RetryDelay %v)", d, tm.retry)
	}
	if !errors.Is(err, coord.ErrNotAcquired) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v, want ErrNotAcquired joined with context.Canceled", err)
	}
	// A context cancelled before the call ends it at once too.
	pre, precancel := context.WithCancel(ctx)
	precancel()
	start := time.Now()
	_, err = b.Locker().Acquire(pre, "cew", coord.WithWait(tm.retry))
	if !errors.Is(err, coord.ErrNotAcquired) || !errors.Is(err, context.Canceled) {
		t.Errorf("wait with a cancelled context: %v, want ErrNotAcquired joined with context.Canceled", err)
	}
	if d := time.Since(start); d > tm.cancel {
		t.Errorf("wait with a cancelled context took %v", d)
	}
	// The cancelled waiters left nothing behind.
	must(t, l.Release(ctx), "Release")
	if locked, err := a.Locker().Locked(ctx, "cew"); err != nil || locked {
		t.Errorf("after the holder released, Locked = %v, %v: a cancelled waiter took the lease", locked, err)
	}
	if n := len(b.Locker().Held()); n != 0 {
		t.Errorf("the cancelled waiter's instance holds %d leases", n)
	}
}

func testAcquireRelease(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	l, err := a.Locker().Acquire(ctx, "ar", coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	if l.Resource() != "ar" {
		t.Errorf("Resource = %q, want %q", l.Resource(), "ar")
	}
	if len(l.Token()) < 16 {
		t.Errorf("Token has %d characters; a 128-bit secret needs at least 16", len(l.Token()))
	}
	if l.Fence() <= 0 {
		t.Errorf("Fence = %d, want > 0", l.Fence())
	}
	if isClosed(l.Done()) {
		t.Fatal("Done is closed on a fresh lease")
	}
	for _, in := range ins {
		locked, err := in.Locker().Locked(ctx, "ar")
		must(t, err, "Locked")
		if !locked {
			t.Errorf("Locked on %s = false while held", in.InstanceID())
		}
	}
	ttl, err := l.TTL(ctx)
	must(t, err, "TTL")
	if ttl <= 0 || ttl > tm.long {
		t.Errorf("TTL = %v, want in (0, %v]", ttl, tm.long)
	}
	must(t, l.Release(ctx), "Release")
	if !closedWithin(l.Done(), tm.prompt) {
		t.Errorf("Done not closed after Release")
	}
	locked, err := b.Locker().Locked(ctx, "ar")
	must(t, err, "Locked")
	if locked {
		t.Errorf("Locked = true after Release")
	}
	// Tokens are fresh per acquisition.
	tokens := map[string]bool{l.Token(): true}
	for i := 0; i < 50; i++ {
		l, err := b.Locker().Acquire(ctx, "ar", coord.WithTTL(tm.long))
		must(t, err, "Acquire")
		if tokens[l.Token()] {
			t.Fatalf("token repeated after %d acquisitions", i+1)
		}
		tokens[l.Token()] = true
		must(t, l.Release(ctx), "Release")
	}
}

func testHeldElsewhereNotAcquired(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	// held, not long: a failed acquisition that wrote the default TTL
	// (10s) over the holder's would show.
	l, err := a.Locker().Acquire(ctx, "hena", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	for name, in := range map[string]coord.Backend{"other instance": b, "same instance": a} {
		start := time.Now()
		_, err := in.Locker().Acquire(ctx, "hena", coord.WithRetry(0, 0))
		if !errors.Is(err, coord.ErrNotAcquired) {
			t.Errorf("%s: try-once on a held lease: %v, want ErrNotAcquired", name, err)
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: try-once error %v wraps a context or input error", name, err)
		}
		if d := time.Since(start); d > tm.prompt {
			t.Errorf("%s: try-once took %v", name, d)
		}
	}
	ttl, err := l.TTL(ctx)
	must(t, err, "TTL")
	if ttl <= tm.held-tm.drift {
		t.Errorf("failed acquisitions changed the holder's TTL to %v", ttl)
	}
	must(t, l.Release(ctx), "Release")
}

func testNotAcquiredAfterRetries(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	_, err := a.Locker().Acquire(ctx, "naar", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	start := time.Now()
	_, err = b.Locker().Acquire(ctx, "naar", coord.WithRetry(3, tm.poll))
	if !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("Acquire after its retries: %v, want ErrNotAcquired", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("retries ran out but the error wraps a context error: %v", err)
	}
	if d := time.Since(start); d > tm.retry {
		t.Errorf("3 retries of at most %v took %v", tm.poll, d)
	}
	if n := len(b.Locker().Held()); n != 0 {
		t.Errorf("failed Acquire left %d leases in Held", n)
	}
}

func testDeadlineEndsWait(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	_, err := ins[0].Locker().Acquire(ctx, "dew", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	// A wait that ignored its deadline would take the retry delay, over
	// twice the bound.
	deadline, retry := tm.deadline, 2*tm.retry
	bound := deadline + tm.prompt
	dctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start := time.Now()
	_, err = ins[1].Locker().Acquire(dctx, "dew", coord.WithWait(retry))
	if !errors.Is(err, coord.ErrNotAcquired) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait past the deadline: %v, want ErrNotAcquired joined with context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > bound {
		t.Errorf("a wait with a %v deadline took %v (RetryDelay %v)", deadline, d, retry)
	}
}

func testMutualExclusion(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	const perWorker = 12
	var inside, overlaps, fenceErrs atomic.Int64
	var last atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 9; i++ {
		in := ins[i%3]
		wg.Go(func() {
			for j := 0; j < perWorker; j++ {
				wctx, cancel := context.WithTimeout(ctx, tm.guard)
				l, err := in.Locker().Acquire(wctx, "mutex", coord.WithTTL(tm.held), coord.WithWait(tm.prompt))
				cancel()
				if err != nil {
					errs <- err
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				if prev := last.Swap(l.Fence()); l.Fence() <= prev {
					fenceErrs.Add(1)
				}
				runtime.Gosched()
				time.Sleep(tm.critical)
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
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d times two holders held the lease at once", n)
	}
	if n := fenceErrs.Load(); n != 0 {
		t.Errorf("%d times a holder's fence was not above its predecessor's", n)
	}
}

func testFenceAcrossInstances(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	var last int64
	for i := 0; i < 30; i++ {
		l, err := ins[i%3].Locker().Acquire(ctx, "fai", coord.WithTTL(tm.long))
		must(t, err, "Acquire")
		if l.Fence() <= last {
			t.Fatalf("acquisition %d: fence %d is not above %d", i, l.Fence(), last)
		}
		last = l.Fence()
		must(t, l.Release(ctx), "Release")
	}
	// Another resource's fences do not need to relate, but holding one
	// must not disturb the other.
	other, err := ins[0].Locker().Acquire(ctx, "fai-other", coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	l, err := ins[1].Locker().Acquire(ctx, "fai", coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	if l.Fence() <= last {
		t.Errorf("fence %d is not above %d after another resource was taken", l.Fence(), last)
	}
	_ = other
}

func testFenceAfterExpiry(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	l, err := ins[0].Locker().Acquire(ctx, "fae", coord.WithTTL(tm.short))
	must(t, err, "Acquire")
	eventually(t, tm.short+tm.expiry, func() bool {
		locked, err := ins[1].Locker().Locked(ctx, "fae")
		return err == nil && !locked
	}, "a %v lease expires", tm.short)
	l2, err := ins[1].Locker().Acquire(ctx, "fae", coord.WithTTL(tm.long), coord.WithRetry(0, 0))
	must(t, err, "Acquire after expiry")
	if l2.Fence() <= l.Fence() {
		t.Errorf("fence %d after expiry is not above %d", l2.Fence(), l.Fence())
	}
}

func testFenceAfterForceRelease(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	l, err := ins[0].Locker().Acquire(ctx, "fafr", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	ok, err := ins[2].Locker().ForceRelease(ctx, "fafr")
	must(t, err, "ForceRelease")
	if !ok {
		t.Fatal("ForceRelease of a held lease reported no lease")
	}
	l2, err := ins[1].Locker().Acquire(ctx, "fafr", coord.WithTTL(tm.long), coord.WithRetry(0, 0))
	must(t, err, "Acquire after ForceRelease")
	if l2.Fence() <= l.Fence() {
		t.Errorf("fence %d after ForceRelease is not above %d", l2.Fence(), l.Fence())
	}
}

func testReleaseIdempotent(t *testing.T, h Harness) {
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	l, err := in.Locker().Acquire(ctx, "ri", coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	must(t, l.Release(ctx), "Release")
	for i := 0; i < 2; i++ {
		if err := l.Release(ctx); err != nil {
			t.Errorf("Release again: %v, want nil", err)
		}
	}
	// Concurrent releases of one lease are all nil, too.
	l, err = in.Locker().Acquire(ctx, "ri", coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = l.Release(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Release %d: %v", i, err)
		}
	}
}

// lostTo makes a's lease on res expire and b take it; it returns both.
func lostTo(t *testing.T, tm timing, a, b coord.Backend, res string, bTTL time.Duration) (stale, holder coord.Lock) {
	t.Helper()
	ctx := ctxOf(t)
	stale, err := a.Locker().Acquire(ctx, res, coord.WithTTL(tm.short))
	must(t, err, "Acquire")
	l2, err := b.Locker().Acquire(ctx, res, coord.WithTTL(bTTL), coord.WithWait(tm.poll))
	must(t, err, "Acquire after expiry")
	return stale, l2
}

func testStaleReleaseNotHeld(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	stale, holder := lostTo(t, tm, ins[0], ins[1], "srnh", tm.long)
	err := stale.Release(ctx)
	if !errors.Is(err, coord.ErrNotHeld) || errors.Is(err, coord.ErrExpired) {
		t.Errorf("stale Release while another holds the lease: %v, want ErrNotHeld (not ErrExpired)", err)
	}
	locked, err := ins[0].Locker().Locked(ctx, "srnh")
	must(t, err, "Locked")
	if !locked {
		t.Fatal("a stale Release freed the new holder's lease")
	}
	if _, err := ins[0].Locker().Acquire(ctx, "srnh", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("after a stale Release the lease could be taken: %v", err)
	}
	must(t, holder.Release(ctx), "the new holder's Release")
}

func testStaleExtendNotHeld(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	stale, holder := lostTo(t, tm, ins[0], ins[1], "senh", tm.long)
	err := stale.Extend(ctx, tm.held)
	if !errors.Is(err, coord.ErrNotHeld) || errors.Is(err, coord.ErrExpired) {
		t.Errorf("stale Extend while another holds the lease: %v, want ErrNotHeld (not ErrExpired)", err)
	}
	if _, err := stale.TTL(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Errorf("TTL of a lost lease: %v, want ErrNotHeld", err)
	}
	ttl, err := holder.TTL(ctx)
	must(t, err, "the new holder's TTL")
	if ttl > tm.long {
		t.Errorf("a stale Extend changed the new holder's TTL to %v", ttl)
	}
	if !closedWithin(stale.Done(), tm.prompt) {
		t.Errorf("Done of a lease found lost by Extend is not closed")
	}
	if isClosed(holder.Done()) {
		t.Errorf("the new holder's Done was closed by the stale Extend")
	}
	must(t, holder.Release(ctx), "the new holder's Release")
}

func testExpiredLeaseErrExpired(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	for _, op := range []string{"Release", "Extend", "TTL"} {
		res := "ele-" + op
		l, err := ins[0].Locker().Acquire(ctx, res, coord.WithTTL(tm.short))
		must(t, err, "Acquire")
		eventually(t, tm.short+tm.expiry, func() bool {
			locked, err := ins[1].Locker().Locked(ctx, res)
			return err == nil && !locked
		}, "a %v lease expires", tm.short)
		switch op {
		case "Release":
			err = l.Release(ctx)
		case "Extend":
			err = l.Extend(ctx, tm.long)
		case "TTL":
			_, err = l.TTL(ctx)
		}
		if !errors.Is(err, coord.ErrExpired) || !errors.Is(err, coord.ErrNotHeld) {
			t.Errorf("%s of an expired lease nobody holds: %v, want ErrExpired (wrapping ErrNotHeld)", op, err)
		}
		if locked, err := ins[1].Locker().Locked(ctx, res); err != nil || locked {
			t.Errorf("after %s of an expired lease, Locked = %v, %v: the lease came back", op, locked, err)
		}
	}
	// A force-released lease is expired, too.
	l, err := ins[0].Locker().Acquire(ctx, "ele-force", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	_, err = ins[1].Locker().ForceRelease(ctx, "ele-force")
	must(t, err, "ForceRelease")
	if err := l.Release(ctx); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("Release of a force-released lease nobody holds: %v, want ErrExpired", err)
	}
}

func testForceRelease(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	ok, err := ins[1].Locker().ForceRelease(ctx, "fr")
	must(t, err, "ForceRelease")
	if ok {
		t.Errorf("ForceRelease of a free resource reported a lease")
	}
	_, err = ins[0].Locker().Acquire(ctx, "fr", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	_, err = ins[0].Locker().Acquire(ctx, "fr-other", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	ok, err = ins[1].Locker().ForceRelease(ctx, "fr")
	must(t, err, "ForceRelease")
	if !ok {
		t.Errorf("ForceRelease of a held lease reported none")
	}
	if locked, err := ins[0].Locker().Locked(ctx, "fr"); err != nil || locked {
		t.Errorf("Locked after ForceRelease = %v, %v", locked, err)
	}
	if locked, err := ins[0].Locker().Locked(ctx, "fr-other"); err != nil || !locked {
		t.Errorf("ForceRelease freed another resource: Locked = %v, %v", locked, err)
	}
	ok, err = ins[1].Locker().ForceRelease(ctx, "fr")
	must(t, err, "ForceRelease")
	if ok {
		t.Errorf("a second ForceRelease reported a lease")
	}
}

func testTTLAndExtend(t *testing.T, h Harness) {
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	l, err := in.Locker().Acquire(ctx, "tte", coord.WithTTL(tm.renewed))
	must(t, err, "Acquire")
	ttl, err := l.TTL(ctx)
	must(t, err, "TTL")
	if ttl <= 0 || ttl > tm.renewed {
		t.Errorf("TTL = %v, want in (0, %v]", ttl, tm.renewed)
	}
	must(t, l.Extend(ctx, tm.long), "Extend")
	ttl, err = l.TTL(ctx)
	must(t, err, "TTL")
	if ttl <= tm.long-tm.drift || ttl > tm.long {
		t.Errorf("TTL after Extend(%v) = %v, want in (%v, %v]", tm.long, ttl, tm.long-tm.drift, tm.long)
	}
	// Extend sets the end from now; it may also shorten.
	must(t, l.Extend(ctx, tm.renewed), "Extend")
	ttl, err = l.TTL(ctx)
	must(t, err, "TTL")
	if ttl > tm.renewed {
		t.Errorf("TTL after Extend(%v) = %v, want at most %v", tm.renewed, ttl, tm.renewed)
	}
}

func testExtendKeepsLease(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	l, err := ins[0].Locker().Acquire(ctx, "ekl", coord.WithTTL(tm.lease))
	must(t, err, "Acquire")
	must(t, l.Extend(ctx, tm.long), "Extend")
	hold(ctx, 2*tm.lease) // past the first TTL
	if _, err := ins[1].Locker().Acquire(ctx, "ekl", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("an extended lease could be taken after its first TTL: %v", err)
	}
	if isClosed(l.Done()) {
		t.Errorf("Done closed on an extended lease")
	}
	must(t, l.Release(ctx), "Release")
}

func testAutoRenewKeepsLease(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	ttl := tm.renewed
	l, err := ins[0].Locker().Acquire(ctx, "arkl", coord.WithTTL(ttl), coord.WithAutoRenew())
	must(t, err, "Acquire")
	hold(ctx, 4*ttl)
	if isClosed(l.Done()) {
		t.Fatalf("Done closed on an auto-renewed lease after 4 TTLs")
	}
	if _, err := ins[1].Locker().Acquire(ctx, "arkl", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("an auto-renewed lease could be taken after 4 TTLs: %v", err)
	}
	if left, err := l.TTL(ctx); err != nil || left <= 0 {
		t.Errorf("TTL of an auto-renewed lease = %v, %v", left, err)
	}
	must(t, l.Release(ctx), "Release")
	if !closedWithin(l.Done(), tm.prompt) {
		t.Errorf("Done not closed after Release")
	}
	// After Release the watchdog stops: the resource stays free.
	hold(ctx, 2*ttl)
	if locked, err := ins[1].Locker().Locked(ctx, "arkl"); err != nil || locked {
		t.Errorf("after Release of an auto-renewed lease, Locked = %v, %v", locked, err)
	}
}

func testDoneClosesOnExpiry(t *testing.T, h Harness) {
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	l, err := in.Locker().Acquire(ctx, "dcoe", coord.WithTTL(tm.lease))
	must(t, err, "Acquire")
	if isClosed(l.Done()) {
		t.Fatal("Done closed on a fresh lease")
	}
	if !closedWithin(l.Done(), tm.lease+tm.expiry) {
		t.Errorf("Done not closed %v after a %v lease ran out", tm.expiry, tm.lease)
	}
}

func testDoneClosesOnForceRelease(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	renewed, err := ins[0].Locker().Acquire(ctx, "dcofr-renew", coord.WithTTL(tm.lease), coord.WithAutoRenew())
	must(t, err, "Acquire")
	plain, err := ins[0].Locker().Acquire(ctx, "dcofr-plain", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	for _, r := range []string{"dcofr-renew", "dcofr-plain"} {
		if ok, err := ins[1].Locker().ForceRelease(ctx, r); err != nil || !ok {
			t.Fatalf("ForceRelease(%s) = %v, %v", r, ok, err)
		}
	}
	// The watchdog's next renewal, a third of a lease later, finds the
	// loss.
	if !closedWithin(renewed.Done(), tm.lease+tm.expiry) {
		t.Errorf("Done of an auto-renewed lease not closed within %v of a force release (TTL %v)", tm.lease+tm.expiry, tm.lease)
	}
	if err := plain.Extend(ctx, tm.held); !errors.Is(err, coord.ErrNotHeld) {
		t.Errorf("Extend of a force-released lease: %v, want ErrNotHeld", err)
	}
	if !closedWithin(plain.Done(), tm.prompt) {
		t.Errorf("Done not closed after Extend found the lease force-released")
	}
	if locked, err := ins[1].Locker().Locked(ctx, "dcofr-plain"); err != nil || locked {
		t.Errorf("a failed Extend brought the lease back: Locked = %v, %v", locked, err)
	}
}

func testHeld(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	resources := func(ls []coord.Lock) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.Resource())
		}
		slices.Sort(out)
		return out
	}
	if n := len(ins[0].Locker().Held()); n != 0 {
		t.Fatalf("a fresh instance holds %d leases", n)
	}
	la, err := ins[0].Locker().Acquire(ctx, "held-a", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	_, err = ins[0].Locker().Acquire(ctx, "held-short", coord.WithTTL(tm.short))
	must(t, err, "Acquire")
	_, err = ins[1].Locker().Acquire(ctx, "held-b", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	if got := resources(ins[0].Locker().Held()); !slices.Equal(got, []string{"held-a", "held-short"}) {
		t.Errorf("Held = %v, want [held-a held-short]", got)
	}
	if got := resources(ins[1].Locker().Held()); !slices.Equal(got, []string{"held-b"}) {
		t.Errorf("other instance's Held = %v, want [held-b]", got)
	}
	for _, l := range ins[0].Locker().Held() {
		if l.Resource() == "held-a" && (l.Fence() != la.Fence() || l.Token() != la.Token()) {
			t.Errorf("Held returned a lease with another fence or token than Acquire")
		}
	}
	eventually(t, tm.short+tm.expiry, func() bool {
		return slices.Equal(resources(ins[0].Locker().Held()), []string{"held-a"})
	}, "an expired lease leaves Held")
	must(t, la.Release(ctx), "Release")
	if n := len(ins[0].Locker().Held()); n != 0 {
		t.Errorf("Held has %d leases after Release", n)
	}
}

func testLockNames(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	names := goodNames()
	var locks []coord.Lock
	for _, n := range names {
		l, err := ins[0].Locker().Acquire(ctx, n, coord.WithTTL(tm.held), coord.WithRetry(0, 0))
		if err != nil {
			t.Fatalf("Acquire(%q): %v", n, err)
		}
		if l.Resource() != n {
			t.Errorf("Resource = %q, want %q", l.Resource(), n)
		}
		locks = append(locks, l)
	}
	for i, n := range names {
		must(t, locks[i].Release(ctx), "Release")
		for j, m := range names[i+1:] {
			locked, err := ins[1].Locker().Locked(ctx, m)
			must(t, err, "Locked")
			if !locked {
				t.Errorf("releasing %q freed %q (%d)", n, m, j)
			}
		}
		if locked, _ := ins[1].Locker().Locked(ctx, n); locked {
			t.Errorf("%q still locked after Release", n)
		}
	}
}

func testLockerBadInput(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	lk := ins[0].Locker()
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	for label, n := range badNames() {
		_, err := lk.Acquire(ctx, n)
		invalid("Acquire with name "+label, err)
		_, err = lk.Locked(ctx, n)
		invalid("Locked with name "+label, err)
		_, err = lk.ForceRelease(ctx, n)
		invalid("ForceRelease with name "+label, err)
	}
	// The durations below are bad input, refused before any timing: a
	// zero, a negative and a sub-millisecond TTL, a negative retry delay.
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} {
		_, err := lk.Acquire(ctx, "bad-ttl", coord.WithTTL(d))
		invalid(fmt.Sprintf("Acquire with TTL %v", d), err)
	}
	_, err := lk.Acquire(ctx, "bad-ttl", coord.WithRetry(-2, tm.poll))
	invalid("Acquire with retries -2", err)
	_, err = lk.Acquire(ctx, "bad-ttl", coord.WithRetry(1, -time.Millisecond))
	invalid("Acquire with a negative retry delay", err)
	if locked, err := ins[1].Locker().Locked(ctx, "bad-ttl"); err != nil || locked {
		t.Errorf("a refused Acquire took the lease: %v, %v", locked, err)
	}
	if n := len(lk.Held()); n != 0 {
		t.Errorf("refused Acquires left %d leases in Held", n)
	}
	l, err := lk.Acquire(ctx, "bad-extend", coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	for _, d := range []time.Duration{0, -time.Second} { // bad input, as above
		invalid(fmt.Sprintf("Extend(%v)", d), l.Extend(ctx, d))
	}
	ttl, err := l.TTL(ctx)
	must(t, err, "TTL after a refused Extend")
	if ttl <= tm.long-tm.drift {
		t.Errorf("a refused Extend changed the TTL to %v", ttl)
	}
	if isClosed(l.Done()) {
		t.Errorf("a refused Extend closed Done")
	}
	must(t, l.Release(ctx), "Release")
}

func testWithLockRuns(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	ran := false
	err := coord.WithLock(ctx, ins[0].Locker(), "wlr", func(ctx context.Context) error {
		ran = true
		locked, err := ins[1].Locker().Locked(ctx, "wlr")
		if err != nil || !locked {
			return fmt.Errorf("inside WithLock, Locked = %v, %v", locked, err)
		}
		return nil
	}, coord.WithTTL(tm.long))
	must(t, err, "WithLock")
	if !ran {
		t.Fatal("fn did not run")
	}
	if locked, err := ins[1].Locker().Locked(ctx, "wlr"); err != nil || locked {
		t.Errorf("after WithLock, Locked = %v, %v", locked, err)
	}
	sentinel := errors.New("fn failed")
	err = coord.WithLock(ctx, ins[0].Locker(), "wlr", func(context.Context) error { return sentinel })
	if !errors.Is(err, sentinel) {
		t.Errorf("WithLock returned %v, want fn's error", err)
	}
	if locked, err := ins[1].Locker().Locked(ctx, "wlr"); err != nil || locked {
		t.Errorf("after a failed fn, Locked = %v, %v", locked, err)
	}
	// Held elsewhere: WithLock returns Acquire's error and does not run fn.
	_, err = ins[1].Locker().Acquire(ctx, "wlr", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	err = coord.WithLock(ctx, ins[0].Locker(), "wlr", func(context.Context) error {
		t.Error("fn ran without the lease")
		return nil
	}, coord.WithRetry(0, 0))
	if !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("WithLock on a held lease: %v, want ErrNotAcquired", err)
	}
}

func testWithLockLeaseLost(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	var cause error
	err := coord.WithLock(ctx, ins[0].Locker(), "wlll", func(fctx context.Context) error {
		ok, err := ins[1].Locker().ForceRelease(ctx, "wlll")
		if err != nil || !ok {
			return fmt.Errorf("ForceRelease = %v, %v", ok, err)
		}
		select {
		case <-fctx.Done():
			cause = context.Cause(fctx)
			return fctx.Err()
		case <-time.After(tm.lease + tm.expiry):
			return fmt.Errorf("fn's context not cancelled within %v of the lease's loss (TTL %v)", tm.lease+tm.expiry, tm.lease)
		}
	}, coord.WithTTL(tm.lease))
	if !errors.Is(cause, coord.ErrLeaseLost) {
		t.Errorf("cause of fn's cancelled context = %v, want ErrLeaseLost", cause)
	}
	if !errors.Is(err, coord.ErrLeaseLost) {
		t.Errorf("WithLock after the lease was lost returned %v, want an error wrapping ErrLeaseLost", err)
	}
	if locked, err := ins[1].Locker().Locked(ctx, "wlll"); err != nil || locked {
		t.Errorf("after a lost lease, Locked = %v, %v", locked, err)
	}
}

func testWithLockReleasesOnCancel(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	cctx, cancel := context.WithCancel(ctx)
	err := coord.WithLock(cctx, ins[0].Locker(), "wlroc", func(fctx context.Context) error {
		cancel()
		<-fctx.Done()
		return fctx.Err()
	}, coord.WithTTL(tm.held))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("WithLock with a cancelled ctx: %v, want context.Canceled", err)
	}
	if locked, err := ins[1].Locker().Locked(ctx, "wlroc"); err != nil || locked {
		t.Errorf("a cancelled WithLock left the lease: Locked = %v, %v", locked, err)
	}
}

func testWithLockAutoRenews(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	ttl := tm.renewed
	err := coord.WithLock(ctx, ins[0].Locker(), "wlar", func(fctx context.Context) error {
		hold(fctx, 4*ttl)
		if fctx.Err() != nil {
			return fmt.Errorf("fn's context ended while the lease should be renewed: %w", context.Cause(fctx))
		}
		if _, err := ins[1].Locker().Acquire(ctx, "wlar", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
			return fmt.Errorf("the lease could be taken while WithLock ran past 4 TTLs: %v", err)
		}
		return nil
	}, coord.WithTTL(ttl))
	must(t, err, "WithLock")
}

func testConcurrentTryOneWinner(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	for round := 0; round < 20; round++ {
		res := fmt.Sprintf("ctow-%d", round)
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []coord.Lock
		var errs []error
		for g := 0; g < 9; g++ {
			wg.Go(func() {
				<-start
				l, err := ins[g%3].Locker().Acquire(ctx, res, coord.WithTTL(tm.long), coord.WithRetry(0, 0))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, l)
				case !errors.Is(err, coord.ErrNotAcquired):
					errs = append(errs, err)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			t.Errorf("round %d: try-once: %v, want nil or ErrNotAcquired", round, err)
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d of 9 simultaneous try-once acquisitions won, want exactly 1", round, len(won))
		}
		must(t, won[0].Release(ctx), "Release")
	}
}

// testReleaseWithEndedCtx: a Release of an auto-renewed lease whose ctx
// has already ended may fail, but gives the lease up all the same: it is
// no longer renewed, Done closes and Held no longer lists it, and another
// instance gets the resource within the TTL plus the table's expiry.
func testReleaseWithEndedCtx(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	ttl, margin := tm.lease, tm.expiry
	l, err := ins[0].Locker().Acquire(ctx, "rwec", coord.WithTTL(ttl), coord.WithAutoRenew())
	must(t, err, "Acquire")
	ended, cancel := context.WithCancel(ctx)
	cancel()
	start := time.Now()
	_ = l.Release(ended) // its error is the backend's choice
	if !closedWithin(l.Done(), ttl+margin) {
		t.Errorf("Done not closed within %v of a Release with an ended ctx", ttl+margin)
	}
	listed := func() bool {
		for _, o := range ins[0].Locker().Held() {
			if o.Token() == l.Token() {
				return true
			}
		}
		return false
	}
	if !within(ttl+margin, func() bool { return !listed() }) {
		t.Errorf("Held still lists the lease %v after a Release with an ended ctx", ttl+margin)
	}
	wctx, wcancel := context.WithTimeout(ctx, ttl+margin)
	defer wcancel()
	next, err := ins[1].Locker().Acquire(wctx, "rwec", coord.WithWait(tm.poll))
	if err != nil {
		t.Fatalf("another instance could not get the resource within %v of a Release with an ended ctx (TTL %v): %v",
			time.Since(start), ttl, err)
	}
	must(t, next.Release(ctx), "Release")
}

// testServedInOrder queues one waiter on each of five instances, one
// after the other, behind a holder on a sixth, and checks that they are
// served in the order they asked. The tolerance is one pair out of order
// (a waiter a loaded machine delays past the next one's arrival): a
// backend that lets its woken waiters race for the lease serves five in
// an order with at most one inversion about one time in twenty-four.
func testServedInOrder(t *testing.T, h Harness) {
	tm := timingOf(h)
	const waiters = 5
	ins := instances(t, h, waiters+1)
	ctx := ctxOf(t)
	const res = "fifo"
	l, err := ins[0].Locker().Acquire(ctx, res, coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	var mu sync.Mutex
	var order []int
	errs := make(chan error, waiters)
	var wg sync.WaitGroup
	for i := 1; i <= waiters; i++ {
		wg.Go(func() {
			wctx, cancel := context.WithTimeout(ctx, tm.guard)
			defer cancel()
			w, err := ins[i].Locker().Acquire(wctx, res, coord.WithTTL(tm.held), coord.WithWait(tm.retry))
			if err != nil {
				errs <- fmt.Errorf("waiter %d: %w", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			if err := w.Release(context.WithoutCancel(ctx)); err != nil {
				errs <- fmt.Errorf("waiter %d: Release: %w", i, err)
			}
		})
		hold(ctx, tm.settle) // let waiter i queue before the next asks
	}
	must(t, l.Release(ctx), "Release")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	inversions := 0
	for a := range order {
		for b := a + 1; b < len(order); b++ {
			if order[a] > order[b] {
				inversions++
			}
		}
	}
	t.Logf("served in the order %v (asked 1..%d)", order, waiters)
	if len(order) != waiters || inversions > 1 {
		t.Errorf("waiters served in the order %v, %d pairs out of order (asked 1..%d; tolerance 1): waiters are not served first come, first served", order, inversions, waiters)
	}
}
