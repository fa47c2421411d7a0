package memory_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

// Entries appended to a stream reach every consumer group at least once; a
// handler that fails leaves its entry pending, and it comes back after
// ClaimAfter with its delivery count.
func ExampleStreams() {
	ctx := context.Background()
	node := memory.NewHub(nil).New(nil)
	defer node.Close(ctx)
	s := node.Streams()

	for _, order := range []string{"A-1", "A-2"} {
		if _, err := s.Append(ctx, "orders", map[string]string{"order": order}); err != nil {
			fmt.Println(err)
			return
		}
	}
	got := make(chan string, 10)
	failed := false
	sub, err := s.Consume(ctx, "orders", "billing", func(_ context.Context, e coord.StreamEntry) error {
		if !failed {
			failed = true // the first call fails once: its entry is redelivered
			got <- fmt.Sprintf("failed %s (delivery %d)", e.Payload, e.Deliveries)
			return errors.New("card declined")
		}
		got <- fmt.Sprintf("billed %s (delivery %d)", e.Payload, e.Deliveries)
		return nil
	}, coord.ClaimAfter(10*time.Millisecond), coord.ConsumerName("billing-1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		fmt.Println(<-got)
	}
	sub.Unsubscribe()
	<-sub.Done()

	in, _ := s.Info(ctx, "orders")
	fmt.Printf("length %d, group %s: pending %d, lag %d\n", in.Length, in.Groups[0].Name, in.Groups[0].Pending, in.Groups[0].Lag)
	// Output:
	// failed {"order":"A-1"} (delivery 1)
	// billed {"order":"A-2"} (delivery 1)
	// billed {"order":"A-1"} (delivery 2)
	// length 2, group billing: pending 0, lag 0
}
