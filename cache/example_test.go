package cache_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/cache"
)

// Two instances on one memory hub each keep a near cache of users. When
// instance A changes a user, its Delete evicts the user from B's cache
// too, and B's next read loads the new value.
func Example() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	nodeA, nodeB := hub.New(nil), hub.New(nil)
	defer nodeA.Close(ctx)
	defer nodeB.Close(ctx)

	// The source of truth, shared by both instances.
	var mu sync.Mutex
	db := map[string]string{"user:1": "alice"}
	load := func(ctx context.Context, key string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Println("load", key)
		return db[key], nil
	}

	usersA, err := cache.New[string](ctx, nodeA.Invalidator(), &cache.Options{MaxSize: 1000, MaxTTL: time.Minute})
	if err != nil {
		panic(err)
	}
	defer usersA.Close()
	usersB, err := cache.New[string](ctx, nodeB.Invalidator(), &cache.Options{MaxSize: 1000, MaxTTL: time.Minute})
	if err != nil {
		panic(err)
	}
	defer usersB.Close()

	u, _ := usersB.GetOrLoad(ctx, "user:1", load) // miss: loads
	fmt.Println("B:", u)
	u, _ = usersB.GetOrLoad(ctx, "user:1", load) // hit
	fmt.Println("B:", u)

	// A writes the source of truth, then invalidates everywhere.
	mu.Lock()
	db["user:1"] = "alice smith"
	mu.Unlock()
	if err := usersA.Delete(ctx, "user:1"); err != nil {
		panic(err)
	}

	// Delivery to B is asynchronous; wait until B has applied it.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, ok := usersB.Get("user:1"); !ok {
			break
		}
	}
	u, _ = usersB.GetOrLoad(ctx, "user:1", load) // evicted: loads the new value
	fmt.Println("B:", u)

	st := usersB.Stats()
	fmt.Println("B loads:", st.Loads, "remote invalidations:", st.RemoteInvalidations)
	// Output:
	// load user:1
	// B: alice
	// B: alice
	// load user:1
	// B: alice smith
	// B loads: 2 remote invalidations: 1
}
