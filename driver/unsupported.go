package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
)

// Unsupported returns the error every method of a missing part returns:
// it wraps [coord.ErrUnsupported] and names the part and the method.
func Unsupported(part, method string) error {
	return fmt.Errorf("%w: %s.%s", coord.ErrUnsupported, part, method)
}

// UnsupportedRWLocker is the [coord.RWLocker] of a backend without
// read-write locks: every method fails with [coord.ErrUnsupported].
type UnsupportedRWLocker struct{}

var _ coord.RWLocker = UnsupportedRWLocker{}

// RLock fails with [coord.ErrUnsupported].
func (UnsupportedRWLocker) RLock(context.Context, string, ...coord.LockOption) (coord.Lock, error) {
	return nil, Unsupported("RWLocker", "RLock")
}

// Lock fails with [coord.ErrUnsupported].
func (UnsupportedRWLocker) Lock(context.Context, string, ...coord.LockOption) (coord.Lock, error) {
	return nil, Unsupported("RWLocker", "Lock")
}

// State fails with [coord.ErrUnsupported].
func (UnsupportedRWLocker) State(context.Context, string) (coord.RWState, error) {
	return coord.RWState{}, Unsupported("RWLocker", "State")
}

// ForceRelease fails with [coord.ErrUnsupported].
func (UnsupportedRWLocker) ForceRelease(context.Context, string) (bool, error) {
	return false, Unsupported("RWLocker", "ForceRelease")
}

// UnsupportedSemaphores is the [coord.Semaphores] of a backend without
// semaphores: every method fails with [coord.ErrUnsupported].
type UnsupportedSemaphores struct{}

var _ coord.Semaphores = UnsupportedSemaphores{}

// Acquire fails with [coord.ErrUnsupported].
func (UnsupportedSemaphores) Acquire(context.Context, string, int, ...coord.LockOption) (coord.Lock, error) {
	return nil, Unsupported("Semaphores", "Acquire")
}

// Holders fails with [coord.ErrUnsupported].
func (UnsupportedSemaphores) Holders(context.Context, string) (int, error) {
	return 0, Unsupported("Semaphores", "Holders")
}

// ForceRelease fails with [coord.ErrUnsupported].
func (UnsupportedSemaphores) ForceRelease(context.Context, string) (int, error) {
	return 0, Unsupported("Semaphores", "ForceRelease")
}

// UnsupportedElector is the [coord.Elector] of a backend without
// elections: every method fails with [coord.ErrUnsupported].
type UnsupportedElector struct{}

var _ coord.Elector = UnsupportedElector{}

// Campaign fails with [coord.ErrUnsupported].
func (UnsupportedElector) Campaign(context.Context, string, string, ...coord.LockOption) (coord.Leadership, error) {
	return nil, Unsupported("Elector", "Campaign")
}

// Leader fails with [coord.ErrUnsupported].
func (UnsupportedElector) Leader(context.Context, string) (coord.LeaderInfo, error) {
	return coord.LeaderInfo{}, Unsupported("Elector", "Leader")
}

// Observe fails with [coord.ErrUnsupported].
func (UnsupportedElector) Observe(context.Context, string, func(coord.LeaderInfo), ...coord.SubscribeOption) (coord.Subscription, error) {
	return nil, Unsupported("Elector", "Observe")
}

// ForceRelease fails with [coord.ErrUnsupported].
func (UnsupportedElector) ForceRelease(context.Context, string) (bool, error) {
	return false, Unsupported("Elector", "ForceRelease")
}

// UnsupportedJobs is the [coord.Jobs] of a backend without it: every
// method fails with [coord.ErrUnsupported].
type UnsupportedJobs struct{}

var _ coord.Jobs = UnsupportedJobs{}

// Due fails with [coord.ErrUnsupported].
func (UnsupportedJobs) Due(context.Context, string, time.Duration) (coord.JobSlot, error) {
	return coord.JobSlot{}, Unsupported("Jobs", "Due")
}

// Complete fails with [coord.ErrUnsupported].
func (UnsupportedJobs) Complete(context.Context, string, coord.JobSlot) error {
	return Unsupported("Jobs", "Complete")
}

// Fail fails with [coord.ErrUnsupported].
func (UnsupportedJobs) Fail(context.Context, string, coord.JobSlot) error {
	return Unsupported("Jobs", "Fail")
}

// UnsupportedRateLimiter is the [coord.RateLimiter] of a backend without
// rate limiting: every method fails with [coord.ErrUnsupported].
type UnsupportedRateLimiter struct{}

var _ coord.RateLimiter = UnsupportedRateLimiter{}

// Allow fails with [coord.ErrUnsupported]; its decision never allows.
func (UnsupportedRateLimiter) Allow(context.Context, string, coord.Limit, int) (coord.RateDecision, error) {
	return coord.RateDecision{}, Unsupported("RateLimiter", "Allow")
}

// Peek fails with [coord.ErrUnsupported]; its decision never allows.
func (UnsupportedRateLimiter) Peek(context.Context, string, coord.Limit) (coord.RateDecision, error) {
	return coord.RateDecision{}, Unsupported("RateLimiter", "Peek")
}

// Reset fails with [coord.ErrUnsupported].
func (UnsupportedRateLimiter) Reset(context.Context, string) error {
	return Unsupported("RateLimiter", "Reset")
}

// UnsupportedStreams is the [coord.Streams] of a backend without streams:
// every method fails with [coord.ErrUnsupported].
type UnsupportedStreams struct{}

var _ coord.Streams = UnsupportedStreams{}

// Append fails with [coord.ErrUnsupported].
func (UnsupportedStreams) Append(context.Context, string, any) (string, error) {
	return "", Unsupported("Streams", "Append")
}

// Consume fails with [coord.ErrUnsupported].
func (UnsupportedStreams) Consume(context.Context, string, string, func(context.Context, coord.StreamEntry) error, ...coord.ConsumeOption) (coord.Subscription, error) {
	return nil, Unsupported("Streams", "Consume")
}

// Range fails with [coord.ErrUnsupported].
func (UnsupportedStreams) Range(context.Context, string, string, int) ([]coord.StreamEntry, error) {
	return nil, Unsupported("Streams", "Range")
}

// Info fails with [coord.ErrUnsupported].
func (UnsupportedStreams) Info(context.Context, string) (coord.StreamInfo, error) {
	return coord.StreamInfo{}, Unsupported("Streams", "Info")
}

// DeadLetters fails with [coord.ErrUnsupported].
func (UnsupportedStreams) DeadLetters(context.Context, string, int) ([]coord.StreamEntry, error) {
	return nil, Unsupported("Streams", "DeadLetters")
}

// Trim fails with [coord.ErrUnsupported].
func (UnsupportedStreams) Trim(context.Context, string, coord.Retention) (int64, error) {
	return 0, Unsupported("Streams", "Trim")
}
