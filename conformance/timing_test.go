package conformance

import (
	"strings"
	"testing"
	"time"
)

// TestTimingDefault: an undeclared granularity is 1ms, and the 1ms table
// keeps the suite's bounds; only the auto-renewed lease is longer (2s, it
// was 300ms and lost its lease under load).
func TestTimingDefault(t *testing.T) {
	zero, ms := newTiming(0), newTiming(time.Millisecond)
	if zero != ms {
		t.Errorf("granularity 0 gives %+v, want the 1ms table %+v", zero, ms)
	}
	if neg := newTiming(-time.Second); neg != ms {
		t.Errorf("a negative granularity gives %+v, want the 1ms table", neg)
	}
	want := []struct {
		name      string
		got, want time.Duration
	}{
		{"tick", ms.tick, time.Millisecond},
		{"short", ms.short, 150 * time.Millisecond},
		{"lease", ms.lease, 400 * time.Millisecond},
		{"renewed", ms.renewed, 2 * time.Second},
		{"long", ms.long, 5 * time.Second},
		{"held", ms.held, 30 * time.Second},
		{"drift", ms.drift, 2 * time.Second},
		{"expiry", ms.expiry, 1850 * time.Millisecond},
		{"settle", ms.settle, 150 * time.Millisecond},
		{"retry", ms.retry, 2 * time.Second},
		{"wake", ms.wake, 100 * time.Millisecond},
		{"cancel", ms.cancel, 500 * time.Millisecond},
		{"prompt", ms.prompt, time.Second},
		{"deadline", ms.deadline, 300 * time.Millisecond},
		{"poll", ms.poll, 50 * time.Millisecond},
		{"critical", ms.critical, 100 * time.Microsecond},
		{"work", ms.work, 20 * time.Millisecond},
		{"resend", ms.resend, 200 * time.Millisecond},
		{"connect", ms.connect, 3 * time.Second},
		{"closing", ms.closing, 5 * time.Second},
		{"restart", ms.restart, 10 * time.Second},
		{"guard", ms.guard, 20 * time.Second},
		{"purgeEvery", ms.purgeEvery, time.Second},
		{"clock", ms.clock, 10 * time.Second},
		{"delivery", ms.delivery, 3 * time.Second},
		{"ended", ms.ended, 2 * time.Second},
		{"reconnect", ms.reconnect, 5 * time.Second},
		{"idle", ms.idle, 600 * time.Millisecond},
		{"stamp", ms.stamp, 5 * time.Millisecond},
		{"early", ms.early, 50 * time.Millisecond},
		{"gone", ms.gone, time.Second},
		{"lists", ms.lists, 250 * time.Millisecond},
	}
	for _, w := range want {
		if w.got != w.want {
			t.Errorf("1ms table: %s = %v, want %v", w.name, w.got, w.want)
		}
	}
}

// leases returns the table's lease lengths by name.
func (tm timing) leases() map[string]time.Duration {
	return map[string]time.Duration{
		"short": tm.short, "lease": tm.lease, "renewed": tm.renewed,
		"long": tm.long, "held": tm.held, "idle": tm.idle,
	}
}

// TestTimingScales: every lease is at least two ticks of the declared
// granularity (three for an auto-renewed one, renewed at a third), the
// slack on an expiry grows with it, and the order the cases rely on holds
// at every granularity.
func TestTimingScales(t *testing.T) {
	prev := newTiming(0)
	for _, g := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond,
		500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second} {
		tm := newTiming(g)
		if tm.tick != g {
			t.Errorf("granularity %v: tick = %v", g, tm.tick)
		}
		for name, d := range tm.leases() {
			if d < 2*g {
				t.Errorf("granularity %v: %s = %v, want at least two ticks", g, name, d)
			}
			if p := prev.leases()[name]; d < p {
				t.Errorf("granularity %v: %s = %v shrank from %v at a finer granularity", g, name, d, p)
			}
		}
		if tm.renewed < 3*g || tm.renewed < 2*time.Second {
			t.Errorf("granularity %v: renewed = %v, want at least 2s and three ticks", g, tm.renewed)
		}
		if tm.apart <= 2*tm.stamp || tm.stamp < g || tm.gone < 2*g || tm.early < g {
			t.Errorf("granularity %v: stamp %v, apart %v, early %v, gone %v do not cover the granularity", g, tm.stamp, tm.apart, tm.early, tm.gone)
		}
		if tm.expiry < 2*g || tm.drift < 2*g || tm.settle < g {
			t.Errorf("granularity %v: expiry %v, drift %v, settle %v do not cover the granularity", g, tm.expiry, tm.drift, tm.settle)
		}
		if tm.expiry < prev.expiry || tm.drift < prev.drift || tm.settle < prev.settle {
			t.Errorf("granularity %v: a slack shrank at a coarser granularity", g)
		}
		// Order: short ≤ lease ≤ renewed < long < held; long keeps its
		// TTL checkable past drift.
		if tm.short > tm.lease || tm.lease > tm.renewed || tm.renewed >= tm.long || tm.long >= tm.held {
			t.Errorf("granularity %v: leases out of order: %+v", g, tm.leases())
		}
		if tm.long <= tm.drift || tm.held-tm.drift <= tm.long {
			t.Errorf("granularity %v: long %v and held %v are not told apart past drift %v", g, tm.long, tm.held, tm.drift)
		}
		prev = tm
	}
	sec := newTiming(time.Second)
	for name, d := range sec.leases() {
		if d < 2*time.Second {
			t.Errorf("1s granularity: %s = %v, want at least 2s", name, d)
		}
	}
	if ms := newTiming(0); sec.lease+sec.expiry <= ms.lease+ms.expiry {
		t.Errorf("1s granularity: the expiry bound %v did not grow from %v", sec.lease+sec.expiry, ms.lease+ms.expiry)
	}
}

// TestTimingBoundsTellBrokenFromSlow: at every granularity, each bound
// stays far enough below what a broken mechanism would take.
func TestTimingBoundsTellBrokenFromSlow(t *testing.T) {
	for _, g := range []time.Duration{0, time.Millisecond, 100 * time.Millisecond, time.Second, 2 * time.Second} {
		tm := newTiming(g)
		if tm.wake*20 > tm.retry {
			t.Errorf("granularity %v: wake %v is over retry/20 (%v)", g, tm.wake, tm.retry)
		}
		// DeadlineEndsWait and CancelEndsWait: a wait that ignores its
		// ctx takes the retry delay, more than the bound.
		if tm.deadline+tm.prompt >= 2*tm.retry {
			t.Errorf("granularity %v: the deadline bound %v is not below the retry delay %v", g, tm.deadline+tm.prompt, 2*tm.retry)
		}
		if tm.cancel*4 > tm.retry || tm.prompt*2 > tm.retry {
			t.Errorf("granularity %v: cancel %v or prompt %v too close to the retry delay %v", g, tm.cancel, tm.prompt, tm.retry)
		}
		// An auto-renewed lease survives a stall of two thirds of it,
		// never under 1.3s.
		if tm.renewed*2/3 < 1300*time.Millisecond {
			t.Errorf("granularity %v: renewed %v survives only a %v stall", g, tm.renewed, tm.renewed*2/3)
		}
		if tm.held < 10*tm.renewed {
			t.Errorf("granularity %v: held %v is not far beyond renewed %v", g, tm.held, tm.renewed)
		}
	}
}

// TestNegativeGranularityRefused: a harness that declares a negative
// granularity fails CapabilitiesHonest rather than running on a table it
// did not mean.
func TestNegativeGranularityRefused(t *testing.T) {
	for _, g := range []time.Duration{-time.Nanosecond, -time.Second} {
		got := capabilityProblems(bareHarness{caps: Capabilities{LeaseGranularity: g}})
		if len(got) != 1 || !strings.Contains(got[0], "LeaseGranularity") {
			t.Errorf("granularity %v: problems %q, want one about LeaseGranularity", g, got)
		}
	}
	for _, g := range []time.Duration{0, time.Millisecond, time.Second} {
		if got := capabilityProblems(bareHarness{caps: Capabilities{LeaseGranularity: g}}); len(got) != 0 {
			t.Errorf("granularity %v: problems %q, want none", g, got)
		}
	}
}
