package tracing

import (
	"context"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// The attributes of rate limit spans.
const (
	AttrLimit        = attribute.Key("coord.rate.limit")          // the limit's Label
	AttrAllowed      = attribute.Key("coord.rate.allowed")        // the decision
	AttrRemaining    = attribute.Key("coord.rate.remaining")      // events left after it
	AttrRetryAfterMS = attribute.Key("coord.rate.retry_after_ms") // a denial's wait, in ms
)

// RateLimiter decorates next with spans "coord rate.allow", "coord
// rate.peek" and "coord rate.reset" (key, limit name, decision,
// remaining, retry time). A denial is an answer, not a failure: its
// outcome is "rate_limited" and its status is left unset. A nil t or next
// gives next unchanged.
func (t *Tracer) RateLimiter(next coord.RateLimiter) coord.RateLimiter {
	if t == nil || next == nil {
		return next
	}
	return &rateLimiter{t: t, next: next}
}

type rateLimiter struct {
	t    *Tracer
	next coord.RateLimiter
}

var _ coord.RateLimiter = (*rateLimiter)(nil)

// Unwrap returns the decorated RateLimiter.
func (r *rateLimiter) Unwrap() coord.RateLimiter { return r.next }

// As forwards to the decorated RateLimiter (see coord.As).
func (r *rateLimiter) As(target any) bool { return coord.As(r.next, target) }

func (r *rateLimiter) decided(ctx context.Context, op, key string, limit coord.Limit, call func(context.Context) (coord.RateDecision, error)) (coord.RateDecision, error) {
	attrs := append(r.t.name(AttrKey, key), AttrLimit.String(limit.Label()))
	ctx, span := r.t.start(ctx, op, trace.SpanKindClient, attrs...)
	d, err := call(ctx)
	if err != nil {
		end(span, err)
		return d, err
	}
	out := []attribute.KeyValue{AttrAllowed.Bool(d.Allowed), AttrRemaining.Int(d.Remaining)}
	if !d.Allowed {
		out = append(out, AttrRetryAfterMS.Float64(ms(d.RetryAfter)), AttrOutcome.String("rate_limited"))
		span.SetAttributes(out...)
		span.End()
		return d, nil
	}
	end(span, nil, out...)
	return d, nil
}

func (r *rateLimiter) Allow(ctx context.Context, key string, limit coord.Limit, n int) (coord.RateDecision, error) {
	return r.decided(ctx, "rate.allow", key, limit, func(ctx context.Context) (coord.RateDecision, error) {
		return r.next.Allow(ctx, key, limit, n)
	})
}

func (r *rateLimiter) Peek(ctx context.Context, key string, limit coord.Limit) (coord.RateDecision, error) {
	return r.decided(ctx, "rate.peek", key, limit, func(ctx context.Context) (coord.RateDecision, error) {
		return r.next.Peek(ctx, key, limit)
	})
}

func (r *rateLimiter) Reset(ctx context.Context, key string) error {
	ctx, span := r.t.start(ctx, "rate.reset", trace.SpanKindClient, r.t.name(AttrKey, key)...)
	err := r.next.Reset(ctx, key)
	end(span, err)
	return err
}
