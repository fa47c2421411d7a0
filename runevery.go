package coord

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// JobLockPrefix starts the name of the lease [RunEvery] takes for a job:
// the lease of job "report" is on resource "coord/job:report". Resource
// names of this form are reserved for it: a lease of the application's
// own on one of them would stop the job from running.
const JobLockPrefix = "coord/job:"

// jobWaitPoll bounds a wait for a job's lease between two looks when no
// release wakes the waiter (a holder that died: its lease runs out).
const jobWaitPoll = 250 * time.Millisecond

// JobOptions are the resolved options of [RunEvery].
type JobOptions struct {
	// TTL is the length of the job's lease, renewed while a run lasts: how
	// long after its instance died a run cut short is taken over by
	// another instance. Default: [DefaultLockTTL].
	TTL time.Duration
	// Backoff is the wait after a failed run before the job is tried
	// again in the same period; it doubles with each failure recorded in
	// the period, up to MaxBackoff, and never passes the period's end.
	// Default: a tenth of the period, at most 1s.
	Backoff time.Duration
	// MaxBackoff bounds the doubled Backoff. Default: a quarter of the
	// period, at most 1 minute (and at least Backoff).
	MaxBackoff time.Duration
	// Jitter is the longest random delay after a period starts before an
	// instance asks whether the job is due, so that the instances do not
	// all ask at the same instant. Default: a twentieth of the period, at
	// most 1s.
	Jitter time.Duration
	// OnError is called with every error of a run (fn's error, or
	// [ErrLeaseLost] when the lease was lost during a run that failed) and
	// every error of the backend that RunEvery retries (slot is then
	// JobSlot{} when unknown). When it returns an error, RunEvery stops
	// and returns it. Default: nil (keep going).
	OnError func(ctx context.Context, slot JobSlot, err error) error
}

// JobOption sets an option of [RunEvery].
type JobOption func(*JobOptions)

// WithJobTTL sets the length of the job's lease (at least 1ms).
func WithJobTTL(ttl time.Duration) JobOption { return func(o *JobOptions) { o.TTL = ttl } }

// WithJobBackoff sets the wait after a failed run and its cap (both at
// least 0; max at least first, or 0 for the default).
func WithJobBackoff(first, max time.Duration) JobOption {
	return func(o *JobOptions) { o.Backoff, o.MaxBackoff = first, max }
}

// WithJobJitter sets the longest random delay after a period starts (0
// for none).
func WithJobJitter(d time.Duration) JobOption { return func(o *JobOptions) { o.Jitter = d } }

// OnJobError sets the function called with every error of a run or of the
// backend (see [JobOptions].OnError).
func OnJobError(f func(ctx context.Context, slot JobSlot, err error) error) JobOption {
	return func(o *JobOptions) { o.OnError = f }
}

// jobSlotKey is the context key of the slot [RunEvery] runs fn for.
type jobSlotKey struct{}

// JobSlotFromContext returns the period [RunEvery] runs the function that
// was given ctx for, and false when ctx is not such a function's.
func JobSlotFromContext(ctx context.Context) (JobSlot, bool) {
	s, ok := ctx.Value(jobSlotKey{}).(JobSlot)
	return s, ok
}

// RunEvery runs fn at most once per period across every instance of b's
// backend, whatever their clock skew and start times, until ctx ends; it
// is the tool for a "nightly report", where [WithLock] alone is not (a
// lease keeps two runs from overlapping, not a second run from
// following the first: see docs/JOBS.md). Every instance that should be
// able to run the job calls RunEvery with the same job name and period.
//
// Periods are aligned on the backend's clock (see [Jobs]): with a period
// of 24h, each UTC day is one period. In each period, one instance runs
// fn, as soon as it sees the period start (plus up to the jitter): it
// asks the backend whether the job is due, takes the job's lease (on
// resource [JobLockPrefix]+job; the others wait for it), asks again under
// the lease, and runs fn with the lease renewed. fn's context carries the
// lease ([LockFromContext]) and the period ([JobSlotFromContext]), and is
// cancelled with cause [ErrLeaseLost] if the lease is lost. When fn
// returns nil, the period is recorded done ([Jobs.Complete]) before the
// lease is released, and no instance runs fn again until the next period.
// When fn fails, the failure is recorded ([Jobs.Fail]), the instance
// keeps the lease through a backoff that doubles with each failure in the
// period, then releases it, and the longest waiting instance (often
// another one) tries again, in the same period while it lasts; a failed
// period is never recorded done.
//
// "At most once per period" holds for runs that succeed and whose lease
// held. When the instance running fn dies (or its lease is lost: a pause
// longer than the TTL, a forced release), another instance takes the
// lease once it is free (at once after a Close, within the TTL after a
// crash) and runs fn again in the same period if it has not ended, else
// in the next one. The cut-short run may have done part of its work, or
// all of it without recording it: fn should be idempotent, or send the
// lease's fence with its writes so that a store refuses those of a run
// whose lease has passed on. A run that outlasts its period is followed
// by the next period's run at once.
//
// RunEvery returns context.Cause(ctx) once ctx ends, the error of
// OnError when it returns one, or at once an error wrapping [ErrInvalid]
// (bad arguments), [ErrUnsupported] (a backend without [Jobs]) or
// [ErrClosed]. Errors it retries (the backend unavailable) go to OnError.
func RunEvery(ctx context.Context, b Backend, job string, period time.Duration, fn func(ctx context.Context) error, opts ...JobOption) error {
	r, err := newJobRunner(b, job, period, fn, opts)
	if err != nil {
		return err
	}
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		wait, err := r.round(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return err
		}
		if wait > 0 {
			sleepCtx(ctx, wait)
		}
	}
}

// jobRunner is one RunEvery's state.
type jobRunner struct {
	jobs   Jobs
	locker Locker
	job    string
	lockOn string
	period time.Duration
	fn     func(ctx context.Context) error
	o      JobOptions
}

func newJobRunner(b Backend, job string, period time.Duration, fn func(ctx context.Context) error, opts []JobOption) (*jobRunner, error) {
	if b == nil || fn == nil {
		return nil, fmt.Errorf("%w: RunEvery needs a backend and a function", ErrInvalid)
	}
	if job == "" || len(JobLockPrefix)+len(job) > MaxNameLen {
		return nil, fmt.Errorf("%w: job name of %d bytes: must be 1 to %d", ErrInvalid, len(job), MaxNameLen-len(JobLockPrefix))
	}
	if period < time.Millisecond || period > MaxJobPeriod {
		return nil, fmt.Errorf("%w: job period %v must be between 1ms and %v", ErrInvalid, period, MaxJobPeriod)
	}
	o := JobOptions{
		TTL:     DefaultLockTTL,
		Backoff: min(period/10, time.Second),
		Jitter:  min(period/20, time.Second),
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = max(min(period/4, time.Minute), o.Backoff)
	}
	switch {
	case o.TTL < time.Millisecond:
		return nil, fmt.Errorf("%w: job lease TTL %v must be at least 1ms", ErrInvalid, o.TTL)
	case o.Backoff < 0 || o.MaxBackoff < o.Backoff:
		return nil, fmt.Errorf("%w: job backoff %v up to %v: must be 0 or more, the cap at least the first", ErrInvalid, o.Backoff, o.MaxBackoff)
	case o.Jitter < 0:
		return nil, fmt.Errorf("%w: job jitter %v is negative", ErrInvalid, o.Jitter)
	}
	jobs, locker := b.Jobs(), b.Locker()
	if jobs == nil || locker == nil {
		return nil, fmt.Errorf("%w: the backend has no Jobs or no Locker", ErrInvalid)
	}
	return &jobRunner{jobs: jobs, locker: locker, job: job, lockOn: JobLockPrefix + job, period: period, fn: fn, o: o}, nil
}

// fatal reports whether err ends RunEvery rather than being retried.
func fatal(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnsupported) || errors.Is(err, ErrClosed)
}

// failed hands a retried error to OnError; it returns OnError's error,
// or err itself when it is fatal.
func (r *jobRunner) failed(ctx context.Context, slot JobSlot, err error) error {
	if fatal(err) {
		return err
	}
	if r.o.OnError != nil {
		return r.o.OnError(ctx, slot, err)
	}
	return nil
}

// jitter returns a random delay up to the configured jitter.
func (r *jobRunner) jitter() time.Duration {
	if r.o.Jitter <= 0 {
		return 0
	}
	return rand.N(r.o.Jitter + 1)
}

// backoff returns the wait after the n-th failure of a period (n ≥ 1).
func (r *jobRunner) backoff(n int) time.Duration {
	d := r.o.Backoff
	for i := 1; i < n && d < r.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.o.MaxBackoff)
}

// round asks whether the job is due and, if so, runs it once under its
// lease. It returns how long to wait before the next round.
func (r *jobRunner) round(ctx context.Context) (time.Duration, error) {
	slot, err := r.jobs.Due(ctx, r.job, r.period)
	if err != nil {
		return r.backoff(1), r.failed(ctx, JobSlot{}, err)
	}
	if slot.Done {
		return slot.Next + r.jitter(), nil
	}
	// Wait for the lease until the period ends at the latest: a new
	// period needs a new look at the record.
	actx, cancel := context.WithTimeout(ctx, slot.Next)
	lock, err := r.locker.Acquire(actx, r.lockOn, WithTTL(r.o.TTL), WithWait(jobWaitPoll), WithAutoRenew())
	periodOver := actx.Err() != nil
	cancel()
	if err != nil {
		if errors.Is(err, ErrNotAcquired) {
			if periodOver {
				return 0, nil
			}
			return min(slot.Next, jobWaitPoll), nil // the wait ended early: do not spin
		}
		return r.backoff(1), r.failed(ctx, slot, err)
	}
	if lock == nil {
		return 0, fmt.Errorf("%w: Acquire of %q returned neither a lease nor an error", ErrInvalid, r.lockOn)
	}
	return r.holding(ctx, lock)
}

// holding runs the job under lock if it is still due, and releases lock.
func (r *jobRunner) holding(ctx context.Context, lock Lock) (wait time.Duration, err error) {
	defer func() {
		// Released even when ctx ended; bounded, as the lease is given up
		// whatever Release returns (see Lock).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.TTL)
		defer cancel()
		_ = lock.Release(rctx)
	}()
	slot, err := r.jobs.Due(ctx, r.job, r.period)
	if err != nil {
		return r.backoff(1), r.failed(ctx, slot, err)
	}
	if slot.Done {
		return slot.Next + r.jitter(), nil
	}
	started := time.Now()
	runErr := r.run(ctx, lock, slot)
	// Record the outcome even when ctx ended meanwhile: the run happened.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.TTL)
	defer cancel()
	if runErr == nil {
		if err := r.jobs.Complete(rctx, r.job, slot); err != nil {
			return r.backoff(1), r.failed(ctx, slot, err)
		}
		return 0, nil
	}
	if ctx.Err() != nil {
		return 0, nil // stopping: a run cut short by the caller is no failure of the job
	}
	if ferr := r.jobs.Fail(rctx, r.job, slot); ferr != nil && fatal(ferr) {
		return 0, ferr
	}
	if err := r.failed(ctx, slot, runErr); err != nil {
		return 0, err
	}
	// Keep the lease through the backoff, so that the fleet tries again
	// once per backoff, then let the longest waiter (often another
	// instance) try; never past the period's end.
	d := min(r.backoff(slot.Failures+1), slot.Next-time.Since(started))
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-lock.Done():
		case <-ctx.Done():
		}
	}
	return 0, nil
}

// run calls fn with the lease and the slot in its ctx, cancelled with
// ErrLeaseLost when the lease is lost.
func (r *jobRunner) run(ctx context.Context, lock Lock, slot JobSlot) error {
	fctx, cancel := context.WithCancelCause(context.WithValue(ContextWithLock(ctx, lock), jobSlotKey{}, slot))
	defer cancel(nil)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-lock.Done():
			cancel(ErrLeaseLost)
		case <-stop:
		}
	}()
	defer func() { // also when fn panics
		close(stop)
		<-watched
	}()
	err := r.fn(fctx)
	if err != nil && context.Cause(fctx) == ErrLeaseLost && !errors.Is(err, ErrLeaseLost) {
		err = errors.Join(err, fmt.Errorf("%w on %q", ErrLeaseLost, lock.Resource()))
	}
	return err
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
