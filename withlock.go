package coord

import (
	"context"
	"errors"
	"fmt"
)

// WithLock runs fn while holding the lease on resource. The lease is
// renewed automatically while fn runs (opts may set its TTL and how long
// to wait for it). fn's context carries the lease: [LockFromContext]
// returns it, so fn can pass its [Lock.Fence] along with its writes. If
// the lease is lost, fn's context is cancelled with
// cause [ErrLeaseLost] and WithLock's error wraps ErrLeaseLost. The lease
// is released when fn returns, even if ctx was cancelled meanwhile; when
// that Release fails, the lease is still given up (see [Lock]'s Release):
// WithLock never returns leaving a lease that is still renewed.
//
// It returns the error of Acquire, or fn's error joined with the error of
// Release (or with ErrLeaseLost).
func WithLock(ctx context.Context, l Locker, resource string, fn func(ctx context.Context) error, opts ...LockOption) (err error) {
	opts = append(opts[:len(opts):len(opts)], WithAutoRenew())
	lock, err := l.Acquire(ctx, resource, opts...)
	if err != nil {
		return err
	}
	if lock == nil { // a broken Locker, such as a mock told no Return
		return fmt.Errorf("%w: Acquire of %q returned neither a lease nor an error", ErrInvalid, resource)
	}
	fctx, cancel := context.WithCancelCause(ContextWithLock(ctx, lock))
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
	defer func() {
		close(stop)
		<-watched
		lost := false
		select {
		case <-lock.Done():
			lost = true
		default:
		}
		cancel(nil)
		rerr := lock.Release(context.WithoutCancel(ctx))
		if lost {
			err = errors.Join(err, fmt.Errorf("%w on %q", ErrLeaseLost, resource))
			return
		}
		err = errors.Join(err, rerr)
	}()
	return fn(fctx)
}

// lockKey is the context key of the lease [ContextWithLock] stores.
type lockKey struct{}

// ContextWithLock returns a copy of ctx that carries lock, for
// [LockFromContext]. [WithLock] and [RunEvery] give their function such a
// context; a helper of its own that runs a function under a lease (or a
// test of such a function) can do the same.
func ContextWithLock(ctx context.Context, lock Lock) context.Context {
	return context.WithValue(ctx, lockKey{}, lock)
}

// LockFromContext returns the lease ctx carries: the lease under which
// [WithLock], [RunEvery] (or another helper that calls [ContextWithLock])
// runs the function that was given ctx, the innermost one when they nest.
// It reports false when ctx carries none. The lease may have been lost
// since (see [Lock.Done]); its [Lock.Fence] is the one to send with every
// write the function makes, so a store that checks fences refuses the
// writes of a holder whose lease has passed to another.
func LockFromContext(ctx context.Context) (Lock, bool) {
	l, ok := ctx.Value(lockKey{}).(Lock)
	return l, ok && l != nil
}
