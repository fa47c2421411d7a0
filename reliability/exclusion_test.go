package reliability

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/internal/redistest"
)

// Sizes of the exclusion checker.
const (
	exclInstances  = 3
	exclGoroutines = 16
	exclDuration   = 2 * time.Second
	// exclLeaseTTL is far longer than any critical section, so that a
	// lease never expires under its holder: the checker tests exclusion
	// while leases are honoured.
	exclLeaseTTL = 10 * time.Second
)

// exclusionReport is what one run of the checker saw.
type exclusionReport struct {
	acquisitions int64
	overlaps     int64 // a holder entered while another was inside
	fenceOrder   int64 // a fence not greater than the one before it
	errs         int64 // Acquire errors other than a timed-out wait
	maxWait      time.Duration
}

// checkExclusion runs exclInstances instances × exclGoroutines goroutines
// that take the lease on one resource in a loop for exclDuration. Inside
// the critical section a counter detects overlap and each fence must be
// greater than the last one seen (fences are handed out in acquisition
// order, and a critical section starts only after the previous one
// ended). It asserts no violation and at least a floor of acquisitions:
// a deadlock or a lost wake-up shows as a count near zero.
func checkExclusion(t *testing.T, backend string, newInstance func(t *testing.T, i int) coord.Backend) exclusionReport {
	t.Helper()
	rep := runExclusion(t, newInstance, exclDuration)
	floor := int64(50)
	t.Logf("%s: %d instances × %d goroutines for %v: %d acquisitions (%.0f/s), %d overlaps, %d fences out of order, longest wait %v",
		backend, exclInstances, exclGoroutines, exclDuration, rep.acquisitions,
		float64(rep.acquisitions)/exclDuration.Seconds(), rep.overlaps, rep.fenceOrder, rep.maxWait.Round(time.Millisecond))
	if rep.overlaps != 0 || rep.fenceOrder != 0 {
		t.Errorf("%s: exclusion violated: %d overlaps, %d fences out of order", backend, rep.overlaps, rep.fenceOrder)
	}
	if rep.acquisitions < floor {
		t.Errorf("%s: %d acquisitions in %v, want at least %d", backend, rep.acquisitions, exclDuration, floor)
	}
	return rep
}

// runExclusion runs the checker's load for d and returns what it saw.
func runExclusion(t *testing.T, newInstance func(t *testing.T, i int) coord.Backend, d time.Duration) exclusionReport {
	t.Helper()
	inst := make([]coord.Backend, exclInstances)
	for i := range inst {
		inst[i] = newInstance(t, i)
	}
	resource := uniq("excl-")
	var (
		inside    atomic.Int64
		lastFence atomic.Int64
		rep       exclusionReport
		waitMu    sync.Mutex
	)
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var wg sync.WaitGroup
	for i := range exclInstances {
		for range exclGoroutines {
			wg.Go(func() {
				lk := inst[i].Locker()
				for ctx.Err() == nil {
					start := time.Now()
					l, err := lk.Acquire(ctx, resource, coord.WithTTL(exclLeaseTTL), coord.WithWait(50*time.Millisecond))
					if err != nil {
						if !errors.Is(err, coord.ErrNotAcquired) || ctx.Err() == nil {
							atomic.AddInt64(&rep.errs, 1)
							t.Errorf("Acquire: %v", err)
							return
						}
						continue
					}
					waited := time.Since(start)
					// The critical section.
					if inside.Add(1) != 1 {
						atomic.AddInt64(&rep.overlaps, 1)
					}
					if prev := lastFence.Swap(l.Fence()); l.Fence() <= prev {
						atomic.AddInt64(&rep.fenceOrder, 1)
					}
					runtime.Gosched() // let an intruder in, if the lock allows one
					inside.Add(-1)
					atomic.AddInt64(&rep.acquisitions, 1)
					if err := l.Release(context.WithoutCancel(ctx)); err != nil {
						t.Errorf("Release: %v", err)
						return
					}
					waitMu.Lock()
					rep.maxWait = max(rep.maxWait, waited)
					waitMu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return rep
}

func TestExclusionMemory(t *testing.T) {
	hub := memory.NewHub(nil)
	checkExclusion(t, "memory", func(t *testing.T, i int) coord.Backend {
		n := hub.New(nil)
		t.Cleanup(func() { _ = n.Close(context.Background()) })
		return n
	})
}

func TestExclusionRedis(t *testing.T) {
	srv := redistest.Start(t)
	prefix := uniq("x") + ":"
	checkExclusion(t, "redis", func(t *testing.T, i int) coord.Backend {
		return singleNode(t, srv, prefix, nil)
	})
}

// TestExclusionRedisSubscriberCuts runs the checker while every
// subscriber connection is closed (CLIENT KILL TYPE pubsub) every 100ms:
// wake-ups are lost and resubscriptions race the waiters, and still no
// two holders overlap and waiters keep getting the lease.
func TestExclusionRedisSubscriberCuts(t *testing.T) {
	srv := redistest.Start(t)
	prefix := uniq("x") + ":"
	stop := make(chan struct{})
	var cuts atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			n, err := srv.DoContext(ctx, "CLIENT", "KILL", "TYPE", "pubsub")
			cancel()
			if err == nil {
				k, _ := n.(int64)
				cuts.Add(k)
			}
		}
	})
	rep := checkExclusion(t, "redis with subscriber cuts", func(t *testing.T, i int) coord.Backend {
		return singleNode(t, srv, prefix, nil)
	})
	close(stop)
	wg.Wait()
	t.Logf("%d subscriber connections cut during the run; %d acquisitions", cuts.Load(), rep.acquisitions)
	if cuts.Load() == 0 {
		t.Errorf("no subscriber connection was cut: the waiters never subscribed?")
	}
}

// brokenLocker hands every Acquire a lease on a resource of its own, so
// it excludes nothing; fences still increase per resource, not overall.
type brokenLocker struct{ coord.Locker }

func (b brokenLocker) Acquire(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	return b.Locker.Acquire(ctx, uniq(resource+"-"), opts...)
}

// brokenBackend is a memory node whose Locker is broken.
type brokenBackend struct{ *memory.Backend }

func (b brokenBackend) Locker() coord.Locker { return brokenLocker{b.Backend.Locker()} }

// TestExclusionCheckerCatchesOverlap proves the checker can fail: on a
// locker that excludes nothing it sees overlaps.
func TestExclusionCheckerCatchesOverlap(t *testing.T) {
	hub := memory.NewHub(nil)
	rep := runExclusion(t, func(t *testing.T, i int) coord.Backend {
		n := hub.New(nil)
		t.Cleanup(func() { _ = n.Close(context.Background()) })
		return brokenBackend{n}
	}, 300*time.Millisecond)
	t.Logf("broken locker: %d acquisitions, %d overlaps, %d fences out of order", rep.acquisitions, rep.overlaps, rep.fenceOrder)
	if rep.overlaps == 0 {
		t.Errorf("the checker saw no overlap on a locker that excludes nothing")
	}
}
