package coord

import (
	"context"
	"time"
)

// MaxJobPeriod is the longest period of a job (about ten years). [Jobs]
// refuses a longer one, or one under a millisecond, with an error wrapping
// [ErrInvalid].
const MaxJobPeriod = 10 * 366 * 24 * time.Hour

// Jobs keeps the record that lets a named job run at most once per period
// across every instance, on the backend's clock (never an instance's),
// whatever the instances' clock skew and ticker phase. Most callers use
// [RunEvery], which builds the whole schedule on it; Jobs is the record
// alone.
//
// A job's periods are aligned on the backend clock's Unix epoch: with a
// period of an hour, period Index starts on the hour. The record of a
// job holds one period (the latest one anything was recorded in): whether
// the job ran in it and how many runs failed in it. It expires when its
// period ends, so the backend keeps nothing for jobs that no longer run.
// Every instance must use the same period for a job: a record made with
// another period counts as no record.
//
// Periods are kept to the microsecond (a period is truncated to a whole
// number of microseconds). Job names follow the rules of resource names
// (see [MaxNameLen]).
//
// A Jobs is safe for concurrent use by multiple goroutines. A backend
// without it returns one whose methods fail with [ErrUnsupported].
type Jobs interface {
	// Due reports job's current period on the backend's clock, whether
	// the job already ran in it and how many runs failed in it.
	//
	// May return [ErrInvalid] (a bad name, a period under 1ms or over
	// [MaxJobPeriod]), [ErrClosed] or [ErrUnavailable].
	Due(ctx context.Context, job string, period time.Duration) (JobSlot, error)
	// Complete records that job ran in slot's period, so that Due reports
	// it done until the next period starts. It is a monotonic max: a
	// Complete for a period that has already ended changes nothing (in
	// particular, it never moves the record back), and a second Complete
	// for the same period is harmless.
	//
	// May return [ErrInvalid] (a bad name, a slot Due cannot have
	// reported: a bad period, a negative index or one of a period not
	// started yet), [ErrClosed] or [ErrUnavailable].
	Complete(ctx context.Context, job string, slot JobSlot) error
	// Fail records that a run of job failed in slot's period, so that Due
	// counts it in [JobSlot.Failures] until the period ends (every
	// instance's retries can back off on it). A Fail for a period that has
	// already ended changes nothing. Fail never marks the job done.
	//
	// May return the errors of Complete.
	Fail(ctx context.Context, job string, slot JobSlot) error
}

// JobSlot is one period of a job, as [Jobs.Due] reports it.
type JobSlot struct {
	// Period is the job's period, truncated to the microsecond.
	Period time.Duration
	// Index numbers the period: the backend clock's time since the Unix
	// epoch divided by Period.
	Index int64
	// Done reports whether the job already ran in this period.
	Done bool
	// Failures is the number of failed runs recorded in this period (see
	// [Jobs.Fail]).
	Failures int
	// Next is the time left, on the backend's clock, until the next
	// period starts: between 1µs and Period.
	Next time.Duration
}

// Start returns when the slot's period starts, on the backend's clock.
func (s JobSlot) Start() time.Time {
	return time.UnixMicro(s.Index * s.Period.Microseconds())
}
