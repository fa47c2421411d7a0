package metrics_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/internal/coordtest/memharness"
	"github.com/cgn-bot/coord/middleware/logging"
	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// TestConformance runs the suite on memory nodes decorated by metrics
// around logging (at Debug, so every record is built), proof that the
// decorators change nothing the suite can see. Each case gets its own
// registry, and the registry must gather without error afterwards.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		reg := prometheus.NewPedanticRegistry()
		m, err := metrics.New(reg, &metrics.Options{Namespace: "skynetbot"})
		if err != nil {
			t.Fatal(err)
		}
		logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
		l := logging.New(logger, nil)
		t.Cleanup(func() {
			if _, err := reg.Gather(); err != nil {
				t.Errorf("Gather after the case: %v", err)
			}
		})
		return memharness.New(func(b coord.Backend) coord.Backend { return m.Backend(l.Backend(b)) })
	})
}
