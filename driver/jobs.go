package driver

import (
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
)

// JobPeriod checks job and period for [coord.Jobs] and returns the period
// in whole microseconds, the unit every backend keeps it in. The error
// wraps [coord.ErrInvalid].
func JobPeriod(job string, period time.Duration) (int64, error) {
	if err := ValidateName("job", job); err != nil {
		return 0, err
	}
	if period < time.Millisecond || period > coord.MaxJobPeriod {
		return 0, fmt.Errorf("%w: job period %v must be between 1ms and %v", coord.ErrInvalid, period, coord.MaxJobPeriod)
	}
	return period.Microseconds(), nil
}

// JobSlotPeriod checks job and a slot given to [coord.Jobs.Complete] or
// [coord.Jobs.Fail] and returns its period in whole microseconds. A slot
// whose index is of a period not started yet is refused by the backend,
// which alone knows its clock. The error wraps [coord.ErrInvalid].
func JobSlotPeriod(job string, slot coord.JobSlot) (int64, error) {
	p, err := JobPeriod(job, slot.Period)
	if err != nil {
		return 0, err
	}
	if slot.Index < 0 {
		return 0, fmt.Errorf("%w: job slot index %d is negative", coord.ErrInvalid, slot.Index)
	}
	return p, nil
}

// JobSlotAt returns the slot of a job with period p (microseconds) at
// now (microseconds since the Unix epoch), given the job's record: the
// period the record is about (recPeriod, recIndex), whether the job ran
// in it and its failures. A record of another period or of an ended one
// counts as none.
func JobSlotAt(now, p, recPeriod, recIndex int64, done bool, failures int) coord.JobSlot {
	idx := now / p
	s := coord.JobSlot{
		Period: time.Duration(p) * time.Microsecond,
		Index:  idx,
		Next:   time.Duration(p-now%p) * time.Microsecond,
	}
	if recPeriod == p && recIndex == idx {
		s.Done, s.Failures = done, max(failures, 0)
	}
	return s
}

// ErrFutureSlot returns the error of a Complete or Fail for a slot whose
// period has not started yet on the backend's clock (index cur now).
func ErrFutureSlot(job string, slot coord.JobSlot, cur int64) error {
	return fmt.Errorf("%w: job %q: slot %d is of a period not started yet (now %d)", coord.ErrInvalid, job, slot.Index, cur)
}
