package reliability

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// Bounds of the fault tests. They separate a broken mechanism (never, or
// only after a poll interval of 10s) from a loaded machine.
const (
	// recoveryBound: operations succeed again within it once the server
	// is back.
	recoveryBound = 2 * time.Second
	// faultTTL is the lease length in the fault tests: a lost lease shows
	// within it.
	faultTTL = 600 * time.Millisecond
	// lossBound: Done is closed and WithLock's ctx cancelled within it of
	// the fault (the TTL plus scheduling slack).
	lossBound = faultTTL + 2*time.Second
	// downBound: Health reports the outage within it.
	downBound = 3 * time.Second
)

// faultRig is a real server owned by one test and two instances on it: a
// subscribes to every invalidation and to events on topic; b publishes.
type faultRig struct {
	srv    *redistest.Server
	a, b   *node
	topic  string
	invs   *coordtest.Recorder[coord.Invalidation]
	events *coordtest.Recorder[coord.Event]
}

func newFaultRig(t *testing.T, opts ...redistest.Option) *faultRig {
	t.Helper()
	// Registered first, so it runs last: after the instances, clients
	// and server of the test are gone, nothing of theirs runs.
	t.Cleanup(func() { goleak.VerifyNone(t, redistest.GoleakOptions()...) })
	r := &faultRig{
		srv:    redistest.Start(t, opts...),
		topic:  uniq("topic-"),
		invs:   &coordtest.Recorder[coord.Invalidation]{},
		events: &coordtest.Recorder[coord.Event]{},
	}
	prefix := uniq("f") + ":"
	r.a = faultNode(t, r.srv, prefix)
	r.b = faultNode(t, r.srv, prefix)
	ctx := t.Context()
	if _, err := r.a.Invalidator().Subscribe(ctx, r.invs.Add); err != nil {
		t.Fatal(err)
	}
	if _, err := r.a.Events().Subscribe(ctx, r.topic, r.events.Add); err != nil {
		t.Fatal(err)
	}
	r.delivered(t, 5*time.Second, "before")
	coordtest.Eventually(t, 5*time.Second, healthIs(r.a, coord.Healthy), "a healthy at start")
	coordtest.Eventually(t, 5*time.Second, healthIs(r.b, coord.Healthy), "b healthy at start")
	return r
}

// deliveredBy is delivered with the deadline recoveryBound after since;
// it returns how long after since the delivery was seen.
func (r *faultRig) deliveredBy(t *testing.T, since time.Time, marker string) time.Duration {
	t.Helper()
	r.delivered(t, max(time.Until(since.Add(recoveryBound)), 0), marker)
	return time.Since(since)
}

// delivered publishes an event and an invalidation from b, repeating every
// 50ms, until a has received both, and returns how long that took.
func (r *faultRig) delivered(t *testing.T, d time.Duration, marker string) time.Duration {
	t.Helper()
	key := "marker:" + marker
	took, ok := coordtest.Poll(d, 50*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = r.b.Events().Publish(ctx, r.topic, marker)
		_ = r.b.Invalidator().Invalidate(ctx, key, nil)
		gotEv := r.events.Count(func(e coord.Event) bool { return string(e.Payload) == `"`+marker+`"` }) > 0
		gotInv := r.invs.Count(func(i coord.Invalidation) bool { return i.Key == key }) > 0
		return gotEv && gotInv
	})
	if !ok {
		t.Fatalf("event and invalidation %q not delivered from b to a within %v", marker, d)
	}
	return took
}

// loadKind names one kind of operation of the load.
type loadKind int

const (
	loadLock loadKind = iota
	loadSession
	loadPublish
	numLoadKinds
)

func (k loadKind) String() string { return [...]string{"lock", "session", "publish"}[k] }

// load runs locks, sessions and publications on an instance until stopped,
// counting successes and failures and checking that every error wraps a
// coord sentinel.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     [numLoadKinds]atomic.Int64
	fail   [numLoadKinds]atomic.Int64
	lastOK [numLoadKinds]atomic.Int64 // Unix ns of the last success
	maxGap [numLoadKinds]atomic.Int64 // longest time between two successes, ns
	bad    atomic.Int64               // errors that wrap no sentinel
}

func startLoad(t *testing.T, n coord.Backend, topic string) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ld := &load{cancel: cancel}
	res := uniq("load-")
	user := uniq("user-")
	run := func(k loadKind, op func(ctx context.Context) error) {
		ld.wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond) // pacing, not waiting
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				octx, ocancel := opCtx(ctx)
				err := op(octx)
				ocancel()
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					ld.fail[k].Add(1)
					if !knownError(err) {
						ld.bad.Add(1)
						t.Errorf("%s: error wraps no coord sentinel: %v", k, err)
					}
					continue
				}
				ld.ok[k].Add(1)
				now := time.Now().UnixNano()
				if prev := ld.lastOK[k].Swap(now); prev != 0 && now-prev > ld.maxGap[k].Load() {
					ld.maxGap[k].Store(now - prev)
				}
			}
		})
	}
	run(loadLock, func(ctx context.Context) error {
		l, err := n.Locker().Acquire(ctx, res, coord.WithTTL(time.Second), coord.WithRetry(0, 0))
		if errors.Is(err, coord.ErrNotAcquired) && !errors.Is(err, context.DeadlineExceeded) {
			return nil // held by a lease the server lost track of: a success of the call
		}
		if err != nil {
			return err
		}
		return l.Release(context.WithoutCancel(ctx))
	})
	run(loadSession, func(ctx context.Context) error {
		s, err := n.Sessions().Create(ctx, user, map[string]any{"n": 1})
		if err != nil {
			return err
		}
		if _, err := n.Sessions().Get(ctx, s.ID); err != nil {
			return err
		}
		if err := n.Sessions().Update(ctx, s.ID, map[string]any{"m": 2}); err != nil {
			return err
		}
		return n.Sessions().Delete(ctx, s.ID)
	})
	run(loadPublish, func(ctx context.Context) error {
		if err := n.Events().Publish(ctx, topic, map[string]int{"load": 1}); err != nil {
			return err
		}
		return n.Invalidator().Invalidate(ctx, "load:key", nil)
	})
	t.Cleanup(ld.stop)
	return ld
}

// stop ends the load and waits for it.
func (ld *load) stop() {
	ld.cancel()
	ld.wg.Wait()
}

// recovered reports whether every kind of operation succeeded after since.
func (ld *load) recovered(since time.Time) bool {
	for k := range numLoadKinds {
		if ld.lastOK[k].Load() < since.UnixNano() {
			return false
		}
	}
	return true
}

func (ld *load) String() string {
	var b strings.Builder
	for k := range numLoadKinds {
		fmt.Fprintf(&b, "%s %d ok/%d failed, longest gap %v; ", k, ld.ok[k].Load(), ld.fail[k].Load(),
			time.Duration(ld.maxGap[k].Load()).Round(time.Millisecond))
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// withLockResult is what a WithLock run by heldWithLock ended with: the
// cause of fn's ctx, WithLock's error, and when it returned.
type withLockResult struct {
	cause, err error
	at         time.Time
}

// heldWithLock runs WithLock on resource with a short TTL in a goroutine;
// fn waits for its ctx to end. The returned channel gets fn's cause and
// WithLock's error once WithLock returns.
func heldWithLock(t *testing.T, l coord.Locker, resource string) <-chan withLockResult {
	t.Helper()
	entered := make(chan struct{})
	out := make(chan withLockResult, 1)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		var cause error
		err := coord.WithLock(t.Context(), l, resource, func(ctx context.Context) error {
			close(entered)
			<-ctx.Done()
			cause = context.Cause(ctx)
			return ctx.Err()
		}, coord.WithTTL(faultTTL))
		out <- withLockResult{cause: cause, err: err, at: time.Now()}
	})
	select {
	case <-entered:
	case r := <-out:
		t.Fatalf("WithLock(%q) returned before running fn: %v", resource, r.err)
	case <-time.After(5 * time.Second):
		t.Fatalf("WithLock(%q) did not run fn within 5s", resource)
	}
	return out
}

// checkLeaseLost checks that WithLock's fn saw its ctx cancelled with
// cause ErrLeaseLost and WithLock's error wraps it, within d.
func checkLeaseLost(t *testing.T, ch <-chan withLockResult, d time.Duration) withLockResult {
	t.Helper()
	select {
	case r := <-ch:
		if !errors.Is(r.cause, coord.ErrLeaseLost) {
			t.Errorf("WithLock's ctx cause = %v, want ErrLeaseLost", r.cause)
		}
		if !errors.Is(r.err, coord.ErrLeaseLost) {
			t.Errorf("WithLock's error = %v, want it to wrap ErrLeaseLost", r.err)
		}
		return r
	case <-time.After(d):
		t.Fatalf("WithLock's ctx not cancelled within %v of the fault", d)
	}
	return withLockResult{}
}

// checkHealthThroughout checks what the health watch of n saw: no Health
// call started during the outage (from faultAt until a second before the
// server was back, since a call waits up to a second and may be answered
// once it is back) was healthy, at least one was unhealthy, and calls are
// healthy again afterwards; and that n reported its command and subscriber
// connections down during the outage and connected at the end.
func checkHealthThroughout(t *testing.T, hw *healthWatch, n *node, faultAt, back time.Time) {
	t.Helper()
	coordtest.Eventually(t, recoveryBound, func() bool { return hw.between(back, time.Now())[coord.Healthy] > 0 },
		"the health watch sees healthy after the server is back")
	hw.stop()
	during := hw.between(faultAt.Add(50*time.Millisecond), back.Add(-time.Second))
	if during[coord.Healthy] > 0 {
		t.Errorf("Health during the outage: %v; want never healthy", during)
	}
	all := hw.between(faultAt, back)
	if all[coord.Unhealthy] == 0 {
		t.Errorf("Health calls started during the outage: %v; want at least one unhealthy", all)
	}
	var cmdDown, subDown bool
	for _, c := range n.states.All() {
		if c.To != coord.Connected {
			if c.Subscriber {
				subDown = true
			} else {
				cmdDown = true
			}
		}
	}
	if !cmdDown || !subDown {
		t.Errorf("state changes %v: want the command and the subscriber connection reported down", n.states.All())
	}
	if st, sub := n.State(), n.SubscriberState(); st != coord.Connected || sub != coord.Connected {
		t.Errorf("after recovery: State %v, SubscriberState %v; want connected", st, sub)
	}
	t.Logf("Health calls started during the outage: %v; state changes reported: %d", all, len(n.states.All()))
}

// acquireAfterOutage takes resource for the next holder once the server is
// back, trying again while Acquire fails with ErrUnavailable until
// recoveryBound after back, as an application would. Health can be
// healthy on one fresh connection while new dials still fail: after as
// many failed dials as its pool size, go-redis answers every dial with the
// last dial error until its once-a-second probe gets through
// (docs/FAILURES.md). It returns the lease and how many tries failed so.
func acquireAfterOutage(ctx context.Context, l coord.Locker, back time.Time, resource string) (coord.Lock, int, error) {
	unavailable := 0
	for {
		next, err := l.Acquire(ctx, resource, coord.WithTTL(time.Second), coord.WithRetry(20, 100*time.Millisecond))
		if errors.Is(err, coord.ErrUnavailable) && time.Since(back) < recoveryBound && ctx.Err() == nil {
			unavailable++
			time.Sleep(50 * time.Millisecond) // back-off before the next try
			continue
		}
		return next, unavailable, err
	}
}

// TestFaultKillRestart kills the server with SIGKILL under load, while
// instances hold leases, and restarts it empty on the same port.
func TestFaultKillRestart(t *testing.T) {
	r := newFaultRig(t)
	ctx := t.Context()
	ld := startLoad(t, r.b, r.topic)
	held, err := r.a.Locker().Acquire(ctx, "kill:held", coord.WithTTL(faultTTL), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	wl := heldWithLock(t, r.a.Locker(), "kill:withlock")
	coordtest.Eventually(t, 5*time.Second, func() bool { return ld.recovered(time.Now().Add(-time.Second)) }, "load running: %v", ld)
	hw := watchHealth(t, r.a)
	coordtest.Eventually(t, 5*time.Second, func() bool { return hw.between(time.Now().Add(-time.Second), time.Now())[coord.Healthy] > 0 },
		"the health watch sees a healthy a")

	killAt := time.Now()
	r.srv.Kill(t)
	down := coordtest.Eventually(t, downBound, healthIs(r.a, coord.Unhealthy), "a unhealthy after kill")
	if !coordtest.ClosedWithin(held.Done(), lossBound) {
		t.Fatalf("Done of a lease not closed within %v of the kill", lossBound)
	}
	lostAfter := time.Since(killAt)
	wlr := checkLeaseLost(t, wl, lossBound)
	for _, l := range r.a.Locker().Held() {
		if l.Resource() == "kill:held" {
			t.Errorf("Held still lists the lost lease")
		}
	}
	if hl := r.b.Health(ctx); hl.Status != coord.Unhealthy {
		t.Errorf("b's Health while the server is down = %+v", hl)
	}
	purgesBefore := r.invs.Count(isPurge("reconnect"))

	r.srv.Restart(t)
	back := time.Now()
	healthyIn := by(t, back, func() bool {
		return healthIs(r.a, coord.Healthy)() && healthIs(r.b, coord.Healthy)()
	}, "both instances healthy after restart")
	checkHealthThroughout(t, hw, r.a, killAt, back)
	next, unavailable, err := acquireAfterOutage(ctx, r.b.Locker(), back, "kill:held")
	if err != nil {
		t.Fatalf("Acquire after restart (after %d tries that failed with ErrUnavailable): %v", unavailable, err)
	}
	acquireIn := time.Since(back)
	if acquireIn > recoveryBound {
		t.Errorf("the next holder got the lease %v after the restart, want within %v", acquireIn, recoveryBound)
	}
	if next.Fence() <= held.Fence() {
		t.Errorf("fence after restart %d, not above the lost lease's %d", next.Fence(), held.Fence())
	}
	purgeIn := by(t, back, func() bool { return r.invs.Count(isPurge("reconnect")) > purgesBefore },
		"a's invalidation subscriber told to purge after the restart")
	deliverIn := r.deliveredBy(t, back, "after-restart")
	loadIn := by(t, back, func() bool { return ld.recovered(back) }, "load recovered: %v", ld)
	ld.stop()
	t.Logf("kill -9: unhealthy after %v; lease Done %v and WithLock cancelled %v after the kill",
		down.Round(time.Millisecond), lostAfter.Round(time.Millisecond), wlr.at.Sub(killAt).Round(time.Millisecond))
	t.Logf("restart: healthy in %v, next holder in %v (fence %d > %d; its Acquire failed with ErrUnavailable %d times meanwhile), purge in %v, delivery in %v, load recovered in %v; load: %v",
		healthyIn.Round(time.Millisecond), acquireIn.Round(time.Millisecond), next.Fence(), held.Fence(), unavailable,
		purgeIn.Round(time.Millisecond), deliverIn.Round(time.Millisecond), loadIn.Round(time.Millisecond), ld)
	if ld.bad.Load() != 0 {
		t.Errorf("%d errors wrapped no coord sentinel", ld.bad.Load())
	}
	_ = next.Release(ctx)
}

// TestFaultPause stops the server with SIGSTOP past a lease's TTL, then
// continues it: the holder learns of the loss by its local deadline while
// the server is still stopped, and the next holder gets a higher fence.
func TestFaultPause(t *testing.T) {
	r := newFaultRig(t)
	ctx := t.Context()
	ld := startLoad(t, r.b, r.topic)
	held, err := r.a.Locker().Acquire(ctx, "pause:held", coord.WithTTL(faultTTL), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	wl := heldWithLock(t, r.a.Locker(), "pause:withlock")
	hw := watchHealth(t, r.a)
	type acq struct {
		l   coord.Lock
		err error
		at  time.Time
	}
	waiter := make(chan acq, 1)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	var unavailable atomic.Int64
	wg.Go(func() {
		// Acquire returns ErrUnavailable when a try times out on the
		// stopped server; the waiter tries again, as an application would.
		for {
			l, err := r.b.Locker().Acquire(ctx, "pause:held", coord.WithTTL(5*time.Second), coord.WithWait(100*time.Millisecond))
			if errors.Is(err, coord.ErrUnavailable) && ctx.Err() == nil {
				unavailable.Add(1)
				time.Sleep(50 * time.Millisecond) // back-off before the next try
				continue
			}
			waiter <- acq{l, err, time.Now()}
			return
		}
	})

	pauseAt := time.Now()
	r.srv.Pause(t)
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			r.srv.Resume(t)
		}
	})
	if !coordtest.ClosedWithin(held.Done(), lossBound) {
		t.Fatalf("Done of a lease not closed within %v of SIGSTOP", lossBound)
	}
	lostAt := time.Now()
	wlr := checkLeaseLost(t, wl, lossBound)
	down := coordtest.Eventually(t, downBound, healthIs(r.a, coord.Unhealthy), "a unhealthy while the server is stopped")
	// Let the lease run out on the server too before it continues.
	if d := faultTTL - time.Since(pauseAt); d > 0 {
		time.Sleep(d + 100*time.Millisecond)
	}
	select {
	case w := <-waiter:
		t.Fatalf("the waiter got %v, %v while the server was stopped", w.l, w.err)
	default:
	}
	purgesBefore := r.invs.Count(isPurge("reconnect"))

	r.srv.Resume(t)
	resumed = true
	back := time.Now()
	var w acq
	select {
	case w = <-waiter:
	case <-time.After(recoveryBound):
		// A lease key with most of the waiter's 5s TTL left was set after
		// SIGCONT by a try that had timed out: nobody holds its token.
		key := r.a.prefixed("lock:{pause:held}")
		t.Fatalf("the waiter did not get the lease within %v of SIGCONT (lease key %s has PTTL %vms)",
			recoveryBound, key, r.srv.Do(t, "PTTL", key))
	}
	if w.err != nil {
		t.Fatalf("the waiter: %v", w.err)
	}
	if w.l.Fence() <= held.Fence() {
		t.Errorf("next holder's fence %d, not above the lost lease's %d", w.l.Fence(), held.Fence())
	}
	if w.at.Before(lostAt) {
		t.Errorf("the next holder got the lease %v before the old holder's Done closed", lostAt.Sub(w.at))
	}
	healthyIn := by(t, back, func() bool {
		return healthIs(r.a, coord.Healthy)() && healthIs(r.b, coord.Healthy)()
	}, "both instances healthy after SIGCONT")
	checkHealthThroughout(t, hw, r.a, pauseAt, back)
	purgeIn := by(t, back, func() bool { return r.invs.Count(isPurge("reconnect")) > purgesBefore },
		"a's invalidation subscriber told to purge after SIGCONT")
	deliverIn := r.deliveredBy(t, back, "after-resume")
	loadIn := by(t, back, func() bool { return ld.recovered(back) }, "load recovered: %v", ld)
	ld.stop()
	t.Logf("SIGSTOP: lease Done %v and WithLock cancelled %v after the stop (TTL %v); unhealthy after %v more",
		lostAt.Sub(pauseAt).Round(time.Millisecond), wlr.at.Sub(pauseAt).Round(time.Millisecond), faultTTL, down.Round(time.Millisecond))
	t.Logf("SIGCONT: next holder in %v (fence %d > %d; its Acquire failed with ErrUnavailable %d times meanwhile), healthy in %v, purge in %v, delivery in %v, load recovered in %v; load: %v",
		w.at.Sub(back).Round(time.Millisecond), w.l.Fence(), held.Fence(), unavailable.Load(), healthyIn.Round(time.Millisecond),
		purgeIn.Round(time.Millisecond), deliverIn.Round(time.Millisecond), loadIn.Round(time.Millisecond), ld)
	if ld.bad.Load() != 0 {
		t.Errorf("%d errors wrapped no coord sentinel", ld.bad.Load())
	}
	_ = w.l.Release(ctx)
}

// TestFaultClientKill closes every subscriber connection (CLIENT KILL TYPE
// pubsub) while a waiter waits for a lease: the subscribers reconnect,
// invalidation subscribers purge, and the waiter is woken although a
// release may have been published while it was disconnected.
func TestFaultClientKill(t *testing.T) {
	r := newFaultRig(t)
	ctx := t.Context()
	ld := startLoad(t, r.b, r.topic)
	held, err := r.a.Locker().Acquire(ctx, "kill:res", coord.WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	other, err := r.a.Locker().Acquire(ctx, "kill:other", coord.WithTTL(faultTTL), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	type acq struct {
		l   coord.Lock
		err error
		at  time.Time
	}
	waiter := make(chan acq, 1)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		// A 30s retry delay: only a wake-up gets it the lease in time.
		l, err := r.b.Locker().Acquire(ctx, "kill:res", coord.WithTTL(5*time.Second), coord.WithWait(30*time.Second))
		waiter <- acq{l, err, time.Now()}
	})
	// Cut only once the waiter listens on its wake channel.
	coordtest.Eventually(t, 5*time.Second, func() bool {
		chans, _ := r.srv.Do(t, "PUBSUB", "CHANNELS", "*:wake").([]any)
		return len(chans) > 0
	}, "the waiter subscribed to its wake channel")
	purgesBefore := r.invs.Count(isPurge("reconnect"))

	killAt := time.Now()
	killed := r.srv.KillPubSubClients(t)
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var w acq
	select {
	case w = <-waiter:
	case <-time.After(recoveryBound):
		t.Fatalf("the waiter was not woken within %v of a release made during the cut", recoveryBound)
	}
	if w.err != nil {
		t.Fatalf("the waiter: %v", w.err)
	}
	if w.l.Fence() <= held.Fence() {
		t.Errorf("next holder's fence %d, not above %d", w.l.Fence(), held.Fence())
	}
	purgeIn := by(t, killAt, func() bool { return r.invs.Count(isPurge("reconnect")) > purgesBefore },
		"a's invalidation subscriber told to purge after CLIENT KILL")
	deliverIn := r.deliveredBy(t, killAt, "after-kill")
	healthyIn := by(t, killAt, func() bool {
		return healthIs(r.a, coord.Healthy)() && healthIs(r.b, coord.Healthy)()
	}, "both instances healthy after CLIENT KILL")
	if coordtest.IsClosed(other.Done()) {
		t.Errorf("a lease on the command connection was lost by a cut of the subscriber connection")
	}
	ld.stop()
	t.Logf("CLIENT KILL TYPE pubsub closed %d connections: waiter woken in %v (fence %d > %d), purge in %v, delivery in %v, healthy in %v; load: %v",
		killed, w.at.Sub(killAt).Round(time.Millisecond), w.l.Fence(), held.Fence(), purgeIn.Round(time.Millisecond),
		deliverIn.Round(time.Millisecond), healthyIn.Round(time.Millisecond), ld)
	if ld.bad.Load() != 0 {
		t.Errorf("%d errors wrapped no coord sentinel", ld.bad.Load())
	}
	_ = w.l.Release(ctx)
	_ = other.Release(ctx)
}

// TestFaultFlood floods a subscriber whose handlers are blocked: the
// connection keeps being read (Redis, with a pubsub output buffer limit of
// 1 MiB, never cuts it), the blocked invalidation subscriber ends in a counted purge,
// the blocked event subscriber counts its drops, and subscribers that are
// not blocked receive everything.
func TestFaultFlood(t *testing.T) {
	const flood = 3000
	const queue = 16
	// Redis cuts a subscriber whose output buffer passes 1 MiB (after
	// the kernel's socket buffers, a few MiB on loopback, are full): a
	// reader that stalled behind a blocked handler would be cut.
	r := newFaultRig(t, redistest.WithArgs("--client-output-buffer-limit", "pubsub 1mb 1mb 0"))
	if v := fmt.Sprint(r.srv.Do(t, "CONFIG", "GET", "client-output-buffer-limit")); !strings.Contains(v, "pubsub 1048576 1048576 0") {
		t.Fatalf("pubsub output buffer limit not set: %s", v)
	}
	ctx := t.Context()
	gate := make(chan struct{})
	var gateOnce sync.Once
	openGate := func() { gateOnce.Do(func() { close(gate) }) }
	t.Cleanup(openGate)

	slowInv := &coordtest.Recorder[coord.Invalidation]{}
	slowEv := &coordtest.Recorder[coord.Event]{}
	fastEv := &coordtest.Recorder[coord.Event]{}
	if _, err := r.a.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) { <-gate; slowInv.Add(inv) }, coord.WithQueueSize(queue)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.a.Events().Subscribe(ctx, r.topic, func(e coord.Event) { <-gate; slowEv.Add(e) }, coord.WithQueueSize(queue)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.a.Events().Subscribe(ctx, r.topic, fastEv.Add, coord.WithQueueSize(2*flood)); err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("x", 1024)
	start := time.Now()
	for i := range flood {
		if err := r.b.Events().Publish(ctx, r.topic, map[string]any{"i": i, "pad": payload}); err != nil {
			t.Fatal(err)
		}
		if err := r.b.Invalidator().Invalidate(ctx, fmt.Sprintf("flood:%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	published := time.Since(start)
	isFlood := func(e coord.Event) bool { return strings.Contains(string(e.Payload), `"pad"`) }
	fastIn := coordtest.Eventually(t, 20*time.Second, func() bool { return fastEv.Count(isFlood) == flood },
		"the unblocked event subscriber got all %d events", flood)
	floodInv := func(i coord.Invalidation) bool { return strings.HasPrefix(i.Key, "flood:") }
	coordtest.Eventually(t, 20*time.Second, func() bool { return r.invs.Count(floodInv) == flood },
		"the unblocked invalidation subscriber got all %d invalidations", flood)
	is, es := r.a.Invalidator().Stats(), r.a.Events().Stats()
	if is.Dropped == 0 || es.Dropped == 0 {
		t.Errorf("drops not counted: invalidations %+v, events %+v", is, es)
	}
	openGate()
	coordtest.Eventually(t, 5*time.Second, func() bool { return slowInv.Count(isPurge("overflow")) > 0 },
		"the blocked invalidation subscriber told to purge after its overflow")
	r.delivered(t, 5*time.Second, "after-flood")
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return slowInv.Count(func(i coord.Invalidation) bool { return i.Key == "marker:after-flood" }) > 0
	}, "the blocked invalidation subscriber receives again after the purge")
	if n := slowEv.Count(isFlood); n >= flood {
		t.Errorf("the blocked event subscriber got all %d events through a queue of %d", n, queue)
	}
	if n := r.invs.Count(isPurge("reconnect")); n != 0 {
		t.Errorf("the subscriber connection was cut during the flood (%d reconnect purges)", n)
	}
	if st := r.a.SubscriberState(); st != coord.Connected {
		t.Errorf("subscriber state after the flood = %v", st)
	}
	if !healthIs(r.a, coord.Healthy)() {
		t.Errorf("a not healthy after the flood: %+v", r.a.Health(ctx))
	}
	is, es = r.a.Invalidator().Stats(), r.a.Events().Stats()
	t.Logf("flood of %d events (1 KiB) and %d invalidations published in %v; unblocked subscriber had them all after %v; blocked (queue %d): invalidations dropped %d then purged (%d purges), events dropped %d, delivered %d",
		flood, flood, published.Round(time.Millisecond), fastIn.Round(time.Millisecond), queue, is.Dropped, is.Purges, es.Dropped, slowEv.Count(isFlood))
}
