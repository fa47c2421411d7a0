package coord_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/driver"
)

func memNodes(t *testing.T, n int) []*memory.Backend {
	t.Helper()
	hub := memory.NewHub(nil)
	out := make([]*memory.Backend, n)
	for i := range out {
		out[i] = hub.New(nil)
		b := out[i]
		t.Cleanup(func() { _ = b.Close(context.Background()) })
	}
	return out
}

func TestWithRLockReleasesAndRenews(t *testing.T) {
	ns := memNodes(t, 2)
	ctx := t.Context()
	err := coord.WithRLock(ctx, ns[0].RWLocker(), "cfg", func(ctx context.Context) error {
		// The lease outlives its TTL: WithRLock renews it.
		time.Sleep(300 * time.Millisecond)
		st, err := ns[1].RWLocker().State(ctx, "cfg")
		if err != nil || st.Readers != 1 {
			t.Errorf("State inside WithRLock after 2 TTLs = %+v, %v", st, err)
		}
		return nil
	}, coord.WithTTL(150*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := ns[1].RWLocker().State(ctx, "cfg"); err != nil || st != (coord.RWState{}) {
		t.Errorf("State after WithRLock = %+v, %v", st, err)
	}
}

func TestWithPermitErrors(t *testing.T) {
	ns := memNodes(t, 1)
	ctx := t.Context()
	if err := coord.WithPermit(ctx, ns[0].Semaphores(), "api", 0, func(context.Context) error { return nil }); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("limit 0: %v, want ErrInvalid", err)
	}
	held, err := ns[0].Semaphores().Acquire(ctx, "api", 1)
	if err != nil {
		t.Fatal(err)
	}
	ran := false
	err = coord.WithPermit(ctx, ns[0].Semaphores(), "api", 1, func(context.Context) error { ran = true; return nil }, coord.WithRetry(0, 0))
	if !errors.Is(err, coord.ErrNotAcquired) || ran {
		t.Errorf("WithPermit with no permit free: %v (ran %v), want ErrNotAcquired without running fn", err, ran)
	}
	_ = held.Release(ctx)
}

// brokenRW returns neither a lease nor an error, as a mock told no
// Return does.
type brokenRW struct{ driver.UnsupportedRWLocker }

func (brokenRW) RLock(context.Context, string, ...coord.LockOption) (coord.Lock, error) {
	return nil, nil
}

func TestWithRLockBrokenPart(t *testing.T) {
	err := coord.WithRLock(t.Context(), brokenRW{}, "r", func(context.Context) error {
		t.Error("fn ran without a lease")
		return nil
	})
	if !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("WithRLock on a part that returned no lease: %v, want ErrInvalid", err)
	}
}

func TestRunElectedReturnsFnError(t *testing.T) {
	ns := memNodes(t, 2)
	ctx := t.Context()
	boom := errors.New("boom")
	var calls atomic.Int32
	err := coord.RunElected(ctx, ns[0].Elector(), "sched", "a", func(ctx context.Context, l coord.Leadership) error {
		calls.Add(1)
		if l.Identity() != "a" || l.Fence() <= 0 {
			t.Errorf("leadership: identity %q, term %d", l.Identity(), l.Fence())
		}
		return boom
	})
	if !errors.Is(err, boom) || calls.Load() != 1 {
		t.Errorf("RunElected = %v after %d calls, want fn's error after one", err, calls.Load())
	}
	if _, err := ns[1].Elector().Leader(ctx, "sched"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("after RunElected returned, Leader: %v, want ErrNotFound (resigned)", err)
	}
	// Bad input ends it at once.
	if err := coord.RunElected(ctx, ns[0].Elector(), "", "a", func(context.Context, coord.Leadership) error { return nil }); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("RunElected with an empty election: %v, want ErrInvalid", err)
	}
	// A closed instance ends it too.
	_ = ns[0].Close(ctx)
	if err := coord.RunElected(ctx, ns[0].Elector(), "sched", "a", func(context.Context, coord.Leadership) error { return nil }); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("RunElected on a closed instance: %v, want ErrClosed", err)
	}
}

func TestRunElectedWaitsItsTurn(t *testing.T) {
	ns := memNodes(t, 2)
	ctx := t.Context()
	l, err := ns[1].Elector().Campaign(ctx, "sched", "b", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	started := make(chan int64, 1)
	done := make(chan error, 1)
	go func() {
		done <- coord.RunElected(rctx, ns[0].Elector(), "sched", "a", func(ctx context.Context, l coord.Leadership) error {
			started <- l.Fence()
			<-ctx.Done()
			return nil
		})
	}()
	select {
	case <-started:
		t.Fatal("fn ran while another instance led")
	case <-time.After(200 * time.Millisecond): // bounded look for a wrong call; the case checks nothing happens
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case term := <-started:
		if term <= l.Fence() {
			t.Errorf("term %d not above the resigned leader's %d", term, l.Fence())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("fn did not run within 2s of the leader's resignation")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("RunElected = %v, want context.Canceled", err)
	}
}

// downElector is an Elector whose backend cannot be reached.
type downElector struct {
	driver.UnsupportedElector
	calls atomic.Int32
}

func (e *downElector) Campaign(context.Context, string, string, ...coord.LockOption) (coord.Leadership, error) {
	e.calls.Add(1)
	return nil, coord.ErrUnavailable
}

func TestRunElectedPausesWhileUnavailable(t *testing.T) {
	e := &downElector{}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	err := coord.RunElected(ctx, e, "sched", "a", func(context.Context, coord.Leadership) error {
		t.Error("fn ran without leadership")
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RunElected = %v, want DeadlineExceeded", err)
	}
	// One try per DefaultRetryDelay (100ms): about five; a busy loop makes
	// thousands.
	if n := e.calls.Load(); n < 2 || n > 20 {
		t.Errorf("%d Campaign calls in 500ms against an unavailable backend", n)
	}
}
