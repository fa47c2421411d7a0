package coord

import "errors"

// Sentinel errors. Backends wrap them with %w, so callers test with
// [errors.Is] and never by message.
var (
	// ErrNotAcquired is returned by [Locker.Acquire] when the lock is held
	// by someone else and the wait budget (retries, or ctx) ran out. When ctx
	// ended the wait, the error is errors.Join(ErrNotAcquired, ctx.Err()).
	ErrNotAcquired = errors.New("coord: lock not acquired")

	// ErrNotHeld is returned by [Lock.Release], [Lock.Extend] and [Lock.TTL]
	// when the lease is no longer this holder's: someone else holds the
	// resource now, or (see [ErrExpired]) nobody does.
	ErrNotHeld = errors.New("coord: lock not held")

	// ErrExpired is returned when a lease ran out (or was force-released)
	// and nobody holds the resource now. It wraps [ErrNotHeld], so a test
	// for ErrNotHeld catches both cases.
	ErrExpired = &wrapped{msg: "coord: lease expired", base: ErrNotHeld}

	// ErrLeaseLost is the cause given to the context of [WithLock]'s
	// function when its lease is lost while the function runs, and is
	// wrapped by WithLock's error in that case.
	ErrLeaseLost = errors.New("coord: lease lost")

	// ErrNotFound is returned for a session that does not exist, has
	// expired, or was never issued by this store.
	ErrNotFound = errors.New("coord: not found")

	// ErrClosed is returned by every method called after the Backend (or
	// the part of it that owns the method) was closed.
	ErrClosed = errors.New("coord: closed")

	// ErrInvalid is returned for bad input: empty or oversized names,
	// invalid globs, payloads over the limit, data that cannot be encoded,
	// non-positive TTLs, malformed tokens, and data read from the backend
	// that fails validation. Nothing stored is changed when it is returned.
	ErrInvalid = errors.New("coord: invalid argument")

	// ErrUnavailable is returned when the backend cannot be reached or
	// answered with an error that is not about the request itself.
	ErrUnavailable = errors.New("coord: backend unavailable")

	// ErrUnsupported is returned by every method of a part a backend does
	// not provide (for example [Backend.Streams] on a backend without
	// streams). It wraps the standard library's [errors.ErrUnsupported].
	ErrUnsupported = &wrapped{msg: "coord: unsupported by this backend", base: errors.ErrUnsupported}
)

// wrapped is an error that unwraps to base, for sentinels that refine
// another sentinel.
type wrapped struct {
	msg  string
	base error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.base }
