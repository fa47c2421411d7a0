package coord_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeLocker hands out fakeLocks and records the options it was given.
type fakeLocker struct {
	opts       coord.LockOptions
	lock       *fakeLock
	acquireErr error
}

func (f *fakeLocker) Acquire(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	o, err := driver.NewLockOptions(opts...)
	if err != nil {
		return nil, err
	}
	f.opts = o
	if f.acquireErr != nil {
		return nil, f.acquireErr
	}
	f.lock = &fakeLock{resource: resource, done: make(chan struct{})}
	return f.lock, nil
}
func (f *fakeLocker) Locked(context.Context, string) (bool, error)       { return f.lock != nil, nil }
func (f *fakeLocker) ForceRelease(context.Context, string) (bool, error) { return false, nil }
func (f *fakeLocker) Held() []coord.Lock                                 { return nil }

type fakeLock struct {
	resource   string
	done       chan struct{}
	once       sync.Once
	releases   int
	releaseCtx context.Context
	releaseErr error
}

func (l *fakeLock) Resource() string                            { return l.resource }
func (l *fakeLock) Token() string                               { return "t" }
func (l *fakeLock) Fence() int64                                { return 1 }
func (l *fakeLock) TTL(context.Context) (time.Duration, error)  { return time.Second, nil }
func (l *fakeLock) Extend(context.Context, time.Duration) error { return nil }
func (l *fakeLock) Done() <-chan struct{}                       { return l.done }
func (l *fakeLock) lose()                                       { l.once.Do(func() { close(l.done) }) }
func (l *fakeLock) Release(ctx context.Context) error {
	l.releases++
	l.releaseCtx = ctx
	l.lose()
	return l.releaseErr
}

func TestWithLockRunsAndReleases(t *testing.T) {
	f := &fakeLocker{}
	ran := false
	err := coord.WithLock(t.Context(), f, "job", func(ctx context.Context) error {
		ran = true
		return ctx.Err()
	}, coord.WithTTL(time.Second))
	if err != nil || !ran {
		t.Fatalf("WithLock = %v, ran %v", err, ran)
	}
	if !f.opts.AutoRenew || f.opts.TTL != time.Second {
		t.Fatalf("Acquire options = %+v, want AutoRenew and the caller's TTL", f.opts)
	}
	if f.lock.releases != 1 {
		t.Fatalf("released %d times, want 1", f.lock.releases)
	}
}

func TestWithLockReleasesAfterCancel(t *testing.T) {
	f := &fakeLocker{}
	ctx, cancel := context.WithCancel(t.Context())
	err := coord.WithLock(ctx, f, "job", func(context.Context) error {
		cancel()
		return errors.New("boom")
	})
	if err == nil || err.Error() != "boom" {
		t.Fatalf("WithLock = %v, want fn's error", err)
	}
	if f.lock.releases != 1 || f.lock.releaseCtx.Err() != nil {
		t.Fatalf("release: %d calls, ctx err %v; want one call on an uncancelled ctx", f.lock.releases, f.lock.releaseCtx.Err())
	}
}

func TestWithLockLostLease(t *testing.T) {
	f := &fakeLocker{}
	err := coord.WithLock(t.Context(), f, "job", func(ctx context.Context) error {
		f.lock.releaseErr = coord.ErrExpired
		f.lock.lose()
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
			t.Error("fn's ctx not cancelled within 2s of the lease being lost")
		}
		if cause := context.Cause(ctx); !errors.Is(cause, coord.ErrLeaseLost) {
			t.Errorf("cause = %v, want ErrLeaseLost", cause)
		}
		return nil
	})
	if !errors.Is(err, coord.ErrLeaseLost) {
		t.Fatalf("WithLock = %v, want ErrLeaseLost", err)
	}
}

func TestWithLockAcquireError(t *testing.T) {
	f := &fakeLocker{acquireErr: coord.ErrNotAcquired}
	called := false
	err := coord.WithLock(t.Context(), f, "job", func(context.Context) error { called = true; return nil })
	if !errors.Is(err, coord.ErrNotAcquired) || called {
		t.Fatalf("WithLock = %v, fn called %v; want ErrNotAcquired and fn not called", err, called)
	}
}

func TestWithLockReleaseError(t *testing.T) {
	f := &fakeLocker{}
	err := coord.WithLock(t.Context(), f, "job", func(context.Context) error {
		f.lock.releaseErr = coord.ErrUnavailable
		return nil
	})
	if !errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("WithLock = %v, want the release error", err)
	}
}

func TestWithLockGivesFnItsLease(t *testing.T) {
	f := &fakeLocker{}
	if _, ok := coord.LockFromContext(t.Context()); ok {
		t.Fatal("LockFromContext found a lease in a context that carries none")
	}
	var got coord.Lock
	err := coord.WithLock(t.Context(), f, "job", func(ctx context.Context) error {
		l, ok := coord.LockFromContext(ctx)
		if !ok {
			return errors.New("fn's ctx carries no lease")
		}
		got = l
		return nil
	})
	if err != nil {
		t.Fatalf("WithLock = %v", err)
	}
	if got != coord.Lock(f.lock) {
		t.Fatalf("LockFromContext = %v, want the lease Acquire returned (%v)", got, f.lock)
	}
}

func TestLockFromContextInnermost(t *testing.T) {
	outer, inner := &fakeLock{resource: "outer"}, &fakeLock{resource: "inner"}
	ctx := coord.ContextWithLock(coord.ContextWithLock(t.Context(), outer), inner)
	if l, ok := coord.LockFromContext(ctx); !ok || l.Resource() != "inner" {
		t.Fatalf("LockFromContext = %v, %v; want the inner lease", l, ok)
	}
	if _, ok := coord.LockFromContext(coord.ContextWithLock(t.Context(), nil)); ok {
		t.Fatal("LockFromContext reported a nil lease as present")
	}
}
