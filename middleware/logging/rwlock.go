package logging

import (
	"context"
	"log/slog"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/secret"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// acquire runs one acquisition under logging: do takes the lease.
func (m *Middleware) acquire(ctx context.Context, op obs.Op, key, nameV string, do func() (coord.Lock, error), extra ...slog.Attr) (coord.Lock, *lock, error) {
	if !m.on(ctx) {
		l, err := do()
		return l, nil, err
	}
	start := m.clock.Now()
	l, err := do()
	now := m.clock.Now()
	if lvl, ok := m.level(ctx, err); ok {
		attrs := append([]slog.Attr{name(key, nameV)}, extra...)
		if err == nil && l != nil {
			attrs = append(attrs, slog.Int64("fence", l.Fence()), slog.String("token", secret.Redact(l.Token())))
		}
		m.write(ctx, lvl, op, now-start, err, attrs...)
	}
	if err != nil || l == nil {
		return l, nil, err
	}
	return l, &lock{m: m, next: l, start: now}, nil
}

// RWLocker decorates next with logging: RLock, Lock, State and
// ForceRelease are logged, and the leases RLock and Lock return are
// decorated as [Middleware.Locker] decorates its Locks. A nil m or next
// gives next unchanged.
func (m *Middleware) RWLocker(next coord.RWLocker) coord.RWLocker {
	if m == nil || next == nil {
		return next
	}
	return &rwLocker{m: m, next: next}
}

type rwLocker struct {
	m    *Middleware
	next coord.RWLocker
}

var _ coord.RWLocker = (*rwLocker)(nil)

// Unwrap returns the decorated RWLocker.
func (r *rwLocker) Unwrap() coord.RWLocker { return r.next }

func (r *rwLocker) RLock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	l, d, err := r.m.acquire(ctx, obs.RWRLock, "resource", resource, func() (coord.Lock, error) {
		return r.next.RLock(ctx, resource, opts...)
	})
	if d == nil {
		return l, err
	}
	return d, nil
}

func (r *rwLocker) Lock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	l, d, err := r.m.acquire(ctx, obs.RWLock, "resource", resource, func() (coord.Lock, error) {
		return r.next.Lock(ctx, resource, opts...)
	})
	if d == nil {
		return l, err
	}
	return d, nil
}

func (r *rwLocker) State(ctx context.Context, resource string) (coord.RWState, error) {
	m := r.m
	if !m.on(ctx) {
		return r.next.State(ctx, resource)
	}
	start := m.clock.Now()
	st, err := r.next.State(ctx, resource)
	m.done(ctx, obs.RWState, start, err, func() []slog.Attr {
		return []slog.Attr{name("resource", resource), slog.Int("readers", st.Readers), slog.Bool("writer", st.Writer), slog.Int("writers_waiting", st.WritersWaiting)}
	})
	return st, err
}

func (r *rwLocker) ForceRelease(ctx context.Context, resource string) (bool, error) {
	m := r.m
	if !m.on(ctx) {
		return r.next.ForceRelease(ctx, resource)
	}
	start := m.clock.Now()
	released, err := r.next.ForceRelease(ctx, resource)
	m.done(ctx, obs.RWForceRelease, start, err, func() []slog.Attr {
		return []slog.Attr{name("resource", resource), slog.Bool("released", released)}
	})
	return released, err
}
