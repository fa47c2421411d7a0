package metrics_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/metrics"
)

// Leases taken and released from many goroutines while others scrape are
// all counted, each once: the shards add up to the totals.
func TestConcurrentLeasesAndScrapes(t *testing.T) {
	const workers, each = 8, 100
	m, reg := newMiddleware(t, nil)
	node := memory.NewHub(nil).New(nil)
	b := m.Backend(node)
	ctx := t.Context()
	defer func() { _ = b.Close(context.WithoutCancel(ctx)) }()

	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := reg.Gather(); err != nil {
				t.Errorf("Gather: %v", err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				lk, err := b.Locker().Acquire(ctx, "r"+strconv.Itoa(w)+"-"+strconv.Itoa(i))
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				if err := lk.Release(ctx); err != nil {
					t.Errorf("Release: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	scrapes.Wait()

	const n = workers * each
	expect(t, reg, n, "coord_distributed_lock_acquisitions_total", "resource", "all", "status", "acquired")
	expect(t, reg, 0, "coord_distributed_lock_acquisitions_total", "resource", "all", "status", "failed")
	expect(t, reg, n, "coord_lock_wait_seconds", "status", "acquired")
	expect(t, reg, n, "coord_lock_hold_seconds")
	expect(t, reg, n, "coord_operation_duration_seconds", "op", "lock_acquire", "result", "ok")
	expect(t, reg, n, "coord_operation_duration_seconds", "op", "lock_release", "result", "ok")
	expect(t, reg, 0, "coord_lock_leases_lost_total")
}

// Each lease has a wrapper of its own: releasing one twice (nil again,
// see coord.Lock) observes its hold time once and touches no other lease.
func TestLeaseWrappersAreDistinct(t *testing.T) {
	const n = 50
	m, reg := newMiddleware(t, nil)
	node := memory.NewHub(nil).New(nil)
	l := m.Locker(node.Locker())
	ctx := t.Context()
	defer func() { _ = node.Close(context.WithoutCancel(ctx)) }()

	leases := make([]coord.Lock, n)
	for i := range leases {
		lk, err := l.Acquire(ctx, "r"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		leases[i] = lk
	}
	for i := 0; i < n; i += 2 {
		if err := leases[i].Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := leases[i].Release(ctx); err != nil {
			t.Fatalf("second Release = %v; want nil", err)
		}
	}
	expect(t, reg, n/2, "coord_lock_hold_seconds")
	expect(t, reg, 0, "coord_lock_leases_lost_total")
	for i, lk := range leases {
		if want := "r" + strconv.Itoa(i); lk.Resource() != want {
			t.Errorf("lease %d is on %q; want %q", i, lk.Resource(), want)
		}
		held, err := node.Locker().Locked(ctx, lk.Resource())
		if err != nil {
			t.Fatal(err)
		}
		if want := i%2 == 1; held != want {
			t.Errorf("lease %d held = %v; want %v", i, held, want)
		}
	}
	for i := 1; i < n; i += 2 {
		if err := leases[i].Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, reg, n, "coord_lock_hold_seconds")
}

// Resource label values past the cached few are still counted, each
// under its own value.
func TestManyResourceLabels(t *testing.T) {
	const n = 300
	m, reg := newMiddleware(t, &metrics.Options{ResourceLabel: func(r string) string { return r }})
	node := memory.NewHub(nil).New(nil)
	l := m.Locker(node.Locker())
	ctx := t.Context()
	defer func() { _ = node.Close(context.WithoutCancel(ctx)) }()
	for i := range n {
		lk, err := l.Acquire(ctx, "r"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := lk.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 255, 256, n - 1} {
		expect(t, reg, 1, "coord_distributed_lock_acquisitions_total", "resource", "r"+strconv.Itoa(i), "status", "acquired")
		expect(t, reg, 0, "coord_distributed_lock_acquisitions_total", "resource", "r"+strconv.Itoa(i), "status", "failed")
	}
	if _, ok := value(t, reg, "coord_distributed_lock_acquisitions_total", "resource", "all", "status", "acquired"); ok {
		t.Error(`a resource label mapping that never returns "all" still has an "all" series`)
	}
}

// A resource label value that is not valid UTF-8 counts as "invalid".
func TestInvalidResourceLabel(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{ResourceLabel: func(string) string { return "\xff" }})
	node := memory.NewHub(nil).New(nil)
	l := m.Locker(node.Locker())
	ctx := t.Context()
	defer func() { _ = node.Close(context.WithoutCancel(ctx)) }()
	lk, err := l.Acquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := lk.Release(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 1, "coord_distributed_lock_acquisitions_total", "resource", "invalid", "status", "acquired")
}
