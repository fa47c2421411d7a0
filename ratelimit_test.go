package coord_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

func TestLimitValidate(t *testing.T) {
	ok := []struct {
		l coord.Limit
		n int
	}{
		{coord.PerSecond(10), 10},
		{coord.Limit{Rate: 1, Period: time.Millisecond}, 1},
		{coord.Limit{Rate: 1000, Period: time.Millisecond}, 1},
		{coord.Limit{Rate: 1, Period: coord.MaxRatePeriod, Burst: 10}, 10},
		{coord.Limit{Rate: coord.MaxWindowRate, Period: time.Hour, Window: true}, coord.MaxWindowRate},
	}
	for _, c := range ok {
		if err := c.l.Validate(c.n); err != nil {
			t.Errorf("%s n=%d: %v", c.l, c.n, err)
		}
	}
	bad := []struct {
		l coord.Limit
		n int
	}{
		{coord.PerSecond(10), 11},
		{coord.PerSecond(10), 0},
		{coord.Limit{Rate: 1001, Period: time.Millisecond}, 1},
		{coord.Limit{Rate: 1, Period: coord.MaxRatePeriod + 1}, 1},
		{coord.Limit{Rate: 1, Period: coord.MaxRatePeriod, Burst: 11}, 1},
		{coord.Limit{Rate: coord.MaxRate + 1, Period: coord.MaxRatePeriod}, 1},
		{coord.Limit{Rate: 1, Period: coord.MaxRatePeriod, Burst: coord.MaxRate}, 1},
		{coord.Limit{Rate: 3, Period: coord.MaxRatePeriod, Burst: 1 << 29}, 1},
	}
	for _, c := range bad {
		if err := c.l.Validate(c.n); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s n=%d: %v, want ErrInvalid", c.l, c.n, err)
		}
	}
}

// denyAll denies every request with a fixed RetryAfter and counts calls.
type denyAll struct {
	retry time.Duration
	calls int
}

func (d *denyAll) Allow(context.Context, string, coord.Limit, int) (coord.RateDecision, error) {
	d.calls++
	return coord.RateDecision{RetryAfter: d.retry}, nil
}
func (d *denyAll) Peek(context.Context, string, coord.Limit) (coord.RateDecision, error) {
	return coord.RateDecision{RetryAfter: d.retry}, nil
}
func (d *denyAll) Reset(context.Context, string) error { return nil }

func TestWaitRateDeadlineFirst(t *testing.T) {
	rl := &denyAll{retry: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := coord.WaitRate(ctx, rl, "k", coord.PerSecond(1), 1)
	if !errors.Is(err, coord.ErrRateLimited) || !errors.Is(err, context.DeadlineExceeded) || rl.calls != 1 {
		t.Fatalf("WaitRate = %v after %d calls, want ErrRateLimited and DeadlineExceeded after 1", err, rl.calls)
	}
	unavailable := errors.New("down")
	err = coord.WaitRate(context.Background(), errLimiter{unavailable}, "k", coord.PerSecond(1), 1)
	if !errors.Is(err, unavailable) {
		t.Fatalf("WaitRate on an error = %v", err)
	}
}

type errLimiter struct{ err error }

func (e errLimiter) Allow(context.Context, string, coord.Limit, int) (coord.RateDecision, error) {
	return coord.RateDecision{}, e.err
}
func (e errLimiter) Peek(context.Context, string, coord.Limit) (coord.RateDecision, error) {
	return coord.RateDecision{}, e.err
}
func (e errLimiter) Reset(context.Context, string) error { return e.err }
