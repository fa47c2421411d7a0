package metrics_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// gathered returns the value of the series name{labels} in reg, or -1.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

func TestStreamsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, &metrics.Options{EventLabel: metrics.Allow("orders")})
	if err != nil {
		t.Fatal(err)
	}
	n := memory.NewHub(nil).New(nil)
	b := m.Backend(n)
	defer b.Close(context.Background())
	s := b.Streams()
	var calls atomic.Int32
	sub, err := s.Consume(t.Context(), "orders", "billing", func(_ context.Context, e coord.StreamEntry) error {
		if calls.Add(1) == 1 {
			return errors.New("first delivery fails")
		}
		return nil
	}, coord.ClaimAfter(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for i := range 2 {
		if _, err := s.Append(t.Context(), "orders", i); err != nil {
			t.Fatal(err)
		}
	}
	stream := map[string]string{"stream": "orders"}
	deadline := time.Now().Add(2 * time.Second)
	for gathered(t, reg, "coord_stream_entries_acked_total", stream) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("acked = %v, want 2", gathered(t, reg, "coord_stream_entries_acked_total", stream))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for name, want := range map[string]float64{
		"coord_stream_entries_appended_total":    2,
		"coord_stream_entries_delivered_total":   3,
		"coord_stream_entries_redelivered_total": 1,
		"coord_stream_handler_failures_total":    1,
	} {
		if got := gathered(t, reg, name, stream); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	group := map[string]string{"stream": "orders", "group": "other"} // billing is not allowed: "other"
	if got := gathered(t, reg, "coord_stream_pending_entries", group); got != 0 {
		t.Errorf("stream_pending_entries = %v, want 0", got)
	}
	if got := gathered(t, reg, "coord_stream_lag_entries", group); got != 0 {
		t.Errorf("stream_lag_entries = %v, want 0", got)
	}
	if got := gathered(t, reg, "coord_stream_trimmed_while_pending_total", stream); got != 0 {
		t.Errorf("stream_trimmed_while_pending_total = %v, want 0", got)
	}
}
