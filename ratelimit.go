package coord

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RateLimiter limits how often events on a key may happen, across every
// instance, on the backend's clock (Redis's TIME, the memory hub's
// monotonic clock; never the caller's). It never allows on error. A
// RateLimiter is safe for concurrent use by multiple goroutines.
//
// A backend without rate limiting returns one whose methods fail with
// [ErrUnsupported].
type RateLimiter interface {
	// Allow records n events on key if limit allows all n now (all or
	// nothing) and reports the decision. A denial is not an error: it is
	// a decision with Allowed false and RetryAfter set. May return
	// [ErrInvalid] (see [Limit.Validate]; nothing is stored then),
	// [ErrClosed] or [ErrUnavailable]; never an allowed decision with an
	// error.
	Allow(ctx context.Context, key string, limit Limit, n int) (RateDecision, error)
	// Peek reports key's state under limit without recording anything:
	// Allowed and RetryAfter as Allow(ctx, key, limit, 1) would decide
	// now, Remaining as the events allowed now, ResetAfter as the time
	// until the full allowance is back.
	Peek(ctx context.Context, key string, limit Limit) (RateDecision, error)
	// Reset forgets key's history, under both algorithms: the next
	// decision on key sees a full allowance.
	Reset(ctx context.Context, key string) error
}

// Limit says how often events may happen. By default it is a GCRA limit
// (the generic cell rate algorithm): Rate events per Period sustained,
// Burst at once. It admits Burst events at once and then one per
// Period/Rate, so up to Burst + Rate·t/Period in any time t: a window of
// length Period may see about 2·Rate − 1 events with Burst = Rate. With
// Window set it is instead an exact sliding window: never more than Rate
// events in any window of length Period, at the cost of memory per event
// in the window.
//
// The same key under a GCRA limit and under a window limit are two
// separate states.
type Limit struct {
	// Name names the limit in metrics, logs and traces ("login",
	// "discord-route"). Keep the set of names small: it is a metric label.
	// Empty is shown as "default". It plays no part in the decision.
	Name string
	// Rate is the number of events allowed per Period, 1 to [MaxRate]
	// (a window: 1 to [MaxWindowRate]).
	Rate int
	// Period is the length of time Rate is counted over: from 1ms to
	// [MaxRatePeriod], and at least a microsecond per event.
	Period time.Duration
	// Burst is how many events may happen at once (GCRA only); 0 means
	// Rate. Burst × Period/Rate may not pass [MaxRatePeriod] × 10.
	Burst int
	// Window selects the exact sliding window.
	Window bool
}

// Bounds of a [Limit]; see [Limit.Validate].
const (
	// MaxRate is the largest Rate and Burst of a GCRA limit.
	MaxRate = 1_000_000_000
	// MaxWindowRate is the largest Rate of a window limit: the window
	// keeps one entry per event.
	MaxWindowRate = 1_000_000
	// MaxRatePeriod is the longest Period.
	MaxRatePeriod = 366 * 24 * time.Hour
)

// PerSecond returns a GCRA limit of rate events a second, with a burst of
// rate.
func PerSecond(rate int) Limit { return Limit{Rate: rate, Period: time.Second} }

// PerMinute returns a GCRA limit of rate events a minute, with a burst of
// rate.
func PerMinute(rate int) Limit { return Limit{Rate: rate, Period: time.Minute} }

// PerHour returns a GCRA limit of rate events an hour, with a burst of
// rate.
func PerHour(rate int) Limit { return Limit{Rate: rate, Period: time.Hour} }

// Size returns the most events the limit ever allows at once: Burst (Rate
// when Burst is 0) for GCRA, Rate for a window.
func (l Limit) Size() int {
	if l.Window || l.Burst == 0 {
		return l.Rate
	}
	return l.Burst
}

// Label returns the limit's name for metrics and logs: Name, or "default"
// when Name is empty.
func (l Limit) Label() string {
	if l.Name == "" {
		return "default"
	}
	return l.Name
}

// PeriodMicros returns Period in whole microseconds, rounded up.
func (l Limit) PeriodMicros() int64 {
	return int64((l.Period + time.Microsecond - 1) / time.Microsecond)
}

// IntervalMicros returns the GCRA emission interval, Period/Rate, in
// whole microseconds rounded up: the limit never allows more than asked.
// It is meaningful only for a valid limit.
func (l Limit) IntervalMicros() int64 {
	p := l.PeriodMicros()
	r := int64(max(l.Rate, 1))
	return (p + r - 1) / r
}

// String describes the limit: "login: 10/1s burst 5" or "login: 10/1s
// window".
func (l Limit) String() string {
	if l.Window {
		return fmt.Sprintf("%s: %d/%v window", l.Label(), l.Rate, l.Period)
	}
	return fmt.Sprintf("%s: %d/%v burst %d", l.Label(), l.Rate, l.Period, l.Size())
}

// Validate reports whether n events may ever be asked of the limit. The
// error wraps [ErrInvalid] when Rate, Burst or Period is out of bounds
// (see the fields of [Limit]), or n is below 1 or above [Limit.Size]: a
// request that could never be allowed. Every backend checks it before it
// stores anything.
func (l Limit) Validate(n int) error {
	if l.Rate < 1 || (!l.Window && l.Rate > MaxRate) || (l.Window && l.Rate > MaxWindowRate) {
		return fmt.Errorf("%w: rate limit %q: Rate %d is out of bounds", ErrInvalid, l.Label(), l.Rate)
	}
	if l.Period < time.Millisecond || l.Period > MaxRatePeriod {
		return fmt.Errorf("%w: rate limit %q: Period %v is out of bounds [1ms, %v]", ErrInvalid, l.Label(), l.Period, MaxRatePeriod)
	}
	if int64(l.Rate) > l.PeriodMicros() {
		return fmt.Errorf("%w: rate limit %q: %d events per %v is more than one a microsecond", ErrInvalid, l.Label(), l.Rate, l.Period)
	}
	if l.Burst < 0 || l.Burst > MaxRate {
		return fmt.Errorf("%w: rate limit %q: Burst %d is out of bounds", ErrInvalid, l.Label(), l.Burst)
	}
	if l.Burst != 0 && l.Window {
		return fmt.Errorf("%w: rate limit %q: a window limit has no Burst", ErrInvalid, l.Label())
	}
	if !l.Window && int64(l.Size()) > 10*int64(MaxRatePeriod/time.Microsecond)/l.IntervalMicros() {
		return fmt.Errorf("%w: rate limit %q: Burst %d at %d per %v spans more than %v", ErrInvalid, l.Label(), l.Size(), l.Rate, l.Period, 10*MaxRatePeriod)
	}
	if n < 1 || n > l.Size() {
		return fmt.Errorf("%w: rate limit %q: %d events asked of a limit that allows 1 to %d at once", ErrInvalid, l.Label(), n, l.Size())
	}
	return nil
}

// RateDecision is the answer of [RateLimiter.Allow].
type RateDecision struct {
	// Allowed reports whether the events were recorded.
	Allowed bool
	// Remaining is how many more events would be allowed now, after this
	// decision (floored, never rounded up).
	Remaining int
	// RetryAfter is how long until the events asked for would be allowed;
	// zero when Allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to its full allowance
	// (and its state may be forgotten).
	ResetAfter time.Duration
}

// ErrRateLimited is returned by [WaitRate] when the events cannot be
// allowed before ctx ends.
var ErrRateLimited = errors.New("coord: rate limited")

// WaitRate waits until limit allows n events on key and records them. It
// returns at once, with an error joining [ErrRateLimited] and
// [context.DeadlineExceeded], when ctx's deadline comes before the time
// the events would be allowed (the rule of golang.org/x/time/rate's
// Wait); when ctx ends while it waits, with an error joining
// ErrRateLimited and ctx's error. Errors of Allow are returned as they
// are: it never waits through [ErrUnavailable].
func WaitRate(ctx context.Context, rl RateLimiter, key string, limit Limit, n int) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		d, err := rl.Allow(ctx, key, limit, n)
		if err != nil {
			return err
		}
		if d.Allowed {
			return nil
		}
		wait := max(d.RetryAfter, time.Microsecond)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return errors.Join(
				fmt.Errorf("%w: %q under %s: allowed in %v, after the deadline", ErrRateLimited, key, limit, d.RetryAfter),
				context.DeadlineExceeded)
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%w: %q under %s", ErrRateLimited, key, limit), ctx.Err())
		}
	}
}
