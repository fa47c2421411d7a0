package mockservice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
)

// FinishedTopic is the event topic on which a Runner announces a job that
// completed.
const FinishedTopic = "job.finished"

// ErrSkipped is returned by [Runner.Run] when another instance holds the
// job's lease: the job runs there, not here.
var ErrSkipped = errors.New("mockservice: job running elsewhere")

// Finished is the payload of a [FinishedTopic] event.
type Finished struct {
	// Job is the job's name.
	Job string `json:"job"`
	// Took is how long the job ran, in milliseconds.
	Took int64 `json:"tookMs"`
}

// Job is a unit of work. Its ctx is cancelled if the lease is lost.
type Job func(ctx context.Context) error

// Runner runs jobs once across all instances. It is safe for concurrent
// use by multiple goroutines.
type Runner struct {
	locker coord.Locker
	cache  coord.Invalidator
	events coord.EventBus
	ttl    time.Duration
}

// NewRunner returns a Runner that takes leases from locker, invalidates
// through cache and publishes on events. ttl is the lease length (renewed
// while a job runs); 0 means [coord.DefaultLockTTL].
func NewRunner(locker coord.Locker, cache coord.Invalidator, events coord.EventBus, ttl time.Duration) *Runner {
	if ttl <= 0 {
		ttl = coord.DefaultLockTTL
	}
	return &Runner{locker: locker, cache: cache, events: events, ttl: ttl}
}

// ResultKey is the cache key of the result of job name.
func ResultKey(name string) string { return "job:" + name + ":result" }

// Run runs job under the lease "job:"+name without waiting for it: when
// another instance holds it, Run returns an error wrapping [ErrSkipped].
// After the job succeeds, Run invalidates [ResultKey] on every instance
// and publishes a [Finished] event on [FinishedTopic]. It returns the
// job's error, or one wrapping [coord.ErrLeaseLost] when the lease was
// lost while the job ran.
func (r *Runner) Run(ctx context.Context, name string, job Job) error {
	err := coord.WithLock(ctx, r.locker, "job:"+name, func(ctx context.Context) error {
		start := time.Now()
		if err := job(ctx); err != nil {
			return fmt.Errorf("job %s: %w", name, err)
		}
		if err := r.cache.Invalidate(ctx, ResultKey(name), nil); err != nil {
			return fmt.Errorf("job %s: invalidate result: %w", name, err)
		}
		done := Finished{Job: name, Took: time.Since(start).Milliseconds()}
		if err := r.events.Publish(ctx, FinishedTopic, done); err != nil {
			return fmt.Errorf("job %s: announce: %w", name, err)
		}
		return nil
	}, coord.WithTTL(r.ttl), coord.WithRetry(0, 0))
	if errors.Is(err, coord.ErrNotAcquired) {
		return fmt.Errorf("job %s: %w: %w", name, ErrSkipped, err)
	}
	return err
}
