package redistest

import (
	"strings"
	"testing"
	"time"
)

func TestSentinelEventLines(t *testing.T) {
	at := time.Date(2026, time.December, 6, 14, 22, 12, 345e6, time.Local)
	for _, tc := range []struct {
		line  string
		event bool
	}{
		{"4242:X 06 Dec 2026 14:22:12.345 # +sdown master mymaster 127.0.0.1 19467", true},
		{"4242:X 06 Dec 2026 14:22:12.345 # +switch-master mymaster 127.0.0.1 1 127.0.0.1 2", true},
		{"4242:X 06 Dec 2026 14:22:12.345 # +tilt #tilt mode entered", true},
		{"4242:X 06 Dec 2026 14:22:12.345 * +slave slave 127.0.0.1:2 127.0.0.1 2 @ mymaster 127.0.0.1 1", false},
		{"4242:X 06 Dec 2026 14:22:12.345 * Sentinel new configuration saved on disk", false},
	} {
		if got := isSentinelEvent(tc.line); got != tc.event {
			t.Errorf("isSentinelEvent(%q) = %v, want %v", tc.line, got, tc.event)
		}
		got, ok := logLineTime(tc.line)
		if !ok || !got.Equal(at) {
			t.Errorf("logLineTime(%q) = %v, %v, want %v", tc.line, got, ok, at)
		}
	}
	if _, ok := logLineTime("garbage"); ok {
		t.Error("logLineTime of a line without a time reported one")
	}
}

// TestSentinelEventsOfAFailover: Events reports the steps of a failover
// after the master is killed, and leaves out what was logged before the
// time it is given.
func TestSentinelEventsOfAFailover(t *testing.T) {
	t.Parallel()
	g := StartSentinel(t)
	old := g.Master(t)
	before := time.Now()
	old.Kill(t)
	g.WaitForNewMaster(t, old)
	after := time.Now()
	ev := g.Events(before)
	t.Logf("events:\n%s", strings.Join(ev, "\n"))
	for _, want := range []string{"+sdown master", "+odown master", "+switch-master"} {
		found := false
		for _, line := range ev {
			found = found || strings.Contains(line, want)
		}
		if !found {
			t.Errorf("no %q among the events of a failover", want)
		}
	}
	for _, line := range g.Events(after) {
		if strings.Contains(line, "+switch-master") {
			t.Errorf("Events(after the switch) lists %q", line)
		}
	}
}
