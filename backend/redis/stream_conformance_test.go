package redis_test

import (
	"testing"

	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/internal/redistest"
)

// TestStreamsConformanceRedisRestart runs the stream cases with the
// Restart capability, each on a server of its own: a subscription must
// come back by itself after its server restarts and loses its groups.
func TestStreamsConformanceRedisRestart(t *testing.T) {
	conformance.RunStreams(t, func(t *testing.T) conformance.Harness {
		return restartHarness{newRealHarness(redistest.Start(t))}
	})
}
