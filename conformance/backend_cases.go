package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cgn-bot/coord"
)

func backendCases() []testCase {
	return []testCase{
		{name: "CloseStopsGoroutines", serial: true, run: testCloseStopsGoroutines},
		{name: "CapabilitiesHonest", run: testCapabilitiesHonest},
		{name: "UnsupportedSaysSo", run: testUnsupportedSaysSo},
		{name: "InstanceIDsDistinct", run: testInstanceIDsDistinct},
		{name: "HealthHealthy", run: testHealthHealthy},
		{name: "CloseIdempotent", run: testCloseIdempotent},
		{name: "UseAfterClose", run: testUseAfterClose},
		{name: "CloseReleasesLocks", run: testCloseReleasesLocks},
		{name: "CloseWakesWaiters", serial: true, run: testCloseWakesWaiters},
		{name: "CloseEndsSubscriptions", run: testCloseEndsSubscriptions},
		{name: "CloseWaitsForRunningHandler", run: testCloseWaitsForRunningHandler},
		{name: "CloseHonoursDeadline", run: testCloseHonoursDeadline},
		{name: "OthersUnaffectedByClose", run: testOthersUnaffectedByClose},
		{name: "RestartRecovers", needs: capRestart, run: testRestartRecovers},
	}
}

// capabilityProblems lists the declarations of h that its type does not
// back up, the fault hooks it offers without declaring them, and a lease
// granularity that cannot be.
func capabilityProblems(h Harness) []string {
	caps := h.Capabilities()
	var problems []string
	check := func(declared, implemented bool, capName, iface string) {
		switch {
		case declared && !implemented:
			problems = append(problems, fmt.Sprintf("declares %s but does not implement %s", capName, iface))
		case !declared && implemented:
			problems = append(problems, fmt.Sprintf("implements %s but does not declare %s", iface, capName))
		}
	}
	_, cut := h.(SubscriptionCutter)
	_, restart := h.(Restarter)
	_, foreign := h.(ForeignPublisher)
	check(caps.CutSubscription, cut, "CutSubscription", "SubscriptionCutter")
	check(caps.Restart, restart, "Restart", "Restarter")
	check(caps.ForeignPublish, foreign, "ForeignPublish", "ForeignPublisher")
	if caps.LeaseGranularity < 0 {
		problems = append(problems, fmt.Sprintf("declares a negative LeaseGranularity %v", caps.LeaseGranularity))
	}
	return problems
}

func testCapabilitiesHonest(t *testing.T, h Harness) {
	for _, p := range capabilityProblems(h) {
		t.Errorf("harness %T %s", h, p)
	}
}

func testInstanceIDsDistinct(t *testing.T, h Harness) {
	ins := instances(t, h, 3)
	seen := map[string]bool{}
	for i, b := range ins {
		id := b.InstanceID()
		if id == "" {
			t.Fatalf("instance %d has an empty InstanceID", i)
		}
		if seen[id] {
			t.Fatalf("instance %d repeats InstanceID %q", i, id)
		}
		seen[id] = true
		if again := b.InstanceID(); again != id {
			t.Fatalf("InstanceID changed from %q to %q", id, again)
		}
	}
}

func testHealthHealthy(t *testing.T, h Harness) {
	tm := timingOf(h)
	b := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	var hl coord.Health
	eventually(t, tm.connect, func() bool {
		hl = b.Health(ctx)
		return hl.Status == coord.Healthy
	}, "a fresh instance reports Healthy (last: %+v)", hl)
	if hl.Backend == "" {
		t.Errorf("Health.Backend is empty")
	}
	if hl.Connection != coord.Connected {
		t.Errorf("Health.Connection = %q, want %q", hl.Connection, coord.Connected)
	}
	if hl.Error != "" {
		t.Errorf("a healthy Health has Error %q", hl.Error)
	}
}

func testCloseIdempotent(t *testing.T, h Harness) {
	tm := timingOf(h)
	b := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	g := newGate(t)
	started := newSignal()
	_, err := b.Events().Subscribe(ctx, "close-idem", func(coord.Event) {}, coord.IncludeOwn())
	must(t, err, "Subscribe")
	_, err = b.Invalidator().Subscribe(ctx, func(coord.Invalidation) { started.fire(); g.wait() }, coord.IncludeOwn())
	must(t, err, "Subscribe")
	must(t, b.Invalidator().Invalidate(ctx, "k", nil), "Invalidate")
	if !closedWithin(started.ch, tm.delivery) {
		t.Fatalf("own invalidation with IncludeOwn not delivered within %v", tm.delivery)
	}
	// Several concurrent Close calls while a handler is blocked, then the
	// handler is let go: all return nil or ErrClosed.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = b.Close(context.Background()) })
	}
	g.open()
	wg.Wait()
	nils := 0
	for i, err := range errs {
		if err == nil {
			nils++
		} else if !errors.Is(err, coord.ErrClosed) {
			t.Errorf("concurrent Close %d: %v, want nil or ErrClosed", i, err)
		}
	}
	if nils == 0 {
		t.Errorf("no concurrent Close returned nil")
	}
	for i := 0; i < 2; i++ {
		if err := b.Close(ctx); err != nil && !errors.Is(err, coord.ErrClosed) {
			t.Errorf("Close after Close: %v, want nil or ErrClosed", err)
		}
	}
}

func testUseAfterClose(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	sess, err := b.Sessions().Create(ctx, "u1", map[string]any{"a": 1})
	must(t, err, "Create")
	l, err := a.Locker().Acquire(ctx, "uac-held", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	must(t, a.Close(ctx), "Close")

	closed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", what, err)
		}
	}
	_, err = a.Locker().Acquire(ctx, "uac")
	closed("Acquire", err)
	_, err = a.Locker().Locked(ctx, "uac")
	closed("Locked", err)
	_, err = a.Locker().ForceRelease(ctx, "uac")
	closed("ForceRelease", err)
	if n := len(a.Locker().Held()); n != 0 {
		t.Errorf("Held after Close has %d leases", n)
	}
	if err := l.Extend(ctx, tm.long); err == nil {
		t.Errorf("Extend of a lease released by Close succeeded")
	}
	s := a.Sessions()
	_, err = s.Create(ctx, "u1", nil)
	closed("Create", err)
	_, err = s.Get(ctx, sess.ID)
	closed("Get", err)
	_, err = s.Touch(ctx, sess.ID)
	closed("Touch", err)
	closed("Update", s.Update(ctx, sess.ID, map[string]any{"b": 2}))
	closed("Delete", s.Delete(ctx, sess.ID))
	_, err = s.Exists(ctx, sess.ID)
	closed("Exists", err)
	closed("Extend", s.Extend(ctx, sess.ID, tm.held))
	_, err = s.Rotate(ctx, sess.ID)
	closed("Rotate", err)
	_, err = s.ByUser(ctx, "u1")
	closed("ByUser", err)
	closed("Revoke", s.Revoke(ctx, "u1", sess.Handle))
	_, err = s.DeleteByUser(ctx, "u1")
	closed("DeleteByUser", err)
	_, err = s.Count(ctx)
	closed("Count", err)
	_, err = s.Stats(ctx)
	closed("Stats", err)
	_, err = s.Cleanup(ctx)
	closed("Cleanup", err)
	closed("Invalidate", a.Invalidator().Invalidate(ctx, "k", nil))
	closed("InvalidatePattern", a.Invalidator().InvalidatePattern(ctx, "k*", nil))
	_, err = a.Invalidator().Subscribe(ctx, func(coord.Invalidation) {})
	closed("Invalidator.Subscribe", err)
	closed("Publish", a.Events().Publish(ctx, "t", 1))
	_, err = a.Events().Subscribe(ctx, "t", func(coord.Event) {})
	closed("Events.Subscribe", err)
	if hl := a.Health(ctx); hl.Status == coord.Healthy {
		t.Errorf("Health after Close is Healthy")
	}

	// Nothing the closed instance was asked to do reached the store.
	got, err := b.Sessions().Get(ctx, sess.ID)
	must(t, err, "Get from another instance")
	if _, ok := got.Data["b"]; ok {
		t.Errorf("Update after Close changed the session")
	}
}

func testCloseReleasesLocks(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	var fences []int64
	var locks []coord.Lock
	for _, r := range []string{"crl-1", "crl-2", "crl-3"} {
		l, err := a.Locker().Acquire(ctx, r, coord.WithTTL(tm.held))
		must(t, err, "Acquire "+r)
		fences = append(fences, l.Fence())
		locks = append(locks, l)
	}
	l4, err := a.Locker().Acquire(ctx, "crl-renewed", coord.WithTTL(tm.renewed), coord.WithAutoRenew())
	must(t, err, "Acquire with AutoRenew")
	locks = append(locks, l4)
	fences = append(fences, l4.Fence())
	must(t, a.Close(ctx), "Close")
	for i, r := range []string{"crl-1", "crl-2", "crl-3", "crl-renewed"} {
		locked, err := b.Locker().Locked(ctx, r)
		must(t, err, "Locked")
		if locked {
			t.Errorf("%s still locked after its holder closed", r)
			continue
		}
		l, err := b.Locker().Acquire(ctx, r, coord.WithRetry(0, 0))
		if err != nil {
			t.Errorf("Acquire %s after its holder closed: %v", r, err)
			continue
		}
		if l.Fence() <= fences[i] {
			t.Errorf("%s: fence %d after close is not above %d", r, l.Fence(), fences[i])
		}
		if !closedWithin(locks[i].Done(), tm.prompt) {
			t.Errorf("%s: Done of a lease released by Close is not closed", r)
		}
	}
}

func testCloseWakesWaiters(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	_, err := a.Locker().Acquire(ctx, "cww", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	type result struct {
		at  time.Time
		err error
	}
	res := make(chan result, 1)
	go func() {
		_, err := b.Locker().Acquire(ctx, "cww", coord.WithTTL(tm.held), coord.WithRetry(10, tm.retry))
		res <- result{time.Now(), err}
	}()
	hold(ctx, tm.settle) // let the waiter start waiting
	closedAt := time.Now()
	must(t, a.Close(ctx), "Close")
	r := <-res
	must(t, r.err, "waiting Acquire")
	if d := r.at.Sub(closedAt); d > tm.prompt {
		t.Errorf("waiter got the lease %v after its holder closed (RetryDelay %v): not woken by the release", d, tm.retry)
	}
}

func testCloseEndsSubscriptions(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	var invs recorder[coord.Invalidation]
	var evs recorder[coord.Event]
	isub, err := a.Invalidator().Subscribe(ctx, invs.add)
	must(t, err, "Invalidator.Subscribe")
	esub, err := a.Events().Subscribe(ctx, "ces", evs.add)
	must(t, err, "Events.Subscribe")
	must(t, a.Close(ctx), "Close")
	if !isClosed(isub.Done()) {
		t.Errorf("invalidation subscription's Done is open after Close returned")
	}
	if !isClosed(esub.Done()) {
		t.Errorf("event subscription's Done is open after Close returned")
	}
	isub.Unsubscribe() // harmless after Close
	esub.Unsubscribe()
	n1, n2 := invs.len(), evs.len()
	must(t, b.Invalidator().Invalidate(ctx, "k", nil), "Invalidate")
	must(t, b.Events().Publish(ctx, "ces", 1), "Publish")
	// A third instance sees b's messages, so they were sent; the closed
	// one must not.
	c := instances(t, h, 1)[0]
	var seen recorder[coord.Event]
	_, err = c.Events().Subscribe(ctx, "ces", seen.add)
	must(t, err, "Subscribe")
	retrying(t, tm.delivery, func() bool {
		must(t, b.Events().Publish(ctx, "ces", 2), "Publish")
		return seen.len() > 0
	}, "a live instance receives events")
	if invs.len() != n1 || evs.len() != n2 {
		t.Errorf("a closed instance's handlers were called after Close")
	}
}

func testCloseWaitsForRunningHandler(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	g := newGate(t)
	started := newSignal()
	var mu sync.Mutex
	exited := false
	_, err := a.Events().Subscribe(ctx, "cwrh", func(coord.Event) {
		started.fire()
		g.wait()
		time.Sleep(tm.work) // still running a little after the gate opens
		mu.Lock()
		exited = true
		mu.Unlock()
	})
	must(t, err, "Subscribe")
	must(t, b.Events().Publish(ctx, "cwrh", "x"), "Publish")
	if !closedWithin(started.ch, tm.delivery) {
		t.Fatalf("event not delivered within %v", tm.delivery)
	}
	closeDone := make(chan error, 1)
	go func() { closeDone <- a.Close(context.Background()) }()
	select {
	case err := <-closeDone:
		t.Fatalf("Close returned (%v) while a handler was running", err)
	case <-time.After(tm.settle):
	}
	g.open()
	select {
	case err := <-closeDone:
		must(t, err, "Close")
	case <-time.After(tm.closing):
		t.Fatalf("Close did not return within %v after the handler was let go", tm.closing)
	}
	mu.Lock()
	defer mu.Unlock()
	if !exited {
		t.Errorf("Close returned before the running handler finished")
	}
}

// testCloseHonoursDeadline: with an invalidation and an event handler
// that do not return, Close returns by its ctx's deadline with ctx's
// error, having released what it could: the lease is free for another
// instance, later calls return ErrClosed. The handlers' goroutines are
// abandoned until they return (the gate opens at the end of the test).
func testCloseHonoursDeadline(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	g := newGate(t) // opened at cleanup, before the harness closes the instances
	evIn, invIn := newSignal(), newSignal()
	_, err := a.Events().Subscribe(ctx, "chd", func(coord.Event) {
		evIn.fire()
		g.wait()
	})
	must(t, err, "Events.Subscribe")
	_, err = a.Invalidator().Subscribe(ctx, func(coord.Invalidation) {
		invIn.fire()
		g.wait()
	})
	must(t, err, "Invalidator.Subscribe")
	_, err = a.Locker().Acquire(ctx, "chd", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	must(t, b.Events().Publish(ctx, "chd", "x"), "Publish")
	must(t, b.Invalidator().Invalidate(ctx, "chd", nil), "Invalidate")
	if !closedWithin(evIn.ch, tm.delivery) || !closedWithin(invIn.ch, tm.delivery) {
		t.Fatal("handlers not called")
	}
	deadline := tm.deadline
	cctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	closeDone := make(chan error, 1)
	go func() { closeDone <- a.Close(cctx) }()
	// The bound tells a Close that waits for the handlers (for ever) from
	// one slowed down by a loaded machine: its subscriptions must end
	// by the deadline, as any subscription ends with its ctx.
	bound := deadline + tm.ended
	select {
	case err := <-closeDone:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with blocked handlers = %v, want an error wrapping context.DeadlineExceeded", err)
		}
		t.Logf("Close returned after %v (deadline %v)", time.Since(start), deadline)
	case <-time.After(bound):
		g.open()
		<-closeDone
		t.Fatalf("Close with a %v deadline did not return within %v while handlers were blocked", deadline, bound)
	}
	if err := a.Events().Publish(ctx, "chd", 1); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	lctx, lcancel := context.WithTimeout(ctx, tm.closing)
	defer lcancel()
	l, err := b.Locker().Acquire(lctx, "chd", coord.WithWait(tm.poll))
	must(t, err, "Acquire after Close released the lease")
	must(t, l.Release(ctx), "Release")
}

func testOthersUnaffectedByClose(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	a, b, c := ins[0], ins[1], ins[2]
	ctx := ctxOf(t)
	sess, err := a.Sessions().Create(ctx, "u", map[string]any{"k": "v"})
	must(t, err, "Create")
	lb, err := b.Locker().Acquire(ctx, "ouc", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	var got recorder[coord.Event]
	_, err = c.Events().Subscribe(ctx, "ouc", got.add)
	must(t, err, "Subscribe")
	must(t, a.Close(ctx), "Close")
	if _, err := c.Sessions().Get(ctx, sess.ID); err != nil {
		t.Errorf("a session created by a closed instance is gone: %v", err)
	}
	if locked, err := c.Locker().Locked(ctx, "ouc"); err != nil || !locked {
		t.Errorf("another instance's lease was released by Close: locked=%v err=%v", locked, err)
	}
	must(t, b.Events().Publish(ctx, "ouc", 1), "Publish")
	eventually(t, tm.delivery, func() bool { return got.len() == 1 }, "event between live instances")
	must(t, lb.Release(ctx), "Release")
}

func testCloseStopsGoroutines(t *testing.T, h Harness) {
	tm := timingOf(h)
	ctx := ctxOf(t)
	// One instance stays open, so that goroutines a harness or store
	// starts once (for all its instances) are there before the snapshot.
	keep := instances(t, h, 1)[0]
	_, err := keep.Locker().Locked(ctx, "csg")
	must(t, err, "Locked")
	snapshot := goleak.IgnoreCurrent()

	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var invs recorder[coord.Invalidation]
	var evs recorder[coord.Event]
	_, err = a.Invalidator().Subscribe(sctx, invs.add)
	must(t, err, "Subscribe")
	_, err = a.Invalidator().Subscribe(sctx, invs.add, coord.OnlyKey("k"))
	must(t, err, "Subscribe")
	_, err = a.Events().Subscribe(sctx, "csg", evs.add)
	must(t, err, "Subscribe")
	_, err = b.Locker().Acquire(ctx, "csg-renew", coord.WithTTL(tm.lease), coord.WithAutoRenew())
	must(t, err, "Acquire")
	_, err = b.Locker().Acquire(ctx, "csg-plain", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	waitErr := make(chan error, 1)
	go func() {
		_, err := a.Locker().Acquire(ctx, "csg-plain", coord.WithWait(tm.prompt))
		waitErr <- err
	}()
	_, err = a.Sessions().Create(ctx, "u", map[string]any{"x": 1}, coord.WithIdleTTL(tm.renewed))
	must(t, err, "Create")
	must(t, b.Invalidator().Invalidate(ctx, "k", nil), "Invalidate")
	must(t, b.Events().Publish(ctx, "csg", 1), "Publish")
	eventually(t, tm.delivery, func() bool { return invs.len() == 2 && evs.len() == 1 }, "deliveries")
	bClose := time.Now()
	must(t, b.Close(ctx), "Close b") // wakes a's waiter, which takes the lease
	bTook := time.Since(bClose)
	select {
	case err := <-waitErr:
		must(t, err, "waiting Acquire")
	case <-time.After(tm.closing):
		t.Fatalf("waiter not served within %v of its holder's Close", tm.closing)
	}
	aClose := time.Now()
	must(t, a.Close(ctx), "Close a")
	closed := time.Now()
	t.Logf("Close of b took %v, of a %v", bTook, closed.Sub(aClose))
	err = goleak.Find(snapshot)
	if err == nil {
		return
	}
	// Close waits for the backend's own goroutines: any of them still
	// there (goleak looked for about half a second) is a leak. A client
	// library's goroutines (a failover client's sentinel listener and its
	// PubSub, a cluster client's state reload) end on their own after the
	// client's Close, when their closed connection wakes them, which a
	// stalled machine can delay: they get tm.closing.
	if strings.Contains(err.Error(), coordModule) {
		t.Fatalf("goroutines left running after Close of the instances that started them: %v", err)
	}
	t.Logf("%v after Close, goroutines of a client library still end: %v", time.Since(closed), err)
	if !within(tm.closing, func() bool { err = goleak.Find(snapshot); return err == nil }) {
		t.Errorf("goroutines left running %v after Close of the instances that started them: %v", tm.closing, err)
	}
}

// coordModule is the module path, found in the stack of any goroutine
// this module's code runs or started.
const coordModule = "github.com/cgn-bot/coord"

func testRestartRecovers(t *testing.T, h Harness) {
	tm := timingOf(h)
	r, ok := h.(Restarter)
	if !ok {
		t.Fatalf("harness %T declares Restart but does not implement Restarter", h)
	}
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	var invs recorder[coord.Invalidation]
	_, err := b.Invalidator().Subscribe(ctx, invs.add)
	must(t, err, "Subscribe")
	var evs recorder[coord.Event]
	_, err = b.Events().Subscribe(ctx, "restart", evs.add)
	must(t, err, "Subscribe")
	lBefore, err := a.Locker().Acquire(ctx, "restart", coord.WithTTL(tm.held))
	must(t, err, "Acquire")
	must(t, lBefore.Release(ctx), "Release")

	r.Restart(t)

	retrying(t, tm.restart, func() bool {
		return a.Health(ctx).Status == coord.Healthy && b.Health(ctx).Status == coord.Healthy
	}, "instances report Healthy after a restart")
	eventually(t, tm.reconnect, func() bool {
		return invs.any(func(i coord.Invalidation) bool { return i.Kind == coord.PurgeAll })
	}, "an invalidation subscriber is told to purge after a restart")
	retrying(t, tm.reconnect, func() bool {
		l, err := a.Locker().Acquire(ctx, "restart", coord.WithTTL(tm.long), coord.WithRetry(0, 0))
		if err != nil {
			return false
		}
		if l.Fence() <= lBefore.Fence() {
			t.Errorf("fence %d after restart is not above %d from before", l.Fence(), lBefore.Fence())
		}
		return l.Release(ctx) == nil
	}, "locks work after a restart")
	retrying(t, tm.reconnect, func() bool {
		s, err := a.Sessions().Create(ctx, "u", map[string]any{"a": 1})
		if err != nil {
			return false
		}
		_, err = b.Sessions().Get(ctx, s.ID)
		return err == nil
	}, "sessions work after a restart")
	retrying(t, tm.reconnect, func() bool {
		_ = a.Invalidator().Invalidate(ctx, "after-restart", nil)
		_ = a.Events().Publish(ctx, "restart", "after")
		return invs.any(func(i coord.Invalidation) bool { return i.Key == "after-restart" }) && evs.len() > 0
	}, "invalidations and events flow again after a restart")
}
