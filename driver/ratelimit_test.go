package driver_test

import (
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// TestGCRA walks a 10/s limit with a burst of 5 (interval 100ms) through
// a burst, a denial, a refill and a peek, in microseconds.
func TestGCRA(t *testing.T) {
	l := coord.Limit{Rate: 10, Period: time.Second, Burst: 5}
	const ms = 1000
	now, tat := int64(1_000_000), int64(0)
	var d coord.RateDecision
	for i := range 5 {
		d, tat = driver.GCRA(now, tat, l, 1, true)
		if !d.Allowed || d.Remaining != 4-i || d.ResetAfter != time.Duration(i+1)*100*time.Millisecond {
			t.Fatalf("event %d: %+v", i+1, d)
		}
	}
	d, tat2 := driver.GCRA(now+30*ms, tat, l, 1, true)
	if d.Allowed || tat2 != tat || d.RetryAfter != 70*time.Millisecond || d.Remaining != 0 || d.ResetAfter != 470*time.Millisecond {
		t.Fatalf("6th: %+v tat %d→%d", d, tat, tat2)
	}
	d, _ = driver.GCRA(now+250*ms, tat, l, 3, true)
	if d.Allowed || d.Remaining != 2 || d.RetryAfter != 50*time.Millisecond {
		t.Fatalf("3 at +250ms: %+v, want denied, 2 remaining, retry 50ms", d)
	}
	p, same := driver.GCRA(now+250*ms, tat, l, 1, false)
	if !p.Allowed || p.Remaining != 2 || same != tat || p.ResetAfter != 250*time.Millisecond {
		t.Fatalf("peek at +250ms: %+v", p)
	}
	d, tat = driver.GCRA(now+300*ms, tat, l, 3, true)
	if !d.Allowed || d.Remaining != 0 || d.ResetAfter != 500*time.Millisecond {
		t.Fatalf("3 at +300ms: %+v", d)
	}
	// A TAT beyond any this limit makes (a clock that stepped back):
	// the whole burst counts as taken.
	d, _ = driver.GCRA(now, now+time.Hour.Microseconds(), l, 1, true)
	if d.Allowed || d.Remaining != 0 || d.RetryAfter != 100*time.Millisecond || d.ResetAfter != 500*time.Millisecond {
		t.Fatalf("TAT an hour ahead: %+v", d)
	}
	// Long idle: back to the full burst, never more.
	d, _ = driver.GCRA(now+time.Hour.Microseconds(), tat, l, 1, false)
	if d.Remaining != 5 || d.ResetAfter != 0 {
		t.Fatalf("after an hour: %+v", d)
	}
}
