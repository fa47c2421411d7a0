package driver

import (
	"time"

	"github.com/cgn-bot/coord"
)

// GCRA is the arithmetic of a GCRA decision in integer microseconds, for
// backends that keep the state themselves (the Redis script does the same
// in Lua). now is the backend's clock; tat is the key's theoretical
// arrival time (0, or any time not after now, for a key with no state).
// With record false nothing is recorded (a peek): Remaining and
// ResetAfter then describe the state as it is. It returns the decision
// and the key's new TAT, equal to tat when nothing is recorded; the state
// may be forgotten at now + ResetAfter. limit and n must be valid (see
// [coord.Limit.Validate]).
func GCRA(now, tat int64, limit coord.Limit, n int, record bool) (coord.RateDecision, int64) {
	t := limit.IntervalMicros()
	tau := int64(limit.Size()) * t
	if tat < now {
		tat = now
	} else if tat > now+tau {
		tat = now + tau // another limit's state on the key: the whole burst is taken
	}
	newTat := tat + int64(n)*t
	diff := now - (newTat - tau)
	if diff < 0 || !record {
		d := coord.RateDecision{
			Allowed:    diff >= 0,
			Remaining:  int((now + tau - tat) / t),
			ResetAfter: micros(tat - now),
		}
		if diff < 0 {
			d.RetryAfter = micros(-diff)
		}
		return d, tat
	}
	return coord.RateDecision{
		Allowed:    true,
		Remaining:  int(diff / t),
		ResetAfter: micros(newTat - now),
	}, newTat
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }
