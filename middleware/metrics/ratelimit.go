package metrics

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
	"github.com/prometheus/client_golang/prometheus"
)

// MaxRateLimitLabels bounds the values of the limit label of
// rate_limit_decisions_total: the first MaxRateLimitLabels limit names
// seen keep their name, later ones count as "other". Limit names come
// from code ([coord.Limit.Name]), not from requests, so a program stays
// well under it.
const MaxRateLimitLabels = 64

// rateDecisions counts rate limit decisions by limit name and outcome,
// with a bounded set of names.
type rateDecisions struct {
	vec *prometheus.CounterVec

	mu    sync.Mutex                           // serialises writers of names
	names atomic.Pointer[map[string]*rateKids] // copied on write
	other *rateKids
}

// rateKids are the children of one limit label value.
type rateKids struct{ allowed, denied prometheus.Counter }

func newRateDecisionsVec(ns string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "rate_limit_decisions_total",
		Help: "Rate limit decisions, by limit name and decision (allowed or denied).",
	}, []string{"limit", "decision"})
}

func newRateDecisions(vec *prometheus.CounterVec) *rateDecisions {
	r := &rateDecisions{vec: vec}
	r.other = r.kids("other")
	r.names.Store(&map[string]*rateKids{})
	return r
}

func (r *rateDecisions) kids(label string) *rateKids {
	return &rateKids{allowed: r.vec.WithLabelValues(label, "allowed"), denied: r.vec.WithLabelValues(label, "denied")}
}

// of returns the children of limit's label.
func (r *rateDecisions) of(limit coord.Limit) *rateKids {
	label := limit.Label()
	if k, ok := (*r.names.Load())[label]; ok {
		return k
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.names.Load()
	if k, ok := old[label]; ok {
		return k
	}
	if len(old) >= MaxRateLimitLabels {
		return r.other
	}
	k := r.kids(label)
	next := make(map[string]*rateKids, len(old)+1)
	for n, v := range old {
		next[n] = v
	}
	next[label] = k
	r.names.Store(&next)
	return k
}

// RateLimiter decorates next with metrics: rate_limit_decisions_total by
// limit name and decision, and the latency of each call in
// operation_duration_seconds (op "rate_allow", "rate_peek",
// "rate_reset"). A denial is a decision, not an error; errors count in
// operation_errors_total. A nil m or next gives next unchanged.
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

func (r *rateLimiter) Allow(ctx context.Context, key string, limit coord.Limit, n int) (d coord.RateDecision, err error) {
	m := r.m
	start := m.clock.Now()
	d, err = r.next.Allow(ctx, key, limit, n)
	m.observe(obs.RateAllow, m.clock.Now()-start, err)
	if err == nil {
		k := m.rates.of(limit)
		if d.Allowed {
			k.allowed.Inc()
		} else {
			k.denied.Inc()
		}
	}
	return d, err
}

func (r *rateLimiter) Peek(ctx context.Context, key string, limit coord.Limit) (d coord.RateDecision, err error) {
	defer r.m.done(obs.RatePeek, r.m.clock.Now(), &err)
	return r.next.Peek(ctx, key, limit)
}

func (r *rateLimiter) Reset(ctx context.Context, key string) (err error) {
	defer r.m.done(obs.RateReset, r.m.clock.Now(), &err)
	return r.next.Reset(ctx, key)
}
