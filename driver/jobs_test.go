package driver_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

func TestJobPeriod(t *testing.T) {
	for _, p := range []time.Duration{0, -time.Hour, time.Millisecond - 1, coord.MaxJobPeriod + 1} {
		if _, err := driver.JobPeriod("j", p); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("JobPeriod(%v) = %v; want ErrInvalid", p, err)
		}
	}
	if _, err := driver.JobPeriod("", time.Hour); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("JobPeriod of an empty name = %v; want ErrInvalid", err)
	}
	if p, err := driver.JobPeriod("j", 1500*time.Nanosecond+time.Millisecond); err != nil || p != 1001 {
		t.Errorf("JobPeriod(1.0015ms) = %d, %v; want 1001µs", p, err)
	}
	if _, err := driver.JobSlotPeriod("j", coord.JobSlot{Period: time.Hour, Index: -1}); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("JobSlotPeriod of a negative index = %v; want ErrInvalid", err)
	}
}

func TestJobSlotAt(t *testing.T) {
	const p = 1000
	s := driver.JobSlotAt(5000, p, p, 5, true, 2)
	if s.Index != 5 || s.Next != time.Millisecond || !s.Done || s.Failures != 2 || s.Period != time.Millisecond {
		t.Errorf("at a period's first µs: %+v; want index 5, next 1ms, done, 2 failures", s)
	}
	if s := driver.JobSlotAt(5999, p, p, 5, true, 2); s.Index != 5 || s.Next != time.Microsecond {
		t.Errorf("at a period's last µs: %+v; want index 5, next 1µs", s)
	}
	if s := driver.JobSlotAt(6000, p, p, 5, true, 2); s.Index != 6 || s.Done || s.Failures != 0 {
		t.Errorf("a record of the ended period: %+v; want index 6, not done", s)
	}
	if s := driver.JobSlotAt(5500, p, 2*p, 5, true, 2); s.Done || s.Failures != 0 {
		t.Errorf("a record of another period length: %+v; want not done", s)
	}
	if s := driver.JobSlotAt(5500, p, p, 5, false, -3); s.Failures != 0 {
		t.Errorf("negative failures: %+v; want 0", s)
	}
}
