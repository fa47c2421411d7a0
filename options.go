package coord

import (
	"fmt"
	"time"
)

// Defaults, as the Node design fixes them.
const (
	// DefaultLockTTL is the lease length when [WithTTL] is not given.
	DefaultLockTTL = 10 * time.Second
	// DefaultRetries is how many times Acquire tries again after the first
	// try finds the resource held, when [WithRetry] is not given.
	DefaultRetries = 3
	// DefaultRetryDelay is the longest Acquire waits between tries when
	// no release wakes it, when [WithRetry] is not given.
	DefaultRetryDelay = 100 * time.Millisecond
	// DefaultSessionTTL is a session's idle TTL when [WithIdleTTL] is not
	// given and the store sets no other default.
	DefaultSessionTTL = 24 * time.Hour
	// DefaultQueueSize is an event subscription's queue length when
	// [WithQueueSize] is not given.
	DefaultQueueSize = 1024
	// DefaultInvalidationQueueSize is an invalidation subscription's queue
	// length when [WithQueueSize] is not given: invalidations are small,
	// and a queue that absorbs a few milliseconds of a flood while the
	// subscriber waits for a CPU spares a near cache a full purge. The
	// backends grow a queue's buffer only as far as it fills.
	DefaultInvalidationQueueSize = 8 * DefaultQueueSize
)

// LockOptions are the resolved options of one Acquire. Backends get them
// from [NewLockOptions].
type LockOptions struct {
	// TTL is the lease length. Default: [DefaultLockTTL].
	TTL time.Duration
	// Retries is how many more tries follow a first try that found the
	// resource held; -1 means keep trying until ctx ends.
	// Default: [DefaultRetries].
	Retries int
	// RetryDelay is the longest wait between tries; a release (or the
	// holder's lease running out) ends the wait sooner.
	// Default: [DefaultRetryDelay].
	RetryDelay time.Duration
	// AutoRenew keeps the lease alive while held: a watchdog extends it
	// every TTL/3 and closes Done on the first definite loss.
	// Default: false.
	AutoRenew bool

	// wait records that [WithWait] set Retries to -1: a negative count
	// given to [WithRetry] is refused, not read as "wait".
	wait bool
}

// LockOption sets an option of [Locker.Acquire].
type LockOption func(*LockOptions)

// WithTTL sets the lease length. It must be at least 1ms.
func WithTTL(ttl time.Duration) LockOption {
	return func(o *LockOptions) { o.TTL = ttl }
}

// WithRetry sets how many more times Acquire tries after finding the
// resource held, and the longest wait between tries. A release wakes a
// waiting Acquire at once. WithRetry(0, 0) tries once. Both must be 0 or
// more (use [WithWait] to wait until ctx ends).
func WithRetry(retries int, delay time.Duration) LockOption {
	return func(o *LockOptions) { o.Retries, o.RetryDelay, o.wait = retries, delay, false }
}

// WithWait makes Acquire wait until it gets the lease or ctx ends, however
// long that takes. Waiters are woken by releases; maxDelay bounds the
// wait between tries when no wake-up comes (0 keeps the retry delay,
// [DefaultRetryDelay] unless [WithRetry] set another); a negative one is
// refused.
func WithWait(maxDelay time.Duration) LockOption {
	return func(o *LockOptions) {
		o.Retries, o.wait = -1, true
		if maxDelay != 0 {
			o.RetryDelay = maxDelay
		}
	}
}

// WithAutoRenew keeps the lease alive while it is held: it is extended
// every TTL/3, and Done is closed on the first definite loss.
func WithAutoRenew() LockOption {
	return func(o *LockOptions) { o.AutoRenew = true }
}

// NewLockOptions applies opts over the defaults and validates the result.
// The error wraps [ErrInvalid].
func NewLockOptions(opts ...LockOption) (LockOptions, error) {
	o := LockOptions{TTL: DefaultLockTTL, Retries: DefaultRetries, RetryDelay: DefaultRetryDelay}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if err := ValidateTTL("lock TTL", o.TTL); err != nil {
		return o, err
	}
	if o.Retries < 0 && !(o.wait && o.Retries == -1) {
		return o, fmt.Errorf("%w: lock retries %d is negative (use WithWait to wait)", ErrInvalid, o.Retries)
	}
	if o.RetryDelay < 0 {
		return o, fmt.Errorf("%w: lock retry delay %v is negative", ErrInvalid, o.RetryDelay)
	}
	return o, nil
}

// SessionOptions are the resolved options of one [SessionStore.Create].
type SessionOptions struct {
	// IdleTTL is how long the session lives without a Touch or Extend.
	// Default: the store's, else [DefaultSessionTTL].
	IdleTTL time.Duration
	// Lifetime is the absolute limit on the session's life from its
	// creation, which no Touch or Extend can pass; 0 means none.
	// Default: the store's, else 0.
	Lifetime time.Duration

	// idleSet and lifeSet record that an option set IdleTTL or
	// Lifetime, so that no value a caller can pass stands for "not set".
	idleSet, lifeSet bool
}

// SessionOption sets an option of [SessionStore.Create].
type SessionOption func(*SessionOptions)

// WithIdleTTL sets the session's idle TTL. It must be at least 1ms.
func WithIdleTTL(ttl time.Duration) SessionOption {
	return func(o *SessionOptions) { o.IdleTTL, o.idleSet = ttl, true }
}

// WithLifetime sets the session's absolute lifetime. It must be at least
// 1ms.
func WithLifetime(d time.Duration) SessionOption {
	return func(o *SessionOptions) { o.Lifetime, o.lifeSet = d, true }
}

// NewSessionOptions applies opts over defaults (whose zero fields mean
// [DefaultSessionTTL] and no lifetime) and validates the result: every
// duration an option sets must be at least 1ms, and a default may not be
// negative. The error wraps [ErrInvalid].
func NewSessionOptions(defaults SessionOptions, opts ...SessionOption) (SessionOptions, error) {
	var o SessionOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	switch {
	case o.idleSet:
		if err := ValidateTTL("session idle TTL", o.IdleTTL); err != nil {
			return o, err
		}
	case defaults.IdleTTL == 0:
		o.IdleTTL = DefaultSessionTTL
	default:
		if err := ValidateTTL("default session idle TTL", defaults.IdleTTL); err != nil {
			return o, err
		}
		o.IdleTTL = defaults.IdleTTL
	}
	switch {
	case o.lifeSet:
		if err := ValidateTTL("session lifetime", o.Lifetime); err != nil {
			return o, err
		}
	case defaults.Lifetime == 0:
	default:
		if err := ValidateTTL("default session lifetime", defaults.Lifetime); err != nil {
			return o, err
		}
		o.Lifetime = defaults.Lifetime
	}
	return o, nil
}

// SubscribeOptions are the resolved options of one Subscribe.
type SubscribeOptions struct {
	// IncludeOwn delivers this instance's own messages too.
	// Default: false.
	IncludeOwn bool
	// Key, when set, limits an invalidation subscription to invalidations
	// that cover this key (and PurgeAll). Default: "" (all; [OnlyKey]
	// refuses an empty key).
	Key string
	// QueueSize is the length of the subscription's queue. When it is
	// full a message is dropped and counted; for an invalidation
	// subscription a PurgeAll follows once there is room.
	// Default: [DefaultInvalidationQueueSize] for an invalidation
	// subscription, [DefaultQueueSize] for an event subscription (a
	// backend option may set another).
	QueueSize int
	// Gaps asks for [GapStart] notices (see [NotifyGaps]). Default: false.
	Gaps bool

	// keySet records that [OnlyKey] was given, so that OnlyKey("") is
	// refused rather than read as "no filter".
	keySet bool
}

// SubscribeOption sets an option of Subscribe.
type SubscribeOption func(*SubscribeOptions)

// IncludeOwn makes a subscription receive this instance's own messages.
func IncludeOwn() SubscribeOption {
	return func(o *SubscribeOptions) { o.IncludeOwn = true }
}

// OnlyKey limits an invalidation subscription to the invalidations that
// cover key: the key itself, patterns matching it, and PurgeAll. It is
// ignored by event subscriptions. The key must be a valid name (see
// [ValidateName]): OnlyKey("") is refused, not read as "all keys".
func OnlyKey(key string) SubscribeOption {
	return func(o *SubscribeOptions) { o.Key, o.keySet = key, true }
}

// WithQueueSize sets the subscription's queue length (at least 1).
func WithQueueSize(n int) SubscribeOption {
	return func(o *SubscribeOptions) { o.QueueSize = n }
}

// NewSubscribeOptions applies opts over the defaults and validates the
// result. The error wraps [ErrInvalid].
func NewSubscribeOptions(opts ...SubscribeOption) (SubscribeOptions, error) {
	o := SubscribeOptions{QueueSize: DefaultQueueSize}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.QueueSize < 1 {
		return o, fmt.Errorf("%w: queue size %d must be at least 1", ErrInvalid, o.QueueSize)
	}
	if o.keySet || o.Key != "" {
		if err := ValidateName("key", o.Key); err != nil {
			return o, err
		}
	}
	return o, nil
}
