package coord_test

import (
	"context"
	"fmt"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

// The function WithLock runs finds its lease in its ctx: the fence to
// send with every write, so that a store can refuse the writes of a
// holder whose lease has passed to another.
func ExampleLockFromContext() {
	ctx := context.Background()
	node := memory.NewHub(nil).New(nil)
	defer node.Close(ctx)

	_ = coord.WithLock(ctx, node.Locker(), "invoice:17", func(ctx context.Context) error {
		lease, ok := coord.LockFromContext(ctx)
		fmt.Println("lease:", ok, lease.Resource(), "fenced:", lease.Fence() > 0)
		return nil
	})
	_, ok := coord.LockFromContext(ctx)
	fmt.Println("outside WithLock:", ok)
	// Output:
	// lease: true invoice:17 fenced: true
	// outside WithLock: false
}
