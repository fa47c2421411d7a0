package logging

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/secret"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Locker decorates next with logging. The Locks it returns are decorated
// too (when a record could be written at Acquire time): their Release,
// Extend and TTL are logged, and a lease found lost before its release is
// logged at the LeaseLost level. Held returns next's leases as next
// returns them. A nil m or next gives next unchanged.
func (m *Middleware) Locker(next coord.Locker) coord.Locker {
	if m == nil || next == nil {
		return next
	}
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
	if !m.on(ctx) {
		return l.next.Acquire(ctx, resource, opts...)
	}
	start := m.clock.Now()
	lk, err := l.next.Acquire(ctx, resource, opts...)
	now := m.clock.Now()
	if lvl, ok := m.level(ctx, err); ok {
		if err == nil && lk != nil {
			m.write(ctx, lvl, obs.LockAcquire, now-start, nil,
				name("resource", resource),
				slog.Int64("fence", lk.Fence()),
				slog.String("token", secret.Redact(lk.Token())))
		} else {
			m.write(ctx, lvl, obs.LockAcquire, now-start, err, name("resource", resource))
		}
	}
	if err != nil || lk == nil {
		return lk, err
	}
	return &lock{m: m, next: lk, start: now}, nil
}

func (l *locker) Locked(ctx context.Context, resource string) (bool, error) {
	m := l.m
	if !m.on(ctx) {
		return l.next.Locked(ctx, resource)
	}
	start := m.clock.Now()
	held, err := l.next.Locked(ctx, resource)
	m.done(ctx, obs.LockLocked, start, err, func() []slog.Attr {
		return []slog.Attr{name("resource", resource), slog.Bool("held", held)}
	})
	return held, err
}

func (l *locker) ForceRelease(ctx context.Context, resource string) (bool, error) {
	m := l.m
	if !m.on(ctx) {
		return l.next.ForceRelease(ctx, resource)
	}
	start := m.clock.Now()
	released, err := l.next.ForceRelease(ctx, resource)
	m.done(ctx, obs.LockForceRelease, start, err, func() []slog.Attr {
		return []slog.Attr{name("resource", resource), slog.Bool("released", released)}
	})
	return released, err
}

func (l *locker) Held() []coord.Lock { return l.next.Held() }

// lock decorates one lease and logs its loss once.
type lock struct {
	m     *Middleware
	next  coord.Lock
	start time.Duration // m.clock reading at acquisition
	ended atomic.Bool   // the lease's end was seen
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

// attrs returns the attributes that name the lease.
func (l *lock) attrs(extra ...slog.Attr) []slog.Attr {
	return append([]slog.Attr{
		name("resource", l.next.Resource()),
		slog.Int64("fence", l.next.Fence()),
		slog.String("token", secret.Redact(l.next.Token())),
	}, extra...)
}

func (l *lock) TTL(ctx context.Context) (time.Duration, error) {
	m := l.m
	start := m.clock.Now()
	ttl, err := l.next.TTL(ctx)
	if obs.IsLeaseLost(err) {
		l.lostFound(ctx, obs.LockTTL, err)
	}
	m.done(ctx, obs.LockTTL, start, err, func() []slog.Attr {
		return l.attrs(slog.Duration("ttl", ttl))
	})
	return ttl, err
}

func (l *lock) Extend(ctx context.Context, ttl time.Duration) error {
	m := l.m
	start := m.clock.Now()
	err := l.next.Extend(ctx, ttl)
	if obs.IsLeaseLost(err) {
		l.lostFound(ctx, obs.LockExtend, err)
	}
	m.done(ctx, obs.LockExtend, start, err, func() []slog.Attr {
		return l.attrs(slog.Duration("ttl", ttl))
	})
	return err
}

// Release ends the lease. A Release that finds the lease gone
// (ErrNotHeld or ErrExpired) logs it lost. Done is not consulted: a
// backend may make its channel only when asked for it.
func (l *lock) Release(ctx context.Context) error {
	m := l.m
	start := m.clock.Now()
	err := l.next.Release(ctx)
	if obs.IsLeaseLost(err) {
		l.lostFound(ctx, obs.LockRelease, err)
	}
	if err == nil || obs.KindOf(err) == obs.Closed {
		l.ended.Store(true)
	}
	m.done(ctx, obs.LockRelease, start, err, func() []slog.Attr {
		return l.attrs(slog.Duration("held", m.clock.Now()-l.start))
	})
	return err
}

// lostFound logs, once per lease, that op found the lease lost.
func (l *lock) lostFound(ctx context.Context, op obs.Op, err error) {
	if !l.ended.CompareAndSwap(false, true) {
		return
	}
	m := l.m
	lvl := m.lost.Level()
	if !m.log.Enabled(ctx, lvl) {
		return
	}
	attrs := l.attrs(
		slog.String("found_by", op.String()),
		slog.Duration("held", m.clock.Now()-l.start),
	)
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	m.log.LogAttrs(ctx, lvl, msgLeaseLost, attrs...)
}
