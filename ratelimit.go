package coord

import (
	"context"
	"time"
)

// RateLimiter limits how often events on a key may happen, across every
// instance, on the backend's clock. It never allows on error. A
// RateLimiter is safe for concurrent use by multiple goroutines.
//
// A backend without rate limiting returns one whose methods fail with
// [ErrUnsupported].
type RateLimiter interface {
	// Allow records n events on key if limit allows all n now (all or
	// nothing) and reports the decision. May return [ErrInvalid],
	// [ErrClosed] or [ErrUnavailable]; never an allowed decision with an
	// error.
	Allow(ctx context.Context, key string, limit Limit, n int) (RateDecision, error)
	// Reset forgets key's history.
	Reset(ctx context.Context, key string) error
}

// Limit says how often events may happen. By default it is a GCRA limit:
// Rate events per Period sustained, Burst at once. With Window set it is
// a sliding window: never more than Rate events in any window of length
// Period.
type Limit struct {
	// Rate is the number of events allowed per Period.
	Rate int
	// Period is the length of time Rate is counted over.
	Period time.Duration
	// Burst is how many events may happen at once (GCRA only); 0 means
	// Rate.
	Burst int
	// Window selects the exact sliding window, which costs memory per
	// event in the window.
	Window bool
}

// RateDecision is the answer of [RateLimiter.Allow].
type RateDecision struct {
	// Allowed reports whether the events were recorded.
	Allowed bool
	// Remaining is how many more events would be allowed now.
	Remaining int
	// RetryAfter is how long until the events asked for would be allowed;
	// zero when Allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to its full allowance.
	ResetAfter time.Duration
}
