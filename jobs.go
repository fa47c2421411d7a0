package coord

import (
	"context"
	"time"
)

// Jobs keeps the record that lets a named job run at most once per period
// across every instance, on the backend's clock (never an instance's),
// whatever the instances' clock skew and ticker phase. A Jobs is safe for
// concurrent use by multiple goroutines.
//
// A backend without it returns one whose methods fail with
// [ErrUnsupported].
type Jobs interface {
	// Due reports job's current period on the backend's clock and
	// whether it still has to run in it.
	Due(ctx context.Context, job string, period time.Duration) (JobSlot, error)
	// Complete records that job ran in slot's period, so Due reports it
	// done until the next period starts.
	Complete(ctx context.Context, job string, slot JobSlot) error
}

// JobSlot is one period of a job, as [Jobs.Due] reports it.
type JobSlot struct {
	// Period is the job's period.
	Period time.Duration
	// Index numbers the period: the backend clock's time since the Unix
	// epoch divided by Period.
	Index int64
	// Done reports whether the job already ran in this period.
	Done bool
	// Next is the time left, on the backend's clock, until the next
	// period starts.
	Next time.Duration
}
