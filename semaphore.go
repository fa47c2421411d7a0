package coord

import "context"

// Semaphores hands out permits: at most limit leases on one resource at
// once. Each permit is a full [Lock] (token, fence from the resource's
// counter, TTL, Extend, auto-renew, Done), so a crashed holder's permit
// frees itself when its TTL runs out. The limit is each caller's argument,
// not state kept on the server: callers passing different limits for one
// resource each enforce their own bound on the shared set of holders.
// A Semaphores is safe for concurrent use by multiple goroutines.
//
// A backend without semaphores returns one whose methods fail with
// [ErrUnsupported].
type Semaphores interface {
	// Acquire takes a permit on resource when fewer than limit are held,
	// waiting (as [Locker.Acquire] does) for one to be freed. A limit
	// below 1 is [ErrInvalid]. May return [ErrNotAcquired] (joined with
	// ctx.Err() when ctx ended the wait), [ErrInvalid], [ErrClosed] or
	// [ErrUnavailable].
	Acquire(ctx context.Context, resource string, limit int, opts ...LockOption) (Lock, error)
	// Holders returns the number of live permits on resource.
	Holders(ctx context.Context, resource string) (int, error)
	// ForceRelease ends every permit on resource and wakes the waiters.
	// It returns how many permits it ended.
	ForceRelease(ctx context.Context, resource string) (int, error)
}
