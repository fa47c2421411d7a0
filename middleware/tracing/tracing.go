package tracing

import (
	"context"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/cgn-bot/coord/middleware/tracing"

// MaxNameAttr is the longest name (resource, key, glob or topic) an
// attribute holds; longer names are cut at a UTF-8 boundary.
const MaxNameAttr = 128

// The attribute keys. Their values come from a fixed set or are numbers,
// except the names, bounded by [MaxNameAttr].
const (
	AttrOperation = attribute.Key("coord.operation") // "lock.acquire", "events.publish", …
	AttrOutcome   = attribute.Key("coord.outcome")   // "ok" or an error kind
	AttrResource  = attribute.Key("coord.resource")  // a lease's resource
	AttrKey       = attribute.Key("coord.key")       // an invalidation's key or glob
	AttrTopic     = attribute.Key("coord.topic")     // an event's topic
	AttrFence     = attribute.Key("coord.fence")     // a lease's fencing token
	AttrWaitMS    = attribute.Key("coord.wait_ms")   // how long Acquire took, in ms
	AttrKind      = attribute.Key("coord.invalidation.kind")
	AttrReason    = attribute.Key("coord.invalidation.reason")
	AttrCount     = attribute.Key("coord.count")    // how many a call returned or removed
	AttrHeld      = attribute.Key("coord.held")     // Locked's answer
	AttrHeldMS    = attribute.Key("coord.held_ms")  // how long a lost lease was held
	AttrInstance  = attribute.Key("coord.instance") // the publisher of a delivered message
	AttrHealth    = attribute.Key("coord.health")   // Health's status
)

// EventLeaseLost is the name of the span event that records a lost lease.
const EventLeaseLost = "coord.lease_lost"

// Tracer makes decorators that record spans. A nil *Tracer decorates
// nothing: its methods return what they are given. A Tracer is safe for
// concurrent use by multiple goroutines.
type Tracer struct {
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	noNames bool
	noWatch bool
}

// Option configures [New].
type Option func(*Tracer)

// WithTracerProvider sets the provider of the tracer; by default the
// global one (otel.GetTracerProvider) at the time of New.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(t *Tracer) {
		if tp != nil {
			t.tracer = tp.Tracer(ScopeName)
		}
	}
}

// WithPropagator sets how trace context is written into and read from
// the messages' carrier; by default W3C trace context
// (propagation.TraceContext). Baggage is not carried unless a propagator
// given here carries it: it may hold user data.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(t *Tracer) {
		if p != nil {
			t.prop = p
		}
	}
}

// WithoutNames leaves resource, key, glob and topic names out of the
// attributes, for deployments where names hold user data.
func WithoutNames() Option {
	return func(t *Tracer) { t.noNames = true }
}

// WithoutLossWatch stops decorated leases from watching their Done
// channel (one goroutine per lease while it is held): a lease lost
// without a Release, Extend or TTL call to find it is then not recorded.
func WithoutLossWatch() Option {
	return func(t *Tracer) { t.noWatch = true }
}

// New returns a Tracer configured by opts.
func New(opts ...Option) *Tracer {
	t := &Tracer{prop: propagation.TraceContext{}}
	for _, o := range opts {
		if o != nil {
			o(t)
		}
	}
	if t.tracer == nil {
		t.tracer = otel.GetTracerProvider().Tracer(ScopeName)
	}
	return t
}

// Inject returns a carrier holding ctx's span context, as the decorators
// attach it to published messages; nil when ctx has none.
func (t *Tracer) Inject(ctx context.Context) coord.TraceCarrier {
	c := propagation.MapCarrier{}
	t.prop.Inject(ctx, c)
	if len(c) == 0 {
		return nil
	}
	return coord.TraceCarrier(c)
}

// Extract returns ctx with the span context of c (from a delivered
// [coord.Event] or [coord.Invalidation]) as its remote parent. A
// decorated subscription's handler receives a carrier of its consumer
// span, so spans started from the result are its children.
func (t *Tracer) Extract(ctx context.Context, c coord.TraceCarrier) context.Context {
	if len(c) == 0 {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.MapCarrier(c))
}

// name returns the attribute of a name, or false when names are off.
func (t *Tracer) name(k attribute.Key, v string) []attribute.KeyValue {
	if t.noNames {
		return nil
	}
	if len(v) > MaxNameAttr {
		i := MaxNameAttr
		for i > 0 && v[i]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
			i--
		}
		v = v[:i]
	}
	return []attribute.KeyValue{k.String(v)}
}

// start starts the span of operation op.
func (t *Tracer) start(ctx context.Context, op string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, "coord "+op,
		trace.WithSpanKind(kind),
		trace.WithAttributes(append(attrs, AttrOperation.String(op))...))
}

// Outcome returns the coord.outcome of err: "ok" for nil, else the kind
// of the error (see [middleware.ErrorKind]).
func Outcome(err error) string { return middleware.ErrorKind(err) }

// IsFailure reports whether err makes a span's status Error: any error
// but one whose outcome is "not_acquired", "not_found" or "rate_limited",
// which are answers, not failures.
func IsFailure(err error) bool {
	switch Outcome(err) {
	case "ok", "not_acquired", "not_found", "rate_limited":
		return false
	}
	return true
}

// end records err's outcome on span and ends it. Only the outcome is
// recorded, never the error's message.
func end(span trace.Span, err error, attrs ...attribute.KeyValue) {
	out := Outcome(err)
	span.SetAttributes(append(attrs, AttrOutcome.String(out))...)
	if IsFailure(err) {
		span.SetStatus(codes.Error, out)
	}
	span.End()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
