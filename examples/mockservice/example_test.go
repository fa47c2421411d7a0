package mockservice_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/examples/mockservice"
)

// Two instances share a memory hub; the job runs on the first, and the
// second hears of it and drops its cached result.
func ExampleRunner() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	a, b := hub.New(nil), hub.New(nil)
	defer a.Close(ctx)
	defer b.Close(ctx)

	invalidated := make(chan string, 1)
	finished := make(chan mockservice.Finished, 1)
	_, _ = b.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) { invalidated <- inv.Key })
	_, _ = b.Events().Subscribe(ctx, mockservice.FinishedTopic, func(e coord.Event) {
		var f mockservice.Finished
		_ = json.Unmarshal(e.Payload, &f)
		finished <- f
	})

	runner := mockservice.NewRunner(a.Locker(), a.Invalidator(), a.Events(), time.Minute)
	err := runner.Run(ctx, "report", func(ctx context.Context) error {
		// While the job runs, the other instance cannot run it.
		other := mockservice.NewRunner(b.Locker(), b.Invalidator(), b.Events(), time.Minute)
		err := other.Run(ctx, "report", func(context.Context) error { return nil })
		fmt.Println("second instance skipped:", errors.Is(err, mockservice.ErrSkipped))
		return nil
	})
	fmt.Println("run:", err)
	select {
	case key := <-invalidated:
		fmt.Println("invalidated:", key)
	case <-time.After(5 * time.Second):
		fmt.Println("no invalidation")
	}
	select {
	case f := <-finished:
		fmt.Println("finished:", f.Job)
	case <-time.After(5 * time.Second):
		fmt.Println("no event")
	}
	// Output:
	// second instance skipped: true
	// run: <nil>
	// invalidated: job:report:result
	// finished: report
}
