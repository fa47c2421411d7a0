package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
)

// nodes returns n nodes on one new hub, closed at the end of the test.
func nodes(t *testing.T, n int) []*Backend {
	t.Helper()
	hub := NewHub(nil)
	out := make([]*Backend, n)
	for i := range out {
		out[i] = hub.New(&Options{InstanceID: fmt.Sprintf("node-%d", i)})
		nd := out[i]
		t.Cleanup(func() { _ = nd.Close(context.Background()) })
	}
	return out
}

func TestFenceNeverGoesBack(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	last := int64(0)
	check := func(l coord.Lock) {
		t.Helper()
		if l.Fence() <= last {
			t.Fatalf("fence %d after %d", l.Fence(), last)
		}
		last = l.Fence()
	}
	for i := range 5 {
		l, err := ns[i%2].Locker().Acquire(ctx, "f", coord.WithTTL(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		check(l)
		switch i % 3 {
		case 0:
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		case 1:
			if ok, err := ns[(i+1)%2].Locker().ForceRelease(ctx, "f"); !ok || err != nil {
				t.Fatalf("ForceRelease = %v, %v", ok, err)
			}
		case 2:
			if !coordtest.ClosedWithin(l.Done(), time.Second) {
				t.Fatal("lease did not expire")
			}
		}
	}
}

// A releaser that acquires again at once queues behind the waiters that
// were there first: hand-off is first come, first served across nodes.
func TestHandOffIsFIFO(t *testing.T) {
	ns := nodes(t, 3)
	ctx := t.Context()
	a, err := ns[0].Locker().Acquire(ctx, "fifo")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i, name := range []string{"b", "c"} {
		wg.Go(func() {
			l, err := ns[i+1].Locker().Acquire(ctx, "fifo", coord.WithWait(10*time.Second))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			_ = l.Release(ctx)
		})
		// Let each waiter queue before the next.
		coordtest.Eventually(t, 2*time.Second, func() bool { return queued(ns[0].hub, "fifo") == i+1 }, "waiter queued")
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := ns[0].Locker().Acquire(ctx, "fifo", coord.WithWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := fmt.Sprint(order)
	mu.Unlock()
	_ = again.Release(ctx)
	wg.Wait()
	if got != "[b c]" {
		t.Fatalf("served %s before the releaser's second Acquire, want [b c]", got)
	}
}

func queued(h *Hub, name string) int {
	h.lmu.Lock()
	defer h.lmu.Unlock()
	if r := h.resources[name]; r != nil {
		return len(r.waiters)
	}
	return 0
}

func TestWaiterWokenAtOnce(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	for _, end := range []string{"release", "force", "expiry", "close"} {
		t.Run(end, func(t *testing.T) {
			holder := ns[0]
			if end == "close" {
				holder = ns[0].hub.New(nil)
				t.Cleanup(func() { _ = holder.Close(context.Background()) })
			}
			ttl := 10 * time.Second
			if end == "expiry" {
				ttl = 100 * time.Millisecond
			}
			l, err := holder.Locker().Acquire(ctx, "wake-"+end, coord.WithTTL(ttl))
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan time.Time, 1)
			go func() {
				w, err := ns[1].Locker().Acquire(ctx, "wake-"+end, coord.WithRetry(3, 10*time.Second))
				if err != nil {
					t.Error(err)
				} else {
					_ = w.Release(ctx)
				}
				got <- time.Now()
			}()
			coordtest.Eventually(t, 2*time.Second, func() bool { return queued(ns[0].hub, "wake-"+end) == 1 }, "waiter queued")
			at := time.Now()
			switch end {
			case "release":
				_ = l.Release(ctx)
			case "force":
				_, _ = ns[1].Locker().ForceRelease(ctx, "wake-"+end)
			case "expiry":
				at = time.Now().Add(time.Until(leaseDeadline(l)))
			case "close":
				_ = holder.Close(ctx)
			}
			if d := (<-got).Sub(at); d > time.Second {
				t.Fatalf("waiter got the lease %v after the %s (retry delay 10s)", d, end)
			}
		})
	}
}

func leaseDeadline(l coord.Lock) time.Time {
	lk := l.(*lock)
	h := lk.node.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	return lk.deadline
}

// A waiter whose ctx ends while releases hand the lease around never
// ends up holding it: after everyone is done, nobody holds the resource.
func TestCancelledWaiterNeverHolds(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	for i := range 200 {
		res := fmt.Sprintf("cancel-%d", i)
		l, err := ns[0].Locker().Acquire(ctx, res)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			w, err := ns[1].Locker().Acquire(wctx, res, coord.WithWait(time.Second))
			if err == nil {
				err = w.Release(context.WithoutCancel(wctx))
			} else if !errors.Is(err, coord.ErrNotAcquired) || !errors.Is(err, context.Canceled) {
				err = fmt.Errorf("unexpected error: %w", err)
			} else {
				err = nil
			}
			done <- err
		}()
		if rand.IntN(2) == 0 {
			runtime.Gosched()
		}
		go cancel()
		_ = l.Release(ctx)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if locked, _ := ns[0].Locker().Locked(ctx, res); locked {
			t.Fatalf("round %d: resource still held after the holder released and the waiter gave up", i)
		}
		cancel()
	}
}

func TestCancelEndsWaitAtOnce(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	if _, err := ns[0].Locker().Acquire(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() {
		_, err := ns[1].Locker().Acquire(wctx, "c", coord.WithWait(10*time.Second))
		res <- err
	}()
	coordtest.Eventually(t, 2*time.Second, func() bool { return queued(ns[0].hub, "c") == 1 }, "waiter queued")
	at := time.Now()
	cancel()
	err := <-res
	if d := time.Since(at); d > time.Second {
		t.Errorf("cancelled wait returned after %v", d)
	}
	if !errors.Is(err, coord.ErrNotAcquired) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want ErrNotAcquired joined with context.Canceled", err)
	}
	if queued(ns[0].hub, "c") != 0 {
		t.Errorf("cancelled waiter still queued")
	}
}

func TestRetriesCountTries(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	if _, err := ns[0].Locker().Acquire(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := ns[1].Locker().Acquire(ctx, "r", coord.WithRetry(3, 20*time.Millisecond))
	if !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("3 retries 20ms apart gave up after %v", d)
	}
	_, err = ns[1].Locker().Acquire(ctx, "r", coord.WithRetry(0, time.Hour))
	if !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("err = %v", err)
	}
	if queued(ns[0].hub, "r") != 0 {
		t.Errorf("a waiter that gave up is still queued")
	}
}

// Done closes at the deadline though nobody calls anything on the lease.
func TestDoneClosesUnwatched(t *testing.T) {
	ns := nodes(t, 1)
	l, err := ns[0].Locker().Acquire(t.Context(), "d", coord.WithTTL(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	done := l.Done()
	if !coordtest.ClosedWithin(done, 2*time.Second) {
		t.Fatal("Done not closed after the TTL")
	}
	if _, err := l.TTL(t.Context()); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("TTL after expiry: %v, want ErrExpired", err)
	}
	if err := l.Release(t.Context()); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("Release after expiry: %v, want ErrExpired", err)
	}
}

func TestAutoRenew(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	// Renewed every 100ms: only a stall of 200ms (not a loaded machine's
	// few tens) loses it, and 5 TTLs show it was renewed.
	l, err := ns[0].Locker().Acquire(ctx, "ar", coord.WithTTL(300*time.Millisecond), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(end) {
		if coordtest.ClosedWithin(l.Done(), 10*time.Millisecond) {
			t.Fatal("auto-renewed lease lost")
		}
	}
	if locked, _ := ns[1].Locker().Locked(ctx, "ar"); !locked {
		t.Fatal("auto-renewed lease not held as seen from another node")
	}
	if _, err := ns[1].Locker().ForceRelease(ctx, "ar"); err != nil {
		t.Fatal(err)
	}
	if !coordtest.ClosedWithin(l.Done(), time.Second) {
		t.Fatal("Done not closed by ForceRelease")
	}
	if err := l.Extend(ctx, time.Second); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("Extend after ForceRelease: %v, want ErrExpired", err)
	}
}

func TestReleaseAndExtendOwnerChecked(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	a, err := ns[0].Locker().Acquire(ctx, "o", coord.WithTTL(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !coordtest.ClosedWithin(a.Done(), time.Second) {
		t.Fatal("no expiry")
	}
	b, err := ns[1].Locker().Acquire(ctx, "o")
	if err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"Release": a.Release(ctx),
		"Extend":  a.Extend(ctx, time.Second),
	} {
		if !errors.Is(err, coord.ErrNotHeld) || errors.Is(err, coord.ErrExpired) {
			t.Errorf("stale %s while another holds: %v, want ErrNotHeld only", what, err)
		}
	}
	if _, err := a.TTL(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Errorf("stale TTL: %v", err)
	}
	if locked, _ := ns[0].Locker().Locked(ctx, "o"); !locked {
		t.Fatal("stale calls freed the new holder's lease")
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx); err != nil {
		t.Errorf("second Release: %v, want nil", err)
	}
	if err := a.Extend(ctx, 0); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Extend(0): %v, want ErrInvalid", err)
	}
}

// Leases cost no goroutine each.
func TestNoGoroutinePerLease(t *testing.T) {
	ns := nodes(t, 1)
	ctx := t.Context()
	before := runtime.NumGoroutine()
	var locks []coord.Lock
	for i := range 500 {
		l, err := ns[0].Locker().Acquire(ctx, fmt.Sprint("g", i), coord.WithAutoRenew(), coord.WithTTL(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		_ = l.Done()
		locks = append(locks, l)
	}
	if d := runtime.NumGoroutine() - before; d > 5 {
		t.Errorf("500 auto-renewed leases started %d goroutines", d)
	}
	if n := len(ns[0].Locker().Held()); n != 500 {
		t.Errorf("Held() has %d leases, want 500", n)
	}
	for _, l := range locks {
		_ = l.Release(ctx)
	}
	if n := len(ns[0].Locker().Held()); n != 0 {
		t.Errorf("Held() has %d leases after release", n)
	}
}

func TestCloseEndsWaitsAndReleases(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	held, err := ns[1].Locker().Acquire(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns[0].Locker().Acquire(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := ns[0].Locker().Acquire(ctx, "x", coord.WithWait(10*time.Second))
		res <- err
	}()
	coordtest.Eventually(t, 2*time.Second, func() bool { return queued(ns[0].hub, "x") == 1 }, "waiter queued")
	if err := ns[0].Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, coord.ErrClosed) {
		t.Errorf("waiting Acquire on a closed node: %v, want ErrClosed", err)
	}
	if locked, _ := ns[1].Locker().Locked(ctx, "mine"); locked {
		t.Errorf("Close did not release the node's lease")
	}
	if err := held.Release(ctx); err != nil {
		t.Errorf("the other node's lease: %v", err)
	}
	if err := ns[0].Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestLockDefaults: Options.LockDefaults apply before each Acquire's own
// options, as the Redis backend's do.
func TestLockDefaults(t *testing.T) {
	n := NewHub(nil).New(&Options{LockDefaults: []coord.LockOption{coord.WithTTL(time.Hour)}})
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	ctx := t.Context()
	l, err := n.Locker().Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := l.TTL(ctx); err != nil || ttl <= coord.DefaultLockTTL {
		t.Errorf("TTL with a default of 1h: %v, %v", ttl, err)
	}
	l2, err := n.Locker().Acquire(ctx, "b", coord.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := l2.TTL(ctx); err != nil || ttl > time.Second {
		t.Errorf("TTL given to Acquire after the default: %v, %v", ttl, err)
	}
	bad := NewHub(nil).New(&Options{LockDefaults: []coord.LockOption{coord.WithTTL(0)}})
	t.Cleanup(func() { _ = bad.Close(context.Background()) })
	if _, err := bad.Locker().Acquire(ctx, "c"); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Acquire with an invalid default: %v, want ErrInvalid", err)
	}
}
