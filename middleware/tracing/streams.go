package tracing

import (
	"context"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Attributes of stream spans.
const (
	AttrStream     = attribute.Key("coord.stream")            // a stream's name
	AttrGroup      = attribute.Key("coord.stream.group")      // a consumer group
	AttrEntryID    = attribute.Key("coord.stream.entry_id")   // an entry's ID
	AttrDeliveries = attribute.Key("coord.stream.deliveries") // an entry's delivery count
)

// Streams decorates next with spans: a producer span per Append (a child
// of ctx's span, or else of the trace context ctx carries, see
// [coord.WithTrace]), whose context is stored with the entry, a consumer span around each call of a
// decorated subscription's handler, linked to the appender's span (an
// entry may be handled long after, and more than once, so the appender's
// span is a link, not a parent), and a span per other call. A nil t or
// next gives next unchanged.
func (t *Tracer) Streams(next coord.Streams) coord.Streams {
	if t == nil || next == nil {
		return next
	}
	return &streams{t: t, next: next}
}

type streams struct {
	t    *Tracer
	next coord.Streams
}

var _ coord.Streams = (*streams)(nil)

// Unwrap returns the decorated Streams.
func (s *streams) Unwrap() coord.Streams { return s.next }

// As forwards to the decorated Streams (see coord.As).
func (s *streams) As(target any) bool { return coord.As(s.next, target) }

func (s *streams) Append(ctx context.Context, stream string, payload any) (string, error) {
	if c := coord.TraceFrom(ctx); c != nil && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = s.t.Extract(ctx, c) // the caller's trace context, given without a span
	}
	ctx, span := s.t.start(ctx, "streams.append", trace.SpanKindProducer, s.t.name(AttrStream, stream)...)
	id, err := s.next.Append(coord.WithTrace(ctx, s.t.Inject(ctx)), stream, payload)
	end(span, err, AttrEntryID.String(id))
	return id, err
}

// Consume subscribes fn wrapped in a consumer span per delivery. fn's ctx
// carries the consumer span; its entry's Trace stays the appender's.
func (s *streams) Consume(ctx context.Context, stream, group string, fn func(context.Context, coord.StreamEntry) error, opts ...coord.ConsumeOption) (coord.Subscription, error) {
	if fn == nil {
		return s.next.Consume(ctx, stream, group, fn, opts...)
	}
	t := s.t
	return s.next.Consume(ctx, stream, group, func(hctx context.Context, e coord.StreamEntry) error {
		attrs := append(t.name(AttrStream, e.Stream), t.name(AttrGroup, group)...)
		attrs = append(attrs, t.name(AttrInstance, e.InstanceID)...)
		attrs = append(attrs, AttrEntryID.String(e.ID), AttrDeliveries.Int(e.Deliveries), AttrOperation.String("streams.receive"))
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
		if pc := trace.SpanContextFromContext(t.Extract(context.Background(), e.Trace)); pc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: pc}))
		}
		sctx, span := t.tracer.Start(hctx, "coord streams.receive", opts...)
		done := false
		var err error
		defer func() {
			if !done {
				endHandler(span, false)
				return
			}
			end(span, err)
		}()
		err = fn(sctx, e)
		done = true
		return err
	}, opts...)
}

func (s *streams) Range(ctx context.Context, stream, from string, count int) ([]coord.StreamEntry, error) {
	ctx, span := s.t.start(ctx, "streams.range", trace.SpanKindClient, s.t.name(AttrStream, stream)...)
	es, err := s.next.Range(ctx, stream, from, count)
	end(span, err, AttrCount.Int(len(es)))
	return es, err
}

func (s *streams) Info(ctx context.Context, stream string) (coord.StreamInfo, error) {
	ctx, span := s.t.start(ctx, "streams.info", trace.SpanKindClient, s.t.name(AttrStream, stream)...)
	in, err := s.next.Info(ctx, stream)
	end(span, err)
	return in, err
}

func (s *streams) DeadLetters(ctx context.Context, stream string, count int) ([]coord.StreamEntry, error) {
	ctx, span := s.t.start(ctx, "streams.dead_letters", trace.SpanKindClient, s.t.name(AttrStream, stream)...)
	es, err := s.next.DeadLetters(ctx, stream, count)
	end(span, err, AttrCount.Int(len(es)))
	return es, err
}

func (s *streams) Trim(ctx context.Context, stream string, r coord.Retention) (int64, error) {
	ctx, span := s.t.start(ctx, "streams.trim", trace.SpanKindClient, s.t.name(AttrStream, stream)...)
	n, err := s.next.Trim(ctx, stream, r)
	end(span, err, AttrCount.Int64(n))
	return n, err
}
