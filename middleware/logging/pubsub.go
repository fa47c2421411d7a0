package logging

import (
	"context"
	"log/slog"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Invalidator decorates next with logging. Metadata is never logged. A
// purge-all signal delivered to a subscription made through the decorator
// is logged at the Failure level with its reason, since it means delivery
// had a gap. A nil m or next gives next unchanged.
func (m *Middleware) Invalidator(next coord.Invalidator) coord.Invalidator {
	if m == nil || next == nil {
		return next
	}
	return &invalidator{m: m, next: next}
}

type invalidator struct {
	m    *Middleware
	next coord.Invalidator
}

var _ coord.Invalidator = (*invalidator)(nil)

// Unwrap returns the decorated Invalidator.
func (v *invalidator) Unwrap() coord.Invalidator { return v.next }

// As forwards to the decorated Invalidator (see coord.As).
func (v *invalidator) As(target any) bool { return coord.As(v.next, target) }

func (v *invalidator) Invalidate(ctx context.Context, key string, meta any) error {
	m := v.m
	if !m.on(ctx) {
		return v.next.Invalidate(ctx, key, meta)
	}
	start := m.clock.Now()
	err := v.next.Invalidate(ctx, key, meta)
	m.done(ctx, obs.Invalidate, start, err, func() []slog.Attr {
		return []slog.Attr{name("key", key)}
	})
	return err
}

func (v *invalidator) InvalidatePattern(ctx context.Context, glob string, meta any) error {
	m := v.m
	if !m.on(ctx) {
		return v.next.InvalidatePattern(ctx, glob, meta)
	}
	start := m.clock.Now()
	err := v.next.InvalidatePattern(ctx, glob, meta)
	m.done(ctx, obs.InvalidatePattern, start, err, func() []slog.Attr {
		return []slog.Attr{name("glob", glob)}
	})
	return err
}

func (v *invalidator) Subscribe(ctx context.Context, fn func(coord.Invalidation), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	m := v.m
	if !m.on(ctx) || fn == nil {
		return v.next.Subscribe(ctx, fn, opts...)
	}
	// The handler runs on the subscription's goroutine, after the ctx of
	// Subscribe may have ended: its records carry no context.
	handler := func(inv coord.Invalidation) {
		if inv.Kind == coord.PurgeAll {
			lvl := m.failure.Level()
			if inv.Reason == coord.ReasonReconnect {
				// The end of a gap: the subscription is live again.
				lvl = slog.LevelInfo
			}
			if m.log.Enabled(context.Background(), lvl) {
				m.log.LogAttrs(context.Background(), lvl, msgPurge, slog.String("reason", inv.Reason))
			}
		}
		fn(inv)
	}
	start := m.clock.Now()
	sub, err := v.next.Subscribe(ctx, handler, opts...)
	m.done(ctx, obs.InvalidateSubscribe, start, err, nil)
	return sub, err
}

func (v *invalidator) Stats() coord.InvalidatorStats { return v.next.Stats() }

// Events decorates next with logging. Payloads are never logged. A nil m
// or next gives next unchanged.
func (m *Middleware) Events(next coord.EventBus) coord.EventBus {
	if m == nil || next == nil {
		return next
	}
	return &events{m: m, next: next}
}

type events struct {
	m    *Middleware
	next coord.EventBus
}

var _ coord.EventBus = (*events)(nil)

// Unwrap returns the decorated EventBus.
func (e *events) Unwrap() coord.EventBus { return e.next }

// As forwards to the decorated EventBus (see coord.As).
func (e *events) As(target any) bool { return coord.As(e.next, target) }

func (e *events) Publish(ctx context.Context, topic string, payload any) error {
	m := e.m
	if !m.on(ctx) {
		return e.next.Publish(ctx, topic, payload)
	}
	start := m.clock.Now()
	err := e.next.Publish(ctx, topic, payload)
	m.done(ctx, obs.EventPublish, start, err, func() []slog.Attr {
		return []slog.Attr{name("topic", topic)}
	})
	return err
}

func (e *events) Subscribe(ctx context.Context, topic string, fn func(coord.Event), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	m := e.m
	if !m.on(ctx) {
		return e.next.Subscribe(ctx, topic, fn, opts...)
	}
	start := m.clock.Now()
	sub, err := e.next.Subscribe(ctx, topic, fn, opts...)
	m.done(ctx, obs.EventSubscribe, start, err, func() []slog.Attr {
		return []slog.Attr{name("topic", topic)}
	})
	return sub, err
}

func (e *events) Stats() coord.EventStats { return e.next.Stats() }
