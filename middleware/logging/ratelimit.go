package logging

import (
	"context"
	"log/slog"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// RateLimiter decorates next with logging. A denial is a normal outcome,
// not a failure: it is logged at the Success level (DEBUG by default)
// with decision=denied and its retry_after; only errors are logged at the
// Failure level. A nil m or next gives next unchanged.
func (m *Middleware) RateLimiter(next coord.RateLimiter) coord.RateLimiter {
	if m == nil || next == nil {
		return next
	}
	return &rateLimiter{m: m, next: next}
}

type rateLimiter struct {
	m    *Middleware
	next coord.RateLimiter
}

var _ coord.RateLimiter = (*rateLimiter)(nil)

// Unwrap returns the decorated RateLimiter.
func (r *rateLimiter) Unwrap() coord.RateLimiter { return r.next }

// As forwards to the decorated RateLimiter (see coord.As).
func (r *rateLimiter) As(target any) bool { return coord.As(r.next, target) }

func decisionAttrs(key string, limit coord.Limit, n int, d coord.RateDecision) []slog.Attr {
	decision := "denied"
	if d.Allowed {
		decision = "allowed"
	}
	a := []slog.Attr{
		name("key", key),
		slog.String("limit", limit.Label()),
		slog.Int("n", n),
		slog.String("decision", decision),
		slog.Int("remaining", d.Remaining),
	}
	if !d.Allowed {
		a = append(a, slog.Duration("retry_after", d.RetryAfter))
	}
	return a
}

func (r *rateLimiter) Allow(ctx context.Context, key string, limit coord.Limit, n int) (coord.RateDecision, error) {
	m := r.m
	if !m.on(ctx) {
		return r.next.Allow(ctx, key, limit, n)
	}
	start := m.clock.Now()
	d, err := r.next.Allow(ctx, key, limit, n)
	m.done(ctx, obs.RateAllow, start, err, func() []slog.Attr {
		if err != nil {
			return []slog.Attr{name("key", key), slog.String("limit", limit.Label()), slog.Int("n", n)}
		}
		return decisionAttrs(key, limit, n, d)
	})
	return d, err
}

func (r *rateLimiter) Peek(ctx context.Context, key string, limit coord.Limit) (coord.RateDecision, error) {
	m := r.m
	if !m.on(ctx) {
		return r.next.Peek(ctx, key, limit)
	}
	start := m.clock.Now()
	d, err := r.next.Peek(ctx, key, limit)
	m.done(ctx, obs.RatePeek, start, err, func() []slog.Attr {
		if err != nil {
			return []slog.Attr{name("key", key), slog.String("limit", limit.Label())}
		}
		return decisionAttrs(key, limit, 1, d)
	})
	return d, err
}

func (r *rateLimiter) Reset(ctx context.Context, key string) error {
	m := r.m
	if !m.on(ctx) {
		return r.next.Reset(ctx, key)
	}
	start := m.clock.Now()
	err := r.next.Reset(ctx, key)
	m.done(ctx, obs.RateReset, start, err, func() []slog.Attr { return []slog.Attr{name("key", key)} })
	return err
}
