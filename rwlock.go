package coord

import "context"

// RWLocker hands out shared (read) and exclusive (write) leases on named
// resources. While a writer waits, new readers wait too, so a stream of
// overlapping readers cannot starve a writer. Every lease it returns is a
// full [Lock]: token, a fence from the resource's one counter, TTL,
// Extend, auto-renew, Done and the Release rules. There is no reentrancy
// and no upgrade from read to write. A RWLocker is safe for concurrent use
// by multiple goroutines.
//
// A backend without read-write locks returns one whose methods fail with
// [ErrUnsupported].
type RWLocker interface {
	// RLock takes a shared lease on resource, waiting (as
	// [Locker.Acquire] does) while a writer holds it or waits for it.
	// May return [ErrNotAcquired] (joined with ctx.Err() when ctx ended
	// the wait), [ErrInvalid], [ErrClosed] or [ErrUnavailable].
	RLock(ctx context.Context, resource string, opts ...LockOption) (Lock, error)
	// Lock takes the exclusive lease on resource: no reader and no other
	// writer holds it while it is held. Errors as for RLock.
	Lock(ctx context.Context, resource string, opts ...LockOption) (Lock, error)
	// State reports the holders of resource now.
	State(ctx context.Context, resource string) (RWState, error)
	// ForceRelease ends every read and write lease on resource, whoever
	// holds them, and wakes the waiters. It reports whether there was
	// one. Holders learn of it at their next Extend, Release or renewal.
	ForceRelease(ctx context.Context, resource string) (bool, error)
}

// RWState is the state of one read-write resource at one moment.
type RWState struct {
	// Readers is the number of live read leases.
	Readers int
	// Writer reports whether a write lease is held.
	Writer bool
	// WritersWaiting is the number of writers whose intent to write is
	// live (they hold new readers back).
	WritersWaiting int
}
