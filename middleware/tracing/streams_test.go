package tracing_test

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/tracing"
	"go.opentelemetry.io/otel/trace"
)

func TestStreamSpansLinked(t *testing.T) {
	r := newRecorder(t)
	_, a, b := nodes(t, r)
	sub, err := b.Streams().Consume(t.Context(), "orders", "billing", func(ctx context.Context, e coord.StreamEntry) error {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			t.Error("the handler's ctx carries no span")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	id, err := a.Streams().Append(t.Context(), "orders", 1)
	if err != nil {
		t.Fatal(err)
	}
	recv := r.eventually(t, "streams.receive", 1)[0]
	app := r.one(t, "streams.append")
	if app.SpanKind != trace.SpanKindProducer || recv.SpanKind != trace.SpanKindConsumer {
		t.Fatalf("kinds: append %v, receive %v", app.SpanKind, recv.SpanKind)
	}
	if len(recv.Links) != 1 || recv.Links[0].SpanContext.SpanID() != app.SpanContext.SpanID() {
		t.Fatalf("receive links %v, want the append span %v", recv.Links, app.SpanContext.SpanID())
	}
	wantAttr(t, recv, tracing.AttrEntryID, id)
	wantAttr(t, recv, tracing.AttrDeliveries, 1)
	wantAttr(t, recv, tracing.AttrGroup, "billing")
	wantAttr(t, app, tracing.AttrStream, "orders")
}
