package metrics

import (
	"context"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Semaphores decorates next with metrics: lease_acquisitions_total,
// lease_wait_seconds, lease_hold_seconds and lease_lost_total under the
// primitive semaphore, and the latency and errors of every operation. A
// nil m or next gives next unchanged.
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
	start := s.m.clock.Now()
	l, err := s.next.Acquire(ctx, resource, limit, opts...)
	d, err := s.m.acquired(obs.SemAcquire, primPermit, start, l, err)
	if d == nil {
		return l, err
	}
	return d, nil
}

func (s *semaphores) Holders(ctx context.Context, resource string) (n int, err error) {
	defer s.m.done(obs.SemHolders, s.m.clock.Now(), &err)
	return s.next.Holders(ctx, resource)
}

func (s *semaphores) ForceRelease(ctx context.Context, resource string) (n int, err error) {
	defer s.m.done(obs.SemForceRelease, s.m.clock.Now(), &err)
	return s.next.ForceRelease(ctx, resource)
}
