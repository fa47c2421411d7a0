package conformance

import (
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// requirePrimitive skips t when h declares p unsupported (the
// UnsupportedSaysSo case checks the declaration instead).
func requirePrimitive(t *testing.T, h Harness, p Primitive) {
	t.Helper()
	if h.Capabilities().lacks(p) {
		t.Skipf("the harness declares %s unsupported", p)
	}
}

// unsupportedProbes call one method of each primitive's part with valid
// arguments; for a primitive the backend lacks, each must fail with
// coord.ErrUnsupported.
var unsupportedProbes = map[Primitive]func(t *testing.T, b coord.Backend) error{
	RWLocks: func(t *testing.T, b coord.Backend) error {
		_, err := b.RWLocker().State(ctxOf(t), "probe")
		return err
	},
	Semaphores: func(t *testing.T, b coord.Backend) error {
		_, err := b.Semaphores().Holders(ctxOf(t), "probe")
		return err
	},
	Elections: func(t *testing.T, b coord.Backend) error {
		_, err := b.Elector().Leader(ctxOf(t), "probe")
		return err
	},
	Jobs: func(t *testing.T, b coord.Backend) error {
		_, err := b.Jobs().Due(ctxOf(t), "probe", time.Hour)
		return err
	},
	RateLimits: func(t *testing.T, b coord.Backend) error {
		_, err := b.RateLimiter().Allow(ctxOf(t), "probe", coord.Limit{Rate: 1, Period: time.Second}, 1)
		return err
	},
	Streams: func(t *testing.T, b coord.Backend) error {
		_, err := b.Streams().Info(ctxOf(t), "probe")
		return err
	},
}

func testUnsupportedSaysSo(t *testing.T, h Harness) {
	caps := h.Capabilities()
	if len(caps.Unsupported) == 0 {
		t.Skip("the harness declares every primitive supported")
	}
	b := instances(t, h, 1)[0]
	for _, p := range caps.Unsupported {
		probe, ok := unsupportedProbes[p]
		if !ok {
			t.Errorf("Capabilities.Unsupported names %q, which is no primitive", p)
			continue
		}
		err := probe(t, b)
		if !errors.Is(err, coord.ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s is declared unsupported, but its probe returned %v, not an error wrapping coord.ErrUnsupported and errors.ErrUnsupported", p, err)
		}
	}
}
