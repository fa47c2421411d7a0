package conformance

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/cgn-bot/coord/internal/coordtest"

	"github.com/cgn-bot/coord"
)

func TestMain(m *testing.M) {
	coordtest.DefaultParallel(coordtest.SuiteParallel)
	goleak.VerifyTestMain(m)
}

type bareHarness struct{ caps Capabilities }

func (bareHarness) NewInstance(*testing.T) coord.Backend { return nil }
func (h bareHarness) Capabilities() Capabilities         { return h.caps }

type cutHarness struct{ bareHarness }

func (cutHarness) CutSubscription(*testing.T, coord.Backend) {}

type allHarness struct{ cutHarness }

func (allHarness) Restart(*testing.T)                    {}
func (allHarness) PublishRaw(*testing.T, string, []byte) {}

func TestCapabilityProblems(t *testing.T) {
	all := Capabilities{CutSubscription: true, Restart: true, ForeignPublish: true}
	cases := []struct {
		name string
		h    Harness
		want []string // substrings, one per problem
	}{
		{"nothing declared, nothing offered", bareHarness{}, nil},
		{"declared, not implemented", bareHarness{caps: Capabilities{Restart: true}}, []string{"declares Restart"}},
		{"implemented, not declared", cutHarness{}, []string{"implements SubscriptionCutter"}},
		{"declared and implemented", cutHarness{bareHarness{caps: Capabilities{CutSubscription: true}}}, nil},
		{"all", allHarness{cutHarness{bareHarness{caps: all}}}, nil},
		{"all offered, none declared", allHarness{}, []string{"SubscriptionCutter", "Restarter", "ForeignPublisher"}},
		{"all declared, none offered", bareHarness{caps: all}, []string{"CutSubscription", "Restart", "ForeignPublish"}},
	}
	for _, c := range cases {
		got := capabilityProblems(c.h)
		if len(got) != len(c.want) {
			t.Errorf("%s: problems %q, want %d", c.name, got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: problem %q does not mention %q", c.name, got[i], w)
			}
		}
	}
}

func TestNoSilentSkipCheck(t *testing.T) {
	key := func(k string) coord.Invalidation { return coord.Invalidation{Kind: coord.KeyInvalidation, Key: k} }
	purge := coord.Invalidation{Kind: coord.PurgeAll, Reason: "overflow"}
	ok := [][]coord.Invalidation{
		{key("k0"), key("k1"), key("k2")},
		{key("k0"), purge, key("k2")},
		{key("k0"), key("k2"), purge},
		{purge},
		{key("k0"), purge},
	}
	for i, seq := range ok {
		if !noSkip(seq, 3) {
			t.Errorf("sequence %d flagged as a silent skip: %v", i, keysOf(seq))
		}
	}
	bad := [][]coord.Invalidation{
		{key("k0"), key("k2")},
		{purge, key("k0"), key("k2")},
		{key("k0"), key("k1")},
	}
	for i, seq := range bad {
		if noSkip(seq, 3) {
			t.Errorf("silent skip %d not flagged: %v", i, keysOf(seq))
		}
	}
}

func noSkip(seq []coord.Invalidation, n int) bool { return silentSkip(seq, n, "k") < 0 }
