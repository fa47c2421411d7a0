package memory_test

import (
	"testing"

	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
)

func TestStreamsConformance(t *testing.T) {
	conformance.RunStreams(t, func(t *testing.T) conformance.Harness {
		return &harness{hub: memory.NewHub(nil)}
	})
}
