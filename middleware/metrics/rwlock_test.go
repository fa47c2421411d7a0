package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

// TestLeaseMetrics checks the lease_* series of each primitive: an
// acquisition and a refusal, a hold time at release and a loss found by
// Release.
func TestLeaseMetrics(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	hub := memory.NewHub(nil)
	ctx := context.Background()
	b := m.Backend(hub.New(nil))
	other := hub.New(nil)
	t.Cleanup(func() { _ = b.Close(ctx); _ = other.Close(ctx) })

	series := func(p, status string) []string { return []string{"primitive", p, "status", status} }

	// Read and write leases.
	r, err := b.RWLocker().RLock(ctx, "res", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.RWLocker().Lock(ctx, "res", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("Lock beside a reader: %v", err)
	}
	expect(t, reg, 1, "coord_lease_acquisitions_total", series("rwlock_read", "acquired")...)
	expect(t, reg, 1, "coord_lease_acquisitions_total", series("rwlock_write", "failed")...)
	expect(t, reg, 1, "coord_lease_wait_seconds", series("rwlock_read", "acquired")...)
	expect(t, reg, 0, "coord_lease_hold_seconds", "primitive", "rwlock_read")
	if err := r.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Release(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 1, "coord_lease_hold_seconds", "primitive", "rwlock_read")
	expect(t, reg, 0, "coord_lease_lost_total", "primitive", "rwlock_read")
	if _, err := b.RWLocker().State(ctx, "res"); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 1, "coord_operation_duration_seconds", "op", "rwlock_state", "result", "ok")

	// A permit lost to a force release.
	p, err := b.Semaphores().Acquire(ctx, "sem", 2, coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := other.Semaphores().ForceRelease(ctx, "sem"); err != nil || n != 1 {
		t.Fatalf("ForceRelease = %d, %v", n, err)
	}
	if err := p.Release(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("Release of a force-released permit: %v", err)
	}
	expect(t, reg, 1, "coord_lease_acquisitions_total", series("semaphore", "acquired")...)
	expect(t, reg, 1, "coord_lease_lost_total", "primitive", "semaphore")
	expect(t, reg, 1, "coord_lease_hold_seconds", "primitive", "semaphore")
	expect(t, reg, 1, "coord_operation_errors_total", "op", "lock_release", "kind", "expired")
	if _, err := b.Semaphores().Acquire(ctx, "sem", 0); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("limit 0: %v", err)
	}
	expect(t, reg, 1, "coord_operation_errors_total", "op", "semaphore_acquire", "kind", "invalid")

	// A leadership keeps its identity through the decorator.
	l, err := b.Elector().Campaign(ctx, "el", "node-a", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if l.Identity() != "node-a" {
		t.Errorf("Identity through the decorator = %q", l.Identity())
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 1, "coord_lease_acquisitions_total", series("election", "acquired")...)
	expect(t, reg, 1, "coord_lease_hold_seconds", "primitive", "election")
	if _, err := b.Elector().Leader(ctx, "el"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Leader: %v", err)
	}
	expect(t, reg, 1, "coord_operation_errors_total", "op", "election_leader", "kind", "not_found")
}
