package metrics

import (
	"context"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
	"github.com/prometheus/client_golang/prometheus"
)

// Invalidator decorates next with metrics: operation latency and errors,
// distributed_cache_invalidations_sent_total, and, through the handlers
// of its subscriptions, distributed_cache_messages_received_total and
// near_cache_purges_total. Its Stats counters are exported at each
// scrape. A nil m or next gives next unchanged.
//
// Each subscription counts what it is delivered: an invalidation that two
// subscriptions receive counts twice.
func (m *Middleware) Invalidator(next coord.Invalidator) coord.Invalidator {
	if m == nil || next == nil {
		return next
	}
	m.state.addInvalidator(next)
	return &invalidator{m: m, next: next, received: m.receivedFor(next)}
}

type invalidator struct {
	m        *Middleware
	next     coord.Invalidator
	received [numChannels]prometheus.Counter // by channel, named by next's backend
}

var _ coord.Invalidator = (*invalidator)(nil)

// Unwrap returns the decorated Invalidator.
func (v *invalidator) Unwrap() coord.Invalidator { return v.next }

// As forwards to the decorated Invalidator (see coord.As).
func (v *invalidator) As(target any) bool { return coord.As(v.next, target) }

func (v *invalidator) Invalidate(ctx context.Context, key string, meta any) error {
	m := v.m
	start := m.clock.Now()
	err := v.next.Invalidate(ctx, key, meta)
	m.observe(obs.Invalidate, m.clock.Now()-start, err)
	if err == nil {
		m.sentSingle.Inc()
	}
	return err
}

func (v *invalidator) InvalidatePattern(ctx context.Context, glob string, meta any) error {
	m := v.m
	start := m.clock.Now()
	err := v.next.InvalidatePattern(ctx, glob, meta)
	m.observe(obs.InvalidatePattern, m.clock.Now()-start, err)
	if err == nil {
		m.sentPattern.Inc()
	}
	return err
}

func (v *invalidator) Subscribe(ctx context.Context, fn func(coord.Invalidation), opts ...coord.SubscribeOption) (sub coord.Subscription, err error) {
	defer v.m.done(obs.InvalidateSubscribe, v.m.clock.Now(), &err)
	if fn == nil {
		return v.next.Subscribe(ctx, fn, opts...) // the backend refuses it
	}
	m, received := v.m, &v.received
	return v.next.Subscribe(ctx, func(inv coord.Invalidation) {
		switch inv.Kind {
		case coord.KeyInvalidation:
			received[chanKey].Inc()
		case coord.PatternInvalidation:
			received[chanPattern].Inc()
		case coord.PurgeAll:
			m.purges[reasonOf(inv.Reason)].Inc()
		}
		fn(inv)
	}, opts...)
}

func (v *invalidator) Stats() coord.InvalidatorStats { return v.next.Stats() }

// Events decorates next with metrics: operation latency and errors,
// distributed_shard_events_sent_total, and, through the handlers of its
// subscriptions, distributed_cache_messages_received_total. Its Stats
// counters are exported at each scrape. A nil m or next gives next
// unchanged.
func (m *Middleware) Events(next coord.EventBus) coord.EventBus {
	if m == nil || next == nil {
		return next
	}
	m.state.addBus(next)
	return &events{m: m, next: next, received: m.receivedFor(next)[chanEvent]}
}

type events struct {
	m        *Middleware
	next     coord.EventBus
	received prometheus.Counter // of the event channel, named by next's backend
}

var _ coord.EventBus = (*events)(nil)

// Unwrap returns the decorated EventBus.
func (e *events) Unwrap() coord.EventBus { return e.next }

// As forwards to the decorated EventBus (see coord.As).
func (e *events) As(target any) bool { return coord.As(e.next, target) }

func (e *events) Publish(ctx context.Context, topic string, payload any) error {
	m := e.m
	start := m.clock.Now()
	err := e.next.Publish(ctx, topic, payload)
	m.observe(obs.EventPublish, m.clock.Now()-start, err)
	if err == nil {
		m.events.get(topic).Inc()
	}
	return err
}

func (e *events) Subscribe(ctx context.Context, topic string, fn func(coord.Event), opts ...coord.SubscribeOption) (sub coord.Subscription, err error) {
	defer e.m.done(obs.EventSubscribe, e.m.clock.Now(), &err)
	if fn == nil {
		return e.next.Subscribe(ctx, topic, fn, opts...) // the backend refuses it
	}
	received := e.received
	return e.next.Subscribe(ctx, topic, func(ev coord.Event) {
		received.Inc()
		fn(ev)
	}, opts...)
}

func (e *events) Stats() coord.EventStats { return e.next.Stats() }
