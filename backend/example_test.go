package backend_test

import (
	"context"
	"fmt"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend"
)

// Two instances opened from the same mem:// name share a hub, as two
// processes share one Redis: a lease one holds is seen by the other.
func ExampleOpen() {
	ctx := context.Background()
	var opener backend.Opener

	a, err := opener.Open(ctx, backend.Config{URL: "mem://orders?instance=a"})
	if err != nil {
		panic(err)
	}
	defer a.Close(ctx)
	b, err := opener.Open(ctx, backend.Config{URL: "mem://orders?instance=b"})
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)

	lock, err := a.Locker().Acquire(ctx, "nightly-report")
	if err != nil {
		panic(err)
	}
	held, _ := b.Locker().Locked(ctx, "nightly-report")
	fmt.Println(a.Kind(), "held seen by b:", held)

	_ = lock.Release(ctx)
	held, _ = b.Locker().Locked(ctx, "nightly-report")
	fmt.Println("after release:", held, b.Health(ctx).Status == coord.Healthy)
	// Output:
	// memory held seen by b: true
	// after release: false true
}

// With no Redis in the environment, FromEnv opens the memory backend.
func ExampleFromEnv() {
	ctx := context.Background()
	noEnv := func(string) string { return "" }
	b, err := backend.FromEnv(ctx, backend.Config{Getenv: noEnv})
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)
	fmt.Println(b.Kind())
	// Output: memory
}
