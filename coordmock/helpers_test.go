package coordmock_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/mock/gomock"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/cache"
	"github.com/cgn-bot/coord/coordmock"
)

// within fails t unless fn returns within d: a bound on a hang, not on
// speed.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// TestCacheOverMockedInvalidatorCloses builds a near cache over a mocked
// Invalidator whose Subscribe returns a ReadySubscription: Close returns
// (it waits for Done after Unsubscribe), and the subscription has ended.
func TestCacheOverMockedInvalidatorCloses(t *testing.T) {
	ctrl := gomock.NewController(t)
	inv := coordmock.NewMockInvalidator(ctrl)
	sub := coordmock.ReadySubscription(ctrl)
	inv.EXPECT().Subscribe(gomock.Any(), gomock.Any(), gomock.Any()).Return(sub, nil)

	c, err := cache.New[string](t.Context(), inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set("k", "v"); err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, "Cache.Close over a mocked Invalidator", func() { _ = c.Close() })
	if !sub.Ended() {
		t.Error("Close did not unsubscribe")
	}
	if err := c.Set("k", "v"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Set after Close: %v, want ErrClosed", err)
	}
}

// TestCacheOverMockedInvalidatorDelivers drives a near cache through the
// handler a mocked Subscribe was given, and ends the subscription as a
// closing backend does.
func TestCacheOverMockedInvalidatorDelivers(t *testing.T) {
	ctrl := gomock.NewController(t)
	inv := coordmock.NewMockInvalidator(ctrl)
	sub := coordmock.ReadySubscription(ctrl)
	var deliver func(coord.Invalidation)
	inv.EXPECT().Subscribe(gomock.Any(), gomock.Any(), gomock.Any()).DoAndReturn(
		func(_ context.Context, fn func(coord.Invalidation), _ ...coord.SubscribeOption) (coord.Subscription, error) {
			deliver = fn
			return sub, nil
		})
	inv.EXPECT().Invalidate(gomock.Any(), "user:1", nil).Return(nil)

	c, err := cache.New[string](t.Context(), inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for _, k := range []string{"user:1", "user:2", "team:1"} {
		if err := c.Set(k, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(t.Context(), "user:1"); err != nil {
		t.Fatal(err)
	}
	deliver(coord.Invalidation{Kind: coord.PatternInvalidation, Key: "user:*"})
	if _, ok := c.Get("user:2"); ok {
		t.Error("user:2 survived the pattern invalidation user:*")
	}
	if _, ok := c.Get("team:1"); !ok {
		t.Error("team:1 was evicted by the pattern invalidation user:*")
	}
	if st := c.Stats(); st.RemoteInvalidations != 1 {
		t.Errorf("remote invalidations: %d, want 1", st.RemoteInvalidations)
	}

	// The backend closes: the cache stops serving.
	sub.End()
	if _, err := c.GetOrLoad(t.Context(), "team:1", func(context.Context, string) (string, error) { return "x", nil }); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("GetOrLoad after the subscription ended: %v, want ErrClosed", err)
	}
	within(t, 5*time.Second, "Cache.Close after the subscription ended", func() { _ = c.Close() })
}

func TestReadySubscription(t *testing.T) {
	ctrl := gomock.NewController(t)
	sub := coordmock.ReadySubscription(ctrl)
	var s coord.Subscription = sub
	done := s.Done()
	if done == nil || sub.Ended() {
		t.Fatal("a new ReadySubscription has a nil Done or has ended")
	}
	select {
	case <-done:
		t.Fatal("Done is closed before Unsubscribe")
	default:
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(s.Unsubscribe)
	}
	wg.Wait()
	select {
	case <-done:
	default:
		t.Fatal("Unsubscribe did not close Done")
	}
	if s.Done() != done || !sub.Ended() {
		t.Error("Done changed after Unsubscribe, or Ended is false")
	}
	sub.End() // idempotent after Unsubscribe
}

// TestWithLockOverGrantedLease runs WithLock over a mocked Locker whose
// Acquire returns a GrantedLease: no other expectation is needed.
func TestWithLockOverGrantedLease(t *testing.T) {
	ctrl := gomock.NewController(t)
	locker := coordmock.NewMockLocker(ctrl)
	lease := coordmock.GrantedLease(ctrl, "job", 7)
	locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(lease, nil)

	ran := false
	err := coord.WithLock(t.Context(), locker, "job", func(ctx context.Context) error {
		ran = true
		if ctx.Err() != nil {
			t.Errorf("fn's context ended while the lease is held: %v", context.Cause(ctx))
		}
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("WithLock = %v, ran = %v; want nil, true", err, ran)
	}
	if lease.Released() != 1 {
		t.Errorf("Release calls: %d, want 1", lease.Released())
	}
	select {
	case <-lease.Done():
	default:
		t.Error("Done is open after Release")
	}
}

// TestWithLockLeaseLost loses a GrantedLease while fn runs: fn's context
// ends with ErrLeaseLost and so does WithLock.
func TestWithLockLeaseLost(t *testing.T) {
	ctrl := gomock.NewController(t)
	locker := coordmock.NewMockLocker(ctrl)
	lease := coordmock.GrantedLease(ctrl, "job", 8)
	locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(lease, nil)

	err := coord.WithLock(t.Context(), locker, "job", func(ctx context.Context) error {
		lease.Lose()
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			return errors.New("fn's context did not end within 5s of the loss")
		}
		if !errors.Is(context.Cause(ctx), coord.ErrLeaseLost) {
			return fmt.Errorf("cause %w, want ErrLeaseLost", context.Cause(ctx))
		}
		return nil
	})
	if !errors.Is(err, coord.ErrLeaseLost) {
		t.Fatalf("WithLock = %v, want ErrLeaseLost", err)
	}
	if lease.Released() != 1 {
		t.Errorf("Release calls: %d, want 1 (WithLock releases a lost lease too)", lease.Released())
	}
}

func TestGrantedLeaseRules(t *testing.T) {
	ctx := t.Context()
	ctrl := gomock.NewController(t)
	var l coord.Lock = coordmock.GrantedLease(ctrl, "job", 42)
	if l.Resource() != "job" || l.Fence() != 42 || l.Token() == "" {
		t.Fatalf("Resource, Fence, Token = %q, %d, %q", l.Resource(), l.Fence(), l.Token())
	}
	if ttl, err := l.TTL(ctx); err != nil || ttl != coord.DefaultLockTTL {
		t.Fatalf("TTL = %v, %v; want the default lock TTL", ttl, err)
	}
	if err := l.Extend(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ttl, err := l.TTL(ctx); err != nil || ttl != time.Minute {
		t.Fatalf("TTL after Extend(1m) = %v, %v", ttl, err)
	}
	if err := l.Extend(ctx, 0); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("Extend(0) = %v, want ErrInvalid", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("second Release = %v, want ErrNotHeld", err)
	}
	if err := l.Extend(ctx, time.Minute); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("Extend after Release = %v, want ErrNotHeld", err)
	}
	if _, err := l.TTL(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("TTL after Release = %v, want ErrNotHeld", err)
	}

	lost := coordmock.GrantedLease(ctrl, "other", 1)
	lost.Lose()
	lost.Lose()
	if err := lost.Release(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("Release after Lose = %v, want ErrNotHeld", err)
	}
}

// reporter is a gomock.TestReporter that records failures.
type reporter struct {
	mu     sync.Mutex
	failed []string
}

func (r *reporter) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}

func (r *reporter) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

// TestGrantedLeaseMustBeReleased checks that a GrantedLease never
// released fails the test, as a leaked lease would.
func TestGrantedLeaseMustBeReleased(t *testing.T) {
	r := &reporter{}
	ctrl := gomock.NewController(r)
	coordmock.GrantedLease(ctrl, "job", 1)
	ctrl.Finish()
	if len(r.failed) == 0 {
		t.Fatal("a lease never released did not fail the controller")
	}

	r = &reporter{}
	ctrl = gomock.NewController(r)
	if err := coordmock.GrantedLease(ctrl, "job", 1).Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctrl.Finish()
	if len(r.failed) != 0 {
		t.Fatalf("a released lease failed the controller: %v", r.failed)
	}
}

// TestWithLockNilLease checks that WithLock over a mocked Acquire that
// was told no Return (so it returns nil, nil) fails with ErrInvalid
// instead of panicking on a goroutine, which ended the whole test binary.
func TestWithLockNilLease(t *testing.T) {
	ctrl := gomock.NewController(t)
	locker := coordmock.NewMockLocker(ctrl)
	locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any())

	err := coord.WithLock(t.Context(), locker, "job", func(context.Context) error {
		t.Error("fn ran without a lease")
		return nil
	})
	if !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("WithLock = %v, want ErrInvalid", err)
	}
}
