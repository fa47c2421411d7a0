package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMemoryLeases follows the lock series over a real memory backend: a
// lease taken, a failed try, a lease lost to a forced release while its
// watchdog renews it, and the holder's Release that finds it gone.
func TestMemoryLeases(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{Namespace: "skynetbot"})
	hub := memory.NewHub(nil)
	a := m.Backend(hub.New(nil))
	other := hub.New(nil)
	ctx := t.Context()
	defer func() { _ = a.Close(context.WithoutCancel(ctx)) }()
	defer func() { _ = other.Close(context.WithoutCancel(ctx)) }()

	lk, err := a.Locker().Acquire(ctx, "job", coord.WithTTL(300*time.Millisecond), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 1, "skynetbot_distributed_locks_active")
	expect(t, reg, 1, "skynetbot_distributed_lock_acquisitions_total", "resource", "all", "status", "acquired")
	if _, err := a.Locker().Acquire(ctx, "job", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("second Acquire = %v; want ErrNotAcquired", err)
	}
	expect(t, reg, 1, "skynetbot_distributed_lock_acquisitions_total", "resource", "all", "status", "failed")

	if ok, err := other.Locker().ForceRelease(ctx, "job"); !ok || err != nil {
		t.Fatalf("ForceRelease = %v, %v", ok, err)
	}
	select {
	case <-lk.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the watchdog did not find the lease lost within 2s (renewal every 100ms)")
	}
	coordtest.Eventually(t, 2*time.Second, func() bool {
		v, _ := value(t, reg, "skynetbot_distributed_locks_active")
		return v == 0
	}, "distributed_locks_active falls to 0 once the lease is lost")
	if err := lk.Release(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("Release of a lost lease = %v; want ErrNotHeld", err)
	}
	expect(t, reg, 1, "skynetbot_lock_leases_lost_total")
	expect(t, reg, 1, "skynetbot_lock_hold_seconds")

	// A new lease on the same resource, released normally.
	lk2, err := a.Locker().Acquire(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 1, "skynetbot_distributed_locks_active")
	if err := lk2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 0, "skynetbot_distributed_locks_active")
	expect(t, reg, 1, "skynetbot_lock_leases_lost_total")
	expect(t, reg, 2, "skynetbot_lock_hold_seconds")
	lint(t, reg)
}

// TestMemoryMessages follows the pub/sub series over a real memory
// backend: sends by type and event, receives by channel, the connection
// state, and a purge after a cut subscription.
func TestMemoryMessages(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{Namespace: "skynetbot"})
	hub := memory.NewHub(nil)
	node := hub.New(nil)
	a := m.Backend(node)
	pub := m.Backend(hub.New(nil))
	ctx := t.Context()
	defer func() { _ = pub.Close(context.WithoutCancel(ctx)) }()

	got := make(chan coord.Invalidation, 16)
	if _, err := a.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) { got <- inv }); err != nil {
		t.Fatal(err)
	}
	events := make(chan coord.Event, 16)
	if _, err := a.Events().Subscribe(ctx, "guild.update", func(e coord.Event) { events <- e }); err != nil {
		t.Fatal(err)
	}
	if err := pub.Invalidator().Invalidate(ctx, "user:1", nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.Invalidator().InvalidatePattern(ctx, "user:*", nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.Events().Publish(ctx, "guild.update", map[string]int{"id": 1}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-got:
		case <-time.After(2 * time.Second):
			t.Fatal("an invalidation did not arrive within 2s")
		}
	}
	select {
	case <-events:
	case <-time.After(2 * time.Second):
		t.Fatal("the event did not arrive within 2s")
	}
	expect(t, reg, 1, "skynetbot_distributed_cache_invalidations_sent_total", "type", "single")
	expect(t, reg, 1, "skynetbot_distributed_cache_invalidations_sent_total", "type", "pattern")
	expect(t, reg, 1, "skynetbot_distributed_shard_events_sent_total", "event", "all")
	expect(t, reg, 1, "skynetbot_distributed_cache_messages_received_total", "channel", "cgn:cache:invalidate")
	expect(t, reg, 1, "skynetbot_distributed_cache_messages_received_total", "channel", "cgn:cache:invalidate:pattern")
	expect(t, reg, 1, "skynetbot_distributed_cache_messages_received_total", "channel", "cgn:shard:event")
	expect(t, reg, 1, "skynetbot_redis_connection_state")

	node.CutSubscription()
	select {
	case inv := <-got:
		if inv.Kind != coord.PurgeAll {
			t.Fatalf("got %v after the cut; want a purge", inv.Kind)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no purge within 2s of the cut (reconnect after 10ms)")
	}
	expect(t, reg, 1, "skynetbot_near_cache_purges_total", "reason", "reconnect")

	// Both backends are watched until closed through the decorator.
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 1, "skynetbot_redis_connection_state")
	lint(t, reg)
}

// lint fails t on any problem promlint finds in what reg exposes.
func lint(t *testing.T, reg prometheus.Gatherer) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
