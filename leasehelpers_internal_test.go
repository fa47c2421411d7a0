package coord

import (
	"context"
	"testing"
	"time"
)

// heldLock is a Lock that is held until released.
type heldLock struct{ done chan struct{} }

func (l *heldLock) Resource() string                           { return "r" }
func (l *heldLock) Token() string                              { return "t" }
func (l *heldLock) Fence() int64                               { return 7 }
func (l *heldLock) TTL(context.Context) (time.Duration, error) { return time.Second, nil }
func (l *heldLock) Extend(context.Context, time.Duration) error {
	return nil
}
func (l *heldLock) Release(context.Context) error { close(l.done); return nil }
func (l *heldLock) Done() <-chan struct{}         { return l.done }

func TestWithLeasePutsTheLeaseInCtx(t *testing.T) {
	l := &heldLock{done: make(chan struct{})}
	if _, ok := leaseFrom(context.Background()); ok {
		t.Fatal("a lease in a bare context")
	}
	err := withLease(context.Background(), "r", func(ctx context.Context) error {
		got, ok := leaseFrom(ctx)
		if !ok || got != l {
			t.Errorf("fn's ctx carries %v, %v; want the lease", got, ok)
		}
		return nil
	}, func(context.Context, []LockOption) (Lock, error) { return l, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.done:
	default:
		t.Error("the lease was not released")
	}
}
