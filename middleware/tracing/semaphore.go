package tracing

import (
	"context"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/trace"
)

// Semaphores decorates next with spans: semaphore.acquire (resource,
// limit as coord.count, outcome, fence, wait time), semaphore.holders,
// semaphore.force_release, and the Release, Extend and TTL of the permits
// it returns, as for [Tracer.Locker]. A nil t or next gives next
// unchanged.
func (t *Tracer) Semaphores(next coord.Semaphores) coord.Semaphores {
	if t == nil || next == nil {
		return next
	}
	return &semaphores{t: t, next: next}
}

type semaphores struct {
	t    *Tracer
	next coord.Semaphores
}

var _ coord.Semaphores = (*semaphores)(nil)

// Unwrap returns the decorated Semaphores.
func (s *semaphores) Unwrap() coord.Semaphores { return s.next }

func (s *semaphores) Acquire(ctx context.Context, resource string, limit int, opts ...coord.LockOption) (coord.Lock, error) {
	var raw coord.Lock
	d, err := s.t.acquire(ctx, "semaphore.acquire", s.t.name(AttrResource, resource), func(ctx context.Context) (coord.Lock, error) {
		l, err := s.next.Acquire(ctx, resource, limit, opts...)
		raw = l
		return l, err
	}, AttrCount.Int(limit))
	if d == nil {
		return raw, err
	}
	return d, nil
}

func (s *semaphores) Holders(ctx context.Context, resource string) (int, error) {
	ctx, span := s.t.start(ctx, "semaphore.holders", trace.SpanKindClient, s.t.name(AttrResource, resource)...)
	n, err := s.next.Holders(ctx, resource)
	end(span, err, AttrCount.Int(n))
	return n, err
}

func (s *semaphores) ForceRelease(ctx context.Context, resource string) (int, error) {
	ctx, span := s.t.start(ctx, "semaphore.force_release", trace.SpanKindClient, s.t.name(AttrResource, resource)...)
	n, err := s.next.ForceRelease(ctx, resource)
	end(span, err, AttrCount.Int(n))
	return n, err
}
