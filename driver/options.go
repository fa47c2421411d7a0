package driver

import (
	"fmt"

	"github.com/cgn-bot/coord"
)

// NewLockOptions applies opts over the defaults and validates the result.
// The error wraps [coord.ErrInvalid].
func NewLockOptions(opts ...coord.LockOption) (coord.LockOptions, error) {
	o := coord.LockOptions{TTL: coord.DefaultLockTTL, Retries: coord.DefaultRetries, RetryDelay: coord.DefaultRetryDelay}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if err := ValidateTTL("lock TTL", o.TTL); err != nil {
		return o, err
	}
	if o.Retries < 0 && !(o.Wait && o.Retries == -1) {
		return o, fmt.Errorf("%w: lock retries %d is negative (use WithWait to wait)", coord.ErrInvalid, o.Retries)
	}
	if o.RetryDelay < 0 {
		return o, fmt.Errorf("%w: lock retry delay %v is negative", coord.ErrInvalid, o.RetryDelay)
	}
	return o, nil
}

// NewSessionOptions applies opts over defaults (whose zero fields mean
// [coord.DefaultSessionTTL] and no lifetime) and validates the result: every
// duration an option sets must be at least 1ms, and a default may not be
// negative. The error wraps [coord.ErrInvalid].
func NewSessionOptions(defaults coord.SessionOptions, opts ...coord.SessionOption) (coord.SessionOptions, error) {
	var o coord.SessionOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	switch {
	case o.IdleTTLSet:
		if err := ValidateTTL("session idle TTL", o.IdleTTL); err != nil {
			return o, err
		}
	case defaults.IdleTTL == 0:
		o.IdleTTL = coord.DefaultSessionTTL
	default:
		if err := ValidateTTL("default session idle TTL", defaults.IdleTTL); err != nil {
			return o, err
		}
		o.IdleTTL = defaults.IdleTTL
	}
	switch {
	case o.LifetimeSet:
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

// NewSubscribeOptions applies opts over the defaults and validates the
// result. The error wraps [coord.ErrInvalid].
func NewSubscribeOptions(opts ...coord.SubscribeOption) (coord.SubscribeOptions, error) {
	o := coord.SubscribeOptions{QueueSize: coord.DefaultQueueSize}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.QueueSize < 1 {
		return o, fmt.Errorf("%w: queue size %d must be at least 1", coord.ErrInvalid, o.QueueSize)
	}
	if o.KeySet || o.Key != "" {
		if err := ValidateName("key", o.Key); err != nil {
			return o, err
		}
	}
	return o, nil
}
