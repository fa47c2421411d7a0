package conformance

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// timeline records what the goroutines of a case did and when, so that a
// case that fails once on a loaded machine explains itself: it is logged
// when the case has failed. Safe for concurrent use.
type timeline struct {
	start time.Time
	mu    sync.Mutex
	lines []string
}

// timelineKeep bounds the lines a timeline keeps (the last ones).
const timelineKeep = 400

func newTimeline() *timeline { return &timeline{start: time.Now()} }

// add records one step, stamped with the time since the timeline began.
func (tl *timeline) add(format string, args ...any) {
	line := fmt.Sprintf("%8.1fms ", float64(time.Since(tl.start).Microseconds())/1000) + fmt.Sprintf(format, args...)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.lines) == timelineKeep {
		tl.lines = append(tl.lines[:0], tl.lines[1:]...)
	}
	tl.lines = append(tl.lines, line)
}

// logIfFailed logs the timeline when t has failed.
func (tl *timeline) logIfFailed(t *testing.T) {
	t.Helper()
	if !t.Failed() {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	t.Logf("timeline of the case (last %d steps):\n%s", len(tl.lines), strings.Join(tl.lines, "\n"))
}
