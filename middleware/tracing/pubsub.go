package tracing

import (
	"context"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Invalidator decorates next with spans: a producer span per Invalidate
// and InvalidatePattern, whose context travels with the message, and a
// consumer span around each call of a decorated subscription's handler,
// a child of the publisher's span when the message carried one. Stats
// is forwarded. A nil t or next gives next unchanged.
func (t *Tracer) Invalidator(next coord.Invalidator) coord.Invalidator {
	if t == nil || next == nil {
		return next
	}
	return &invalidator{t: t, next: next}
}

type invalidator struct {
	t    *Tracer
	next coord.Invalidator
}

var _ coord.Invalidator = (*invalidator)(nil)

// Unwrap returns the decorated Invalidator.
func (i *invalidator) Unwrap() coord.Invalidator { return i.next }

// As forwards to the decorated Invalidator (see coord.As).
func (i *invalidator) As(target any) bool { return coord.As(i.next, target) }

func (i *invalidator) Invalidate(ctx context.Context, key string, meta any) error {
	ctx, span := i.t.start(ctx, "invalidator.invalidate", trace.SpanKindProducer, i.t.name(AttrKey, key)...)
	err := i.next.Invalidate(coord.WithTrace(ctx, i.t.Inject(ctx)), key, meta)
	end(span, err)
	return err
}

func (i *invalidator) InvalidatePattern(ctx context.Context, glob string, meta any) error {
	ctx, span := i.t.start(ctx, "invalidator.invalidate_pattern", trace.SpanKindProducer, i.t.name(AttrKey, glob)...)
	err := i.next.InvalidatePattern(coord.WithTrace(ctx, i.t.Inject(ctx)), glob, meta)
	end(span, err)
	return err
}

// Subscribe subscribes fn wrapped in a consumer span per invalidation.
// fn's Invalidation carries the consumer span's context in Trace (see
// [Tracer.Extract]).
func (i *invalidator) Subscribe(ctx context.Context, fn func(coord.Invalidation), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	if fn == nil {
		return i.next.Subscribe(ctx, fn, opts...)
	}
	t := i.t
	return i.next.Subscribe(ctx, func(inv coord.Invalidation) {
		attrs := []attribute.KeyValue{AttrKind.String(inv.Kind.String())}
		switch inv.Kind {
		case coord.KeyInvalidation, coord.PatternInvalidation:
			attrs = append(attrs, t.name(AttrKey, inv.Key)...)
			attrs = append(attrs, t.name(AttrInstance, inv.InstanceID)...)
		default:
			attrs = append(attrs, AttrReason.String(reason(inv.Reason)))
		}
		sctx, span := t.start(t.Extract(context.Background(), inv.Trace), "invalidator.receive", trace.SpanKindConsumer, attrs...)
		done := false
		defer func() { endHandler(span, done) }()
		inv.Trace = t.Inject(sctx)
		fn(inv)
		done = true
	}, opts...)
}

// reason bounds a PurgeAll's reason to the known set.
func reason(r string) string {
	switch r {
	case coord.ReasonReconnect, coord.ReasonOverflow, coord.ReasonMalformed:
		return r
	case "":
		return "none"
	}
	return "other"
}

func (i *invalidator) Stats() coord.InvalidatorStats { return i.next.Stats() }

// Events decorates next with spans: a producer span per Publish, whose
// context travels with the event, and a consumer span around each call
// of a decorated subscription's handler, a child of the publisher's span
// when the event carried one. Stats is forwarded. A nil t or next gives
// next unchanged.
func (t *Tracer) Events(next coord.EventBus) coord.EventBus {
	if t == nil || next == nil {
		return next
	}
	return &events{t: t, next: next}
}

type events struct {
	t    *Tracer
	next coord.EventBus
}

var _ coord.EventBus = (*events)(nil)

// Unwrap returns the decorated EventBus.
func (e *events) Unwrap() coord.EventBus { return e.next }

// As forwards to the decorated EventBus (see coord.As).
func (e *events) As(target any) bool { return coord.As(e.next, target) }

func (e *events) Publish(ctx context.Context, topic string, payload any) error {
	ctx, span := e.t.start(ctx, "events.publish", trace.SpanKindProducer, e.t.name(AttrTopic, topic)...)
	err := e.next.Publish(coord.WithTrace(ctx, e.t.Inject(ctx)), topic, payload)
	end(span, err)
	return err
}

// Subscribe subscribes fn wrapped in a consumer span per event. fn's
// Event carries the consumer span's context in Trace (see
// [Tracer.Extract]).
func (e *events) Subscribe(ctx context.Context, topic string, fn func(coord.Event), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	if fn == nil {
		return e.next.Subscribe(ctx, topic, fn, opts...)
	}
	t := e.t
	return e.next.Subscribe(ctx, topic, func(ev coord.Event) {
		attrs := append(t.name(AttrTopic, ev.Topic), t.name(AttrInstance, ev.InstanceID)...)
		sctx, span := t.start(t.Extract(context.Background(), ev.Trace), "events.receive", trace.SpanKindConsumer, attrs...)
		done := false
		defer func() { endHandler(span, done) }()
		ev.Trace = t.Inject(sctx)
		fn(ev)
		done = true
	}, opts...)
}

func (e *events) Stats() coord.EventStats { return e.next.Stats() }

// endHandler ends the consumer span of a handler call; done is false
// when the handler panicked (the backend recovers and counts it).
func endHandler(span trace.Span, done bool) {
	if !done {
		span.SetAttributes(AttrOutcome.String("panic"))
		span.SetStatus(codes.Error, "panic")
		span.End()
		return
	}
	end(span, nil)
}
