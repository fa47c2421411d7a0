package coord_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

// Two instances share one limit of 3 login attempts a minute per user:
// the burst of 3 is spent across both, then every attempt is denied with
// the time to wait.
func ExampleRateLimiter() {
	ctx := context.Background()
	hub := memory.NewHub(nil) // every instance on one Redis, in production
	a, b := hub.New(nil), hub.New(nil)
	defer a.Close(ctx)
	defer b.Close(ctx)

	login := coord.Limit{Name: "login", Rate: 3, Period: time.Minute}
	for i, inst := range []coord.Backend{a, b, a, b} {
		d, err := inst.RateLimiter().Allow(ctx, "user:42", login, 1)
		if err != nil {
			panic(err) // ErrUnavailable: refuse the attempt, never let it through
		}
		if d.Allowed {
			fmt.Printf("attempt %d allowed, %d left\n", i+1, d.Remaining)
		} else {
			fmt.Printf("attempt %d denied, retry in %v\n", i+1, d.RetryAfter.Round(time.Second))
		}
	}
	// Output:
	// attempt 1 allowed, 2 left
	// attempt 2 allowed, 1 left
	// attempt 3 allowed, 0 left
	// attempt 4 denied, retry in 20s
}

// A sliding window admits at most Rate events in any window of Period,
// for quotas counted per window.
func ExampleLimit_window() {
	ctx := context.Background()
	n := memory.NewHub(nil).New(nil)
	defer n.Close(ctx)

	quota := coord.Limit{Name: "upstream", Rate: 100, Period: time.Minute, Window: true}
	d, _ := n.RateLimiter().Allow(ctx, "api-key-1", quota, 60)
	fmt.Println(d.Allowed, d.Remaining)
	d, _ = n.RateLimiter().Allow(ctx, "api-key-1", quota, 60) // all or nothing
	fmt.Println(d.Allowed, d.Remaining)
	_, err := n.RateLimiter().Allow(ctx, "api-key-1", quota, 101) // can never pass
	fmt.Println(errors.Is(err, coord.ErrInvalid))
	// Output:
	// true 40
	// false 40
	// true
}

// WaitRate returns at once when the deadline comes before the events
// could be allowed, instead of waiting in vain.
func ExampleWaitRate() {
	ctx := context.Background()
	n := memory.NewHub(nil).New(nil)
	defer n.Close(ctx)
	rl := n.RateLimiter()
	hourly := coord.Limit{Rate: 1, Period: time.Hour}

	fmt.Println(coord.WaitRate(ctx, rl, "report", hourly, 1)) // the first passes
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := coord.WaitRate(ctx, rl, "report", hourly, 1)
	fmt.Println(errors.Is(err, coord.ErrRateLimited), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// <nil>
	// true true
}
