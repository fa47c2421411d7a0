package memory_test

import (
	"context"
	"fmt"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

// Nodes of one Hub behave as instances on one Redis server: they share
// leases and sessions and hear each other's messages.
func ExampleHub() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	a := hub.New(&memory.Options{InstanceID: "a"})
	b := hub.New(&memory.Options{InstanceID: "b"})
	defer a.Close(ctx)
	defer b.Close(ctx)

	l, _ := a.Locker().Acquire(ctx, "job")
	locked, _ := b.Locker().Locked(ctx, "job")
	fmt.Println("b sees a's lease:", locked, "fence:", l.Fence())

	s, _ := a.Sessions().Create(ctx, "user-1", map[string]any{"k": "v"})
	got, _ := b.Sessions().Get(ctx, s.ID)
	fmt.Println("b reads a's session:", string(got.Data["k"]))
	// Output:
	// b sees a's lease: true fence: 1
	// b reads a's session: "v"
}

// CutSubscription simulates a lost subscriber connection: when the node
// reconnects, its invalidation subscribers are told to purge everything,
// since they may have missed invalidations.
func ExampleBackend_CutSubscription() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	a := hub.New(nil)
	b := hub.New(nil)
	defer a.Close(ctx)
	defer b.Close(ctx)

	got := make(chan coord.Invalidation, 1)
	_, _ = b.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) { got <- inv })
	b.CutSubscription()
	_ = a.Invalidator().Invalidate(ctx, "user:1", nil) // lost while cut
	inv := <-got
	fmt.Println(inv.Kind, inv.Reason)
	// Output:
	// purge reconnect
}
