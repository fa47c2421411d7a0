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

// withJobs is a memory node whose Jobs is replaced.
type withJobs struct {
	*memory.Backend
	jobs coord.Jobs
}

func (w withJobs) Jobs() coord.Jobs { return w.jobs }

// flakyJobs fails its first n calls of Due with ErrUnavailable.
type flakyJobs struct {
	coord.Jobs
	n atomic.Int32
}

func (f *flakyJobs) Due(ctx context.Context, job string, period time.Duration) (coord.JobSlot, error) {
	if f.n.Add(-1) >= 0 {
		return coord.JobSlot{}, coord.ErrUnavailable
	}
	return f.Jobs.Due(ctx, job, period)
}

func node(t *testing.T) *memory.Backend {
	t.Helper()
	n := memory.NewHub(nil).New(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

func TestRunEveryUnsupported(t *testing.T) {
	b := withJobs{Backend: node(t), jobs: driver.UnsupportedJobs{}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := coord.RunEvery(ctx, b, "job", time.Hour, func(context.Context) error {
		t.Error("fn ran on a backend without jobs")
		return nil
	})
	if !errors.Is(err, coord.ErrUnsupported) {
		t.Fatalf("RunEvery = %v, want ErrUnsupported", err)
	}
	if ctx.Err() != nil {
		t.Fatal("RunEvery waited for its ctx instead of returning at once")
	}
}

func TestRunEveryRetriesUnavailable(t *testing.T) {
	n := node(t)
	flaky := &flakyJobs{Jobs: n.Jobs()}
	flaky.n.Store(2)
	b := withJobs{Backend: n, jobs: flaky}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var seen atomic.Int32
	ran := make(chan struct{})
	err := coord.RunEvery(ctx, b, "job", time.Hour, func(context.Context) error {
		close(ran)
		cancel()
		return nil
	}, coord.WithJobBackoff(time.Millisecond, time.Millisecond), coord.OnJobError(func(_ context.Context, _ coord.JobSlot, err error) error {
		if errors.Is(err, coord.ErrUnavailable) {
			seen.Add(1)
		}
		return nil
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RunEvery = %v, want context.Canceled", err)
	}
	select {
	case <-ran:
	default:
		t.Fatal("fn never ran after the backend came back")
	}
	if seen.Load() != 2 {
		t.Errorf("OnError saw %d unavailable errors, want 2", seen.Load())
	}
}

func TestRunEveryStopIsNoFailure(t *testing.T) {
	n := node(t)
	ctx, cancel := context.WithCancel(t.Context())
	err := coord.RunEvery(ctx, n, "job", time.Hour, func(ctx context.Context) error {
		cancel()
		return ctx.Err()
	}, coord.OnJobError(func(context.Context, coord.JobSlot, error) error {
		t.Error("OnError called for a run the caller stopped")
		return nil
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RunEvery = %v, want context.Canceled", err)
	}
	s, err := n.Jobs().Due(t.Context(), "job", time.Hour)
	if err != nil || s.Done || s.Failures != 0 {
		t.Fatalf("Due = %+v, %v; want neither done nor failed", s, err)
	}
	if locked, _ := n.Locker().Locked(t.Context(), coord.JobLockPrefix+"job"); locked {
		t.Error("the job's lease is still held after RunEvery returned")
	}
}

func TestRunEveryPanicReleases(t *testing.T) {
	n := node(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("fn's panic did not reach the caller")
			}
		}()
		_ = coord.RunEvery(t.Context(), n, "job", time.Hour, func(context.Context) error { panic("boom") })
	}()
	if locked, _ := n.Locker().Locked(t.Context(), coord.JobLockPrefix+"job"); locked {
		t.Error("the job's lease is still held after fn panicked")
	}
}

// TestWithLockAloneIsNotOncePerPeriod shows what docs/JOBS.md says: three
// instances whose tickers fire together, each running the job under
// WithLock with the default retries, run it three times; with RunEvery
// they run it once.
func TestWithLockAloneIsNotOncePerPeriod(t *testing.T) {
	hub := memory.NewHub(nil)
	var nodes []*memory.Backend
	for range 3 {
		n := hub.New(nil)
		t.Cleanup(func() { _ = n.Close(context.Background()) })
		nodes = append(nodes, n)
	}
	ctx := t.Context()
	var withLock atomic.Int32
	done := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() {
			done <- coord.WithLock(ctx, n.Locker(), "nightly-report", func(context.Context) error {
				withLock.Add(1)
				return nil
			})
		}()
	}
	for range nodes {
		if err := <-done; err != nil {
			t.Fatalf("WithLock: %v", err)
		}
	}
	if withLock.Load() != 3 {
		t.Fatalf("WithLock alone ran the job %d times; docs/JOBS.md says 3", withLock.Load())
	}

	var runEvery atomic.Int32
	rctx, cancel := context.WithCancel(ctx)
	for _, n := range nodes {
		go func() {
			done <- coord.RunEvery(rctx, n, "nightly-report", 24*time.Hour, func(context.Context) error {
				runEvery.Add(1)
				return nil
			})
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := nodes[0].Jobs().Due(ctx, "nightly-report", 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if s.Done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("RunEvery did not run the job within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	// The others see the record, under the lease or before taking it.
	for _, n := range nodes {
		eventuallyFree(t, n, coord.JobLockPrefix+"nightly-report")
	}
	cancel()
	for range nodes {
		<-done
	}
	if runEvery.Load() != 1 {
		t.Fatalf("RunEvery ran the job %d times, want 1", runEvery.Load())
	}
}

// eventuallyFree waits up to 2s for resource to be free.
func eventuallyFree(t *testing.T, n *memory.Backend, resource string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if locked, err := n.Locker().Locked(t.Context(), resource); err == nil && !locked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still locked after 2s", resource)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
