package metrics

import (
	"context"
	"sync/atomic"
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
	d := now - start
	m.observe(obs.LockAcquire, d, err)
	c := m.acquire.get(resource)
	if err != nil || lk == nil {
		c.failed.Inc()
		m.hist.lockWait(d, true)
		return lk, err
	}
	c.acquired.Inc()
	m.hist.lockWait(d, false)
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
type lock struct {
	m     *Middleware
	next  coord.Lock
	start time.Duration // m.clock reading at acquisition
	ended atomic.Bool   // the hold time was observed
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
	m := l.m
	start := m.clock.Now()
	ttl, err := l.next.TTL(ctx)
	now := m.clock.Now()
	m.observe(obs.LockTTL, now-start, err)
	if obs.IsLeaseLost(err) {
		l.end(now, true)
	}
	return ttl, err
}

func (l *lock) Extend(ctx context.Context, ttl time.Duration) error {
	m := l.m
	start := m.clock.Now()
	err := l.next.Extend(ctx, ttl)
	now := m.clock.Now()
	m.observe(obs.LockExtend, now-start, err)
	if obs.IsLeaseLost(err) {
		l.end(now, true)
	}
	return err
}

// Release ends the lease. A Release that finds the lease gone
// (ErrNotHeld or ErrExpired) counts it lost. Done is not consulted: a
// backend may make its channel only when asked for it.
func (l *lock) Release(ctx context.Context) error {
	m := l.m
	start := m.clock.Now()
	err := l.next.Release(ctx)
	now := m.clock.Now()
	m.observe(obs.LockRelease, now-start, err)
	if lost := obs.IsLeaseLost(err); err == nil || lost || obs.KindOf(err) == obs.Closed {
		l.end(now, lost)
	}
	return err
}

func (l *lock) end(now time.Duration, lost bool) {
	if !l.ended.CompareAndSwap(false, true) {
		return
	}
	l.m.hist.lockHold(now - l.start)
	if lost {
		l.m.leasesLost.Inc()
	}
}
