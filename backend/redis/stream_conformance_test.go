package redis_test

import (
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/internal/redistest"
)

func TestStreamsConformanceMiniredis(t *testing.T) {
	conformance.RunStreams(t, func(t *testing.T) conformance.Harness {
		m := miniredis.RunT(t)
		m.ClockTTL(true)
		return &miniHarness{m: m, prefix: "cgn:"}
	})
}

func TestStreamsConformanceRedis(t *testing.T) {
	srv := redistest.Start(t)
	conformance.RunStreams(t, func(t *testing.T) conformance.Harness {
		return newRealHarness(srv)
	})
}

func TestStreamsConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster takes seconds to form; skipped with -short")
	}
	c := redistest.StartCluster(t, 3)
	conformance.RunStreams(t, func(t *testing.T) conformance.Harness {
		return newClusterHarness(c)
	})
}
