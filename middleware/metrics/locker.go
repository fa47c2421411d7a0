package metrics

import (
	"context"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Locker decorates next with metrics: operation latency and errors,
// distributed_lock_acquisitions_total, lock wait and hold times, lost
// leases, and distributed_locks_active (read from next's Held at each
// scrape). The Locks it returns are decorated too; Held returns next's
// leases as next returns them. A nil m or next gives next unchanged.
func (m *Middleware) Locker(next coord.Locker) coord.Locker {
	if m == nil || next == nil {
		return next
	}
	m.state.addLocker(next)
	return &locker{m: m, next: next}
}

type locker struct {
	m    *Middleware
	next coord.Locker
}

var _ coord.Locker = (*locker)(nil)

// Unwrap returns the decorated Locker.
func (l *locker) Unwrap() coord.Locker { return l.next }

// As forwards to the decorated Locker (see coord.As).
func (l *locker) As(target any) bool { return coord.As(l.next, target) }

func (l *locker) Acquire(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	m := l.m
	start := m.clock.Now()
	lk, err := l.next.Acquire(ctx, resource, opts...)
	now := m.clock.Now()
	noLease := err != nil || lk == nil
	m.hist.acquire(now, now-start, err != nil, noLease, m.acquire.get(resource))
	if err != nil {
		m.errorsOf(obs.LockAcquire, obs.KindOf(err)).Inc()
	}
	if noLease {
		return lk, err
	}
	return &lock{m: m, next: lk, start: now}, nil
}

func (l *locker) Locked(ctx context.Context, resource string) (held bool, err error) {
	defer l.m.done(obs.LockLocked, l.m.clock.Now(), &err)
	return l.next.Locked(ctx, resource)
}

func (l *locker) ForceRelease(ctx context.Context, resource string) (released bool, err error) {
	defer l.m.done(obs.LockForceRelease, l.m.clock.Now(), &err)
	return l.next.ForceRelease(ctx, resource)
}

func (l *locker) Held() []coord.Lock { return l.next.Held() }

// lock decorates one lease. It observes the hold time once, when the lease
// ends: at a successful Release, or when Release, Extend or TTL find it
// lost. A lease found lost also counts in lock_leases_lost_total.
//
// A pair of Acquire and Release reads the clock four times, at the start
// and end of each: the end of Acquire also starts the hold time and the
// end of Release ends it, so four is the fewest that time both operations
// and the hold between them.
type lock struct {
	m     *Middleware
	next  coord.Lock
	start time.Duration // m.clock reading at acquisition; keys its shard
	ended bool          // the hold time was observed; guarded by the shard's mutex
}

var _ coord.Lock = (*lock)(nil)

// Unwrap returns the decorated Lock.
func (l *lock) Unwrap() coord.Lock { return l.next }

// As forwards to the decorated Lock when it implements coord.Aser.
func (l *lock) As(target any) bool {
	a, ok := l.next.(coord.Aser)
	return ok && a.As(target)
}

func (l *lock) Resource() string      { return l.next.Resource() }
func (l *lock) Token() string         { return l.next.Token() }
func (l *lock) Fence() int64          { return l.next.Fence() }
func (l *lock) Done() <-chan struct{} { return l.next.Done() }

func (l *lock) TTL(ctx context.Context) (time.Duration, error) {
	start := l.m.clock.Now()
	ttl, err := l.next.TTL(ctx)
	l.record(obs.LockTTL, start, err, obs.IsLeaseLost(err))
	return ttl, err
}

func (l *lock) Extend(ctx context.Context, ttl time.Duration) error {
	start := l.m.clock.Now()
	err := l.next.Extend(ctx, ttl)
	l.record(obs.LockExtend, start, err, obs.IsLeaseLost(err))
	return err
}

// Release ends the lease, whatever it returns: a lease whose Release
// failed is no longer renewed and ends at its TTL at the latest (see
// [coord.Lock]), so its hold time ends here. A Release that finds the
// lease gone (ErrNotHeld or ErrExpired) counts it lost. Done is not
// consulted: a backend may make its channel only when asked for it.
func (l *lock) Release(ctx context.Context) error {
	start := l.m.clock.Now()
	err := l.next.Release(ctx)
	l.record(obs.LockRelease, start, err, true)
	return err
}

// record records op, started at start (a reading of the clock) and ending
// now with err; ends says whether the lease ended with it. The call that
// sees the lease end records its hold time and, when err says the lease
// was lost, counts it lost.
func (l *lock) record(op obs.Op, start time.Duration, err error, ends bool) {
	m := l.m
	now := m.clock.Now()
	ended := m.hist.lease(l, op, now, now-start, err != nil, ends)
	if err == nil {
		return
	}
	m.errorsOf(op, obs.KindOf(err)).Inc()
	if ended && obs.IsLeaseLost(err) {
		m.leasesLost.Inc()
	}
}
