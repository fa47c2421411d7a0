package tracing_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// An event carries its publisher's trace context: the subscriber's span,
// on another instance, belongs to the publisher's trace.
func Example() {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(ctx)
	tr := tracing.New(tracing.WithTracerProvider(tp))

	hub := memory.NewHub(nil)
	a := tr.Backend(hub.NewNode(nil))
	b := tr.Backend(hub.NewNode(nil))
	defer a.Close(ctx)
	defer b.Close(ctx)

	got := make(chan coord.Event, 1)
	sub, _ := b.Events().Subscribe(ctx, "orders", func(ev coord.Event) { got <- ev })

	ctx, span := tp.Tracer("app").Start(ctx, "checkout")
	_ = a.Events().Publish(ctx, "orders", map[string]int{"id": 7})
	span.End()

	ev := <-got
	sub.Unsubscribe()
	<-sub.Done() // the handler has returned and its span has ended

	// Spans the handler starts from tr.Extract(ctx, ev.Trace) are
	// children of its consumer span.
	handler := trace.SpanContextFromContext(tr.Extract(context.Background(), ev.Trace))
	fmt.Println("same trace:", handler.TraceID() == span.SpanContext().TraceID())
	var lines []string
	for _, s := range exp.GetSpans() {
		lines = append(lines, fmt.Sprint(s.Name, " ", s.SpanKind, " ", s.SpanContext.TraceID() == span.SpanContext().TraceID()))
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// same trace: true
	// checkout internal true
	// coord events.publish producer true
	// coord events.receive consumer true
}
