package coord_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

// Three instances run the same hourly report with RunEvery: whatever
// their clocks and start times, one of them builds it, once in the hour.
// WithLock alone would let each instance build it in turn.
func ExampleRunEvery() {
	hub := memory.NewHub(nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var nodes []*memory.Backend
	for i := range 3 {
		node := hub.New(&memory.Options{InstanceID: fmt.Sprintf("node-%d", i+1)})
		nodes = append(nodes, node)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = coord.RunEvery(ctx, node, "hourly-report", time.Hour, func(ctx context.Context) error {
				lease, _ := coord.LockFromContext(ctx) // send lease.Fence() with the writes
				fmt.Println("building the report, fenced:", lease.Fence() > 0)
				return nil
			})
		}()
	}
	// Wait until the hour is recorded done, then stop the instances.
	for {
		slot, err := nodes[0].Jobs().Due(ctx, "hourly-report", time.Hour)
		if err != nil {
			fmt.Println(err)
			break
		}
		if slot.Done {
			fmt.Println("done this hour:", slot.Done)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	for _, n := range nodes {
		n.Close(context.Background())
	}
	// Output:
	// building the report, fenced: true
	// done this hour: true
}
