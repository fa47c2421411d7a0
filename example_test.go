package coord_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

// WithLock runs a job on one instance at a time: the lease is renewed
// while the function runs and released when it returns.
func ExampleWithLock() {
	ctx := context.Background()
	node := memory.NewHub(nil).New(&memory.Options{InstanceID: "node-1"})
	defer node.Close(ctx)

	err := coord.WithLock(ctx, node.Locker(), "nightly-report", func(ctx context.Context) error {
		fmt.Println("building the report")
		return nil
	}, coord.WithTTL(5*time.Second))
	fmt.Println("error:", err)

	locked, _ := node.Locker().Locked(ctx, "nightly-report")
	fmt.Println("still locked:", locked)
	// Output:
	// building the report
	// error: <nil>
	// still locked: false
}

// Two instances contend for one resource: the second waits until the
// first releases, and its fencing token is higher.
func ExampleLocker() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	a := hub.New(&memory.Options{InstanceID: "node-a"})
	b := hub.New(&memory.Options{InstanceID: "node-b"})
	defer a.Close(ctx)
	defer b.Close(ctx)

	first, err := a.Locker().Acquire(ctx, "invoice:17", coord.WithTTL(10*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	// b tries once and gives up: the lease is held.
	_, err = b.Locker().Acquire(ctx, "invoice:17", coord.WithRetry(0, 0))
	fmt.Println("b without waiting:", err)

	got := make(chan coord.Lock)
	go func() {
		l, err := b.Locker().Acquire(ctx, "invoice:17", coord.WithWait(time.Second))
		if err != nil {
			fmt.Println(err)
		}
		got <- l
	}()
	_ = first.Release(ctx) // hands the lease to b at once
	second := <-got
	fmt.Println("fence went up:", second.Fence() > first.Fence())
	_ = second.Release(ctx)
	// Output:
	// b without waiting: coord: lock not acquired: coord/memory: "invoice:17" is held
	// fence went up: true
}

// A session's life: created at login, read and touched on each request,
// merged field by field, rotated on a privilege change, and ended by
// "log out everywhere".
func ExampleSessionStore() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	web := hub.New(&memory.Options{InstanceID: "web-1"})
	api := hub.New(&memory.Options{InstanceID: "api-1"})
	defer web.Close(ctx)
	defer api.Close(ctx)

	s, err := web.Sessions().Create(ctx, "user-42", map[string]any{
		"theme":     "dark",
		"discordId": int64(1234567890123456789), // survives exactly
	}, coord.WithIdleTTL(30*time.Minute), coord.WithLifetime(8*time.Hour))
	if err != nil {
		fmt.Println(err)
		return
	}

	// Another instance reads it with the token from the cookie.
	got, _ := api.Sessions().Touch(ctx, s.ID)
	var id int64
	_ = got.Decode("discordId", &id)
	fmt.Println("user:", got.UserID, "discordId:", id)

	// A merge sets and deletes fields without touching the others.
	_ = api.Sessions().Update(ctx, s.ID, map[string]any{"cart": []int{3, 5}, "theme": nil})
	got, _ = web.Sessions().Get(ctx, s.ID)
	fmt.Println("fields:", string(got.Data["cart"]), len(got.Data))

	// Rotation: new token, same session; the old token is dead.
	r, _ := web.Sessions().Rotate(ctx, s.ID)
	_, err = web.Sessions().Get(ctx, s.ID)
	fmt.Println("old token:", err)
	fmt.Println("same creation time:", r.CreatedAt.Equal(s.CreatedAt))

	list, _ := api.Sessions().ByUser(ctx, "user-42")
	fmt.Println("listed:", len(list), "with token:", list[0].ID != "")

	n, _ := api.Sessions().DeleteByUser(ctx, "user-42")
	count, _ := web.Sessions().Count(ctx)
	fmt.Println("logged out:", n, "left:", count)
	// Output:
	// user: user-42 discordId: 1234567890123456789
	// fields: [3,5] 2
	// old token: coord: not found: coord/memory: no such session
	// same creation time: true
	// listed: 1 with token: false
	// logged out: 1 left: 0
}

// An invalidation published by one instance reaches the subscribers of
// the others, as a key or as a Redis glob; the sender does not get its
// own.
func ExampleInvalidator() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	a := hub.New(&memory.Options{InstanceID: "node-a"})
	b := hub.New(&memory.Options{InstanceID: "node-b"})
	defer a.Close(ctx)
	defer b.Close(ctx)

	got := make(chan coord.Invalidation, 4)
	_, _ = a.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) { got <- inv })
	_, _ = b.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) { got <- inv })

	_ = a.Invalidator().Invalidate(ctx, "user:42", map[string]string{"reason": "renamed"})
	_ = a.Invalidator().InvalidatePattern(ctx, "guild:7:*", nil)

	for range 2 {
		inv := <-got
		fmt.Printf("%s %s from %s (metadata %s), covers guild:7:roles/admins: %v\n",
			inv.Kind, inv.Key, inv.InstanceID, inv.Metadata, inv.Matches("guild:7:roles/admins"))
	}
	fmt.Println("sent by a:", a.Invalidator().Stats().Sent, "received by b:", b.Invalidator().Stats().Received,
		"received by a:", a.Invalidator().Stats().Received)
	// Output:
	// key user:42 from node-a (metadata {"reason":"renamed"}), covers guild:7:roles/admins: false
	// pattern guild:7:* from node-a (metadata ), covers guild:7:roles/admins: true
	// sent by a: 2 received by b: 2 received by a: 0
}

// An event published by one instance reaches the subscribers of its
// topic on the others, in publish order.
func ExampleEventBus() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	a := hub.New(&memory.Options{InstanceID: "shard-0"})
	b := hub.New(&memory.Options{InstanceID: "shard-1"})
	defer a.Close(ctx)
	defer b.Close(ctx)

	type rebalance struct {
		Shard int   `json:"shard"`
		Guild int64 `json:"guild"`
	}
	got := make(chan coord.Event, 2)
	_, _ = b.Events().Subscribe(ctx, "shard.rebalance", func(e coord.Event) { got <- e })

	_ = a.Events().Publish(ctx, "shard.rebalance", rebalance{Shard: 1, Guild: 1234567890123456789})
	_ = a.Events().Publish(ctx, "shard.rebalance", rebalance{Shard: 2})
	for range 2 {
		e := <-got
		fmt.Println(e.Topic, "from", e.InstanceID+":", string(e.Payload))
	}
	// Output:
	// shard.rebalance from shard-0: {"shard":1,"guild":1234567890123456789}
	// shard.rebalance from shard-0: {"shard":2,"guild":0}
}
