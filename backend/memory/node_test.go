package memory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
)

func TestAsAndHub(t *testing.T) {
	ns := nodes(t, 1)
	var h *Hub
	var n *Backend
	if !coord.As(ns[0], &h) || h != ns[0].Hub() || !coord.As(ns[0], &n) || n != ns[0] {
		t.Fatal("As does not find the hub and node")
	}
	var s *string
	if coord.As(ns[0], &s) {
		t.Fatal("As filled an unknown target")
	}
}

func TestLockStringHidesToken(t *testing.T) {
	ns := nodes(t, 1)
	l, err := ns[0].Locker().Acquire(t.Context(), "res")
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(l); strings.Contains(s, l.Token()) || !strings.Contains(s, "res") {
		t.Errorf("String() = %s", s)
	}
}

func TestNilHandlerInvalid(t *testing.T) {
	ns := nodes(t, 1)
	if _, err := ns[0].Invalidator().Subscribe(t.Context(), nil); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Invalidator.Subscribe(nil): %v", err)
	}
	if _, err := ns[0].Events().Subscribe(t.Context(), "t", nil); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Events.Subscribe(nil): %v", err)
	}
}

// A reconnect that finds a subscriber's queue full owes it the PurgeAll
// until there is room.
func TestReconnectPurgeOnFullQueue(t *testing.T) {
	hub := NewHub(nil)
	pub := hub.New(nil)
	n := hub.New(&Options{ReconnectDelay: time.Millisecond})
	t.Cleanup(func() { _ = pub.Close(context.Background()); _ = n.Close(context.Background()) })
	ctx := t.Context()
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	var r coordtest.Recorder[coord.Invalidation]
	_, err := n.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
		r.Add(inv)
	}, coord.WithQueueSize(1))
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Invalidator().Invalidate(ctx, "a", nil)
	<-entered
	_ = pub.Invalidator().Invalidate(ctx, "b", nil) // fills the queue
	n.CutSubscription()
	coordtest.Eventually(t, 2*time.Second, func() bool { return n.Health(ctx).Subscriber == coord.Connected }, "reconnect")
	close(gate)
	coordtest.Eventually(t, 2*time.Second, func() bool { return len(r.All()) == 3 }, "three deliveries")
	if got := fmt.Sprint(describe(r.All())); got != "[a b purge:reconnect]" {
		t.Errorf("delivered %s", got)
	}
}

func TestHealthAfterClose(t *testing.T) {
	n := NewHub(nil).New(nil)
	ctx := t.Context()
	if _, err := n.Sessions().Create(ctx, "u", nil); err != nil {
		t.Fatal(err)
	}
	if h := n.Health(ctx); h.Status != coord.Healthy || h.Backend != "memory" || h.Sessions != 1 || h.Connection != coord.Connected {
		t.Errorf("Health = %+v", h)
	}
	_ = n.Close(ctx)
	if h := n.Health(ctx); h.Status != coord.Unhealthy || h.Connection != coord.Disconnected || h.Error == "" {
		t.Errorf("Health after Close = %+v", h)
	}
	n.CutSubscription() // harmless after Close
}

func TestHubRestart(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	var r coordtest.Recorder[coord.Invalidation]
	if _, err := ns[1].Invalidator().Subscribe(ctx, r.Add); err != nil {
		t.Fatal(err)
	}
	l, err := ns[0].Locker().Acquire(ctx, "res", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ns[0].Sessions().Create(ctx, "u", nil)
	if err != nil {
		t.Fatal(err)
	}
	ns[0].Hub().Restart()
	if !coordtest.ClosedWithin(l.Done(), time.Second) {
		t.Error("a lease survived the restart")
	}
	if _, err := ns[1].Sessions().Get(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("a session survived the restart: %v", err)
	}
	if n, _ := ns[1].Sessions().Count(ctx); n != 0 {
		t.Errorf("Count after restart = %d", n)
	}
	coordtest.Eventually(t, 2*time.Second, func() bool { return len(r.All()) > 0 }, "purge after restart")
	if got := describe(r.All()); got[0] != "purge:reconnect" {
		t.Errorf("after restart: %v", got)
	}
	l2, err := ns[1].Locker().Acquire(ctx, "res")
	if err != nil {
		t.Fatal(err)
	}
	if l2.Fence() <= l.Fence() {
		t.Errorf("fence %d after restart, %d before", l2.Fence(), l.Fence())
	}
	if _, err := ns[0].Sessions().Create(ctx, "u", nil); err != nil {
		t.Errorf("Create after restart: %v", err)
	}
}

// TestErrorShape: errors name the sentinel first, then the package, as
// the Redis backend's do.
func TestErrorShape(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	l, err := ns[0].Locker().Acquire(ctx, "res")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release(context.Background()) }()
	_, err = ns[1].Locker().Acquire(ctx, "res", coord.WithRetry(0, 0))
	if !errors.Is(err, coord.ErrNotAcquired) || !strings.HasPrefix(err.Error(), "coord: lock not acquired: coord/memory: ") {
		t.Errorf("Acquire of a held resource: %q, want it to start with %q", err, "coord: lock not acquired: coord/memory: ")
	}
	if err := ns[1].Close(ctx); err != nil {
		t.Fatal(err)
	}
	err = ns[1].Events().Publish(ctx, "t", nil)
	if !errors.Is(err, coord.ErrClosed) || !strings.HasPrefix(err.Error(), "coord: closed: coord/memory") {
		t.Errorf("Publish after Close: %q, want it to start with %q", err, "coord: closed: coord/memory")
	}
}
