package memharness_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/coordtest/memharness"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// decorated stands for a middleware: it wraps a Backend and unwraps to it.
type decorated struct{ coord.Backend }

func (d decorated) Unwrap() coord.Backend { return d.Backend }

// TestHarness checks that instances pass through wrap and share one hub,
// that a foreign message reaches them, and that a cut through the
// decorator reaches the node (its subscribers get the reconnect purge).
func TestHarness(t *testing.T) {
	wrapped := 0
	h := memharness.New(func(b coord.Backend) coord.Backend {
		wrapped++
		return decorated{b}
	})
	if c := h.Capabilities(); !c.CutSubscription || !c.ForeignPublish {
		t.Errorf("Capabilities = %+v, want CutSubscription and ForeignPublish", c)
	}
	ctx := t.Context()
	a, b := h.NewInstance(t), h.NewInstance(t)
	if _, ok := a.(decorated); !ok || wrapped != 2 {
		t.Fatalf("instances are %T after %d wraps, want decorated after 2", a, wrapped)
	}
	var got coordtest.Recorder[coord.Invalidation]
	if _, err := b.Invalidator().Subscribe(ctx, got.Add); err != nil {
		t.Fatal(err)
	}
	if err := a.Invalidator().Invalidate(ctx, "shared", nil); err != nil {
		t.Fatal(err)
	}
	has := func(f func(coord.Invalidation) bool) func() bool {
		return func() bool { return got.Count(f) > 0 }
	}
	coordtest.Eventually(t, 2*time.Second, has(func(i coord.Invalidation) bool { return i.Key == "shared" }),
		"an invalidation from another instance of the hub")
	h.PublishRaw(t, memory.ChannelInvalidate,
		[]byte(`{"instanceId":"node","cacheKey":"foreign","metadata":{},"timestamp":1700000000123}`))
	coordtest.Eventually(t, 2*time.Second, has(func(i coord.Invalidation) bool { return i.Key == "foreign" }),
		"a foreign invalidation")
	h.CutSubscription(t, b)
	coordtest.Eventually(t, 2*time.Second, has(func(i coord.Invalidation) bool { return i.Kind == coord.PurgeAll }),
		"a purge after the cut")
}
