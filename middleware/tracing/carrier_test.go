package tracing_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	goredis "github.com/redis/go-redis/v9"
)

// TestCarrierWithoutDecorator: both backends carry a coord.WithTrace
// carrier opaquely to every subscriber, each with its own copy, and
// deliver a message whose carrier the wire refuses without it.
func TestCarrierWithoutDecorator(t *testing.T) {
	hub := memory.NewHub(nil)
	m := miniredis.RunT(t)
	redisNode := func() coord.Backend {
		c := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
		b, err := coordredis.New(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return b
	}
	for name, pair := range map[string][2]coord.Backend{
		"memory": {hub.NewNode(nil), hub.NewNode(nil)},
		"redis":  {redisNode(), redisNode()},
	} {
		t.Run(name, func(t *testing.T) {
			pub, sub := pair[0], pair[1]
			defer pub.Close(context.Background())
			defer sub.Close(context.Background())
			ctx := t.Context()
			evs := make(chan coord.Event, 8)
			invs := make(chan coord.Invalidation, 8)
			for range 2 { // two subscriptions: each gets its own carrier
				if _, err := sub.Events().Subscribe(ctx, "t", func(ev coord.Event) { evs <- ev }); err != nil {
					t.Fatal(err)
				}
				if _, err := sub.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
					if inv.Kind == coord.KeyInvalidation || inv.Kind == coord.PatternInvalidation {
						invs <- inv
					}
				}); err != nil {
					t.Fatal(err)
				}
			}
			good := coord.TraceCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
			bad := coord.TraceCarrier{"TraceParent": "x"}
			for _, c := range []struct {
				carrier, want coord.TraceCarrier
			}{{good, good}, {bad, nil}, {nil, nil}} {
				tctx := coord.WithTrace(ctx, c.carrier)
				if err := pub.Events().Publish(tctx, "t", 1); err != nil {
					t.Fatal(err)
				}
				if err := pub.Invalidator().Invalidate(tctx, "k", nil); err != nil {
					t.Fatal(err)
				}
				if err := pub.Invalidator().InvalidatePattern(tctx, "k*", nil); err != nil {
					t.Fatal(err)
				}
				var got []coord.TraceCarrier
				for range 2 {
					select {
					case ev := <-evs:
						got = append(got, ev.Trace)
					case <-time.After(2 * time.Second):
						t.Fatal("event not delivered within 2s")
					}
				}
				for range 4 {
					select {
					case inv := <-invs:
						got = append(got, inv.Trace)
					case <-time.After(2 * time.Second):
						t.Fatal("invalidation not delivered within 2s")
					}
				}
				for i, g := range got {
					if !maps.Equal(g, c.want) || (c.want == nil) != (g == nil) {
						t.Fatalf("carrier %v: delivery %d has %v, want %v", c.carrier, i, g, c.want)
					}
				}
				if c.want != nil {
					got[0]["traceparent"] = "changed"
					if got[1]["traceparent"] == "changed" || got[2]["traceparent"] == "changed" || c.carrier["traceparent"] == "changed" {
						t.Fatal("subscribers share one carrier map, or with the publisher")
					}
				}
			}
		})
	}
}

// TestForeignTracedMessageMemory: a traced message published raw on the
// hub (as another coord instance on Redis would send it) is delivered
// with its carrier, as the Redis backend delivers it.
func TestForeignTracedMessageMemory(t *testing.T) {
	hub := memory.NewHub(nil)
	n := hub.NewNode(nil)
	defer n.Close(context.Background())
	got := make(chan coord.Event, 1)
	if _, err := n.Events().Subscribe(t.Context(), "e", func(ev coord.Event) { got <- ev }); err != nil {
		t.Fatal(err)
	}
	msg := `{"instanceId":"other","event":"e","payload":{},"timestamp":1,"trace":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}`
	if err := hub.PublishRaw(memory.ChannelEvent, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Trace["traceparent"] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
			t.Fatalf("delivered trace %v", ev.Trace)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not delivered within 2s")
	}
}
