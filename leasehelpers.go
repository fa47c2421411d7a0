package coord

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// leaseKey is the context key under which the helpers of this file put
// the lease fn runs under.
type leaseKey struct{}

// leaseFrom returns the lease a helper of this file put in ctx.
func leaseFrom(ctx context.Context) (Lock, bool) {
	l, ok := ctx.Value(leaseKey{}).(Lock)
	return l, ok
}

// WithRLock runs fn while holding a shared (read) lease on resource, as
// [WithLock] runs fn under the exclusive lease: the lease is renewed while
// fn runs, fn's context is cancelled with cause [ErrLeaseLost] if it is
// lost, and it is released when fn returns.
func WithRLock(ctx context.Context, rw RWLocker, resource string, fn func(ctx context.Context) error, opts ...LockOption) error {
	return withLease(ctx, resource, fn, func(ctx context.Context, opts []LockOption) (Lock, error) {
		return rw.RLock(ctx, resource, opts...)
	}, opts)
}

// WithWriteLock runs fn while holding the exclusive (write) lease on
// resource of rw, with the rules of [WithLock].
func WithWriteLock(ctx context.Context, rw RWLocker, resource string, fn func(ctx context.Context) error, opts ...LockOption) error {
	return withLease(ctx, resource, fn, func(ctx context.Context, opts []LockOption) (Lock, error) {
		return rw.Lock(ctx, resource, opts...)
	}, opts)
}

// WithPermit runs fn while holding one of at most limit permits on
// resource, with the rules of [WithLock].
func WithPermit(ctx context.Context, s Semaphores, resource string, limit int, fn func(ctx context.Context) error, opts ...LockOption) error {
	return withLease(ctx, resource, fn, func(ctx context.Context, opts []LockOption) (Lock, error) {
		return s.Acquire(ctx, resource, limit, opts...)
	}, opts)
}

// RunElected takes part in election until ctx ends: it campaigns
// (proclaiming identity), runs fn while this instance leads, and after fn
// returns resigns and campaigns again. The leadership is renewed while fn
// runs; when it is lost, fn's context is cancelled with cause
// [ErrLeaseLost], and RunElected waits for fn to return before it
// campaigns again. fn is never called without leadership, and never twice
// at once; it gets the leadership (its Fence is the term, to fence the
// leader's writes).
//
// RunElected returns when ctx ends, with ctx.Err(); when fn returns an
// error other than one caused by the loss of leadership (its ctx's
// cause is ErrLeaseLost), it resigns and returns that error; and when
// Campaign fails otherwise than by waiting too long or by an unavailable
// backend (ErrInvalid, ErrClosed), it returns that error; after those two
// it campaigns again [DefaultRetryDelay] later. opts are Campaign's;
// RunElected adds [WithWait] and [WithAutoRenew] to them.
func RunElected(ctx context.Context, e Elector, election, identity string, fn func(ctx context.Context, l Leadership) error, opts ...LockOption) error {
	opts = append(opts[:len(opts):len(opts)], WithWait(0), WithAutoRenew())
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l, err := e.Campaign(ctx, election, identity, opts...)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, ErrNotAcquired) && !errors.Is(err, ErrUnavailable) {
				return err
			}
			// A wait that ran out, or a backend that will be back: try
			// again after a pause, so an outage is not a busy loop.
			if err := pause(ctx, DefaultRetryDelay); err != nil {
				return err
			}
			continue
		}
		if l == nil { // a broken Elector, such as a mock told no Return
			return fmt.Errorf("%w: Campaign of %q returned neither a leadership nor an error", ErrInvalid, election)
		}
		lost, ferr := runHeld(ctx, l, func(ctx context.Context) error { return fn(ctx, l) })
		if ferr != nil && !lost {
			return ferr
		}
	}
}

// pause waits d or until ctx ends, and returns ctx.Err() if it ended.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// withLease acquires a lease with acquire (auto-renew added to opts) and
// runs fn under it; see [WithLock].
func withLease(ctx context.Context, resource string, fn func(ctx context.Context) error, acquire func(context.Context, []LockOption) (Lock, error), opts []LockOption) error {
	opts = append(opts[:len(opts):len(opts)], WithAutoRenew())
	l, err := acquire(ctx, opts)
	if err != nil {
		return err
	}
	if l == nil { // a broken part, such as a mock told no Return
		return fmt.Errorf("%w: acquiring %q returned neither a lease nor an error", ErrInvalid, resource)
	}
	lost, err := runHeld(ctx, l, fn)
	if lost {
		return errors.Join(err, fmt.Errorf("%w on %q", ErrLeaseLost, resource))
	}
	return err
}

// runHeld runs fn under the held lease l: fn's context carries l and is
// cancelled with cause [ErrLeaseLost] when l ends before fn returns. When
// fn returns, l is released (with a context that is not cancelled). It
// reports whether the lease was lost, and returns fn's error joined with
// Release's (Release's error is left out when the lease was lost: the
// loss says it all).
func runHeld(ctx context.Context, l Lock, fn func(ctx context.Context) error) (lost bool, err error) {
	fctx, cancel := context.WithCancelCause(context.WithValue(ctx, leaseKey{}, l))
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-l.Done():
			cancel(ErrLeaseLost)
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		<-watched
		select {
		case <-l.Done():
			lost = true
		default:
		}
		cancel(nil)
		rerr := l.Release(context.WithoutCancel(ctx))
		if !lost {
			err = errors.Join(err, rerr)
		}
	}()
	return false, fn(fctx)
}
