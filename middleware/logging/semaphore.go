package logging

import (
	"context"
	"log/slog"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Semaphores decorates next with logging: Acquire (with its limit),
// Holders and ForceRelease are logged, and the permits Acquire returns are
// decorated as [Middleware.Locker] decorates its Locks. A nil m or next
// gives next unchanged.
func (m *Middleware) Semaphores(next coord.Semaphores) coord.Semaphores {
	if m == nil || next == nil {
		return next
	}
	return &semaphores{m: m, next: next}
}

type semaphores struct {
	m    *Middleware
	next coord.Semaphores
}

var _ coord.Semaphores = (*semaphores)(nil)

// Unwrap returns the decorated Semaphores.
func (s *semaphores) Unwrap() coord.Semaphores { return s.next }

func (s *semaphores) Acquire(ctx context.Context, resource string, limit int, opts ...coord.LockOption) (coord.Lock, error) {
	l, d, err := s.m.acquire(ctx, obs.SemAcquire, "resource", resource, func() (coord.Lock, error) {
		return s.next.Acquire(ctx, resource, limit, opts...)
	}, slog.Int("limit", limit))
	if d == nil {
		return l, err
	}
	return d, nil
}

func (s *semaphores) Holders(ctx context.Context, resource string) (int, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Holders(ctx, resource)
	}
	start := m.clock.Now()
	n, err := s.next.Holders(ctx, resource)
	m.done(ctx, obs.SemHolders, start, err, func() []slog.Attr {
		return []slog.Attr{name("resource", resource), slog.Int("holders", n)}
	})
	return n, err
}

func (s *semaphores) ForceRelease(ctx context.Context, resource string) (int, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.ForceRelease(ctx, resource)
	}
	start := m.clock.Now()
	n, err := s.next.ForceRelease(ctx, resource)
	m.done(ctx, obs.SemForceRelease, start, err, func() []slog.Attr {
		return []slog.Attr{name("resource", resource), slog.Int("released", n)}
	})
	return n, err
}
