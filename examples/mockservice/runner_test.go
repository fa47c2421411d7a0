package mockservice_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/coordmock"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/examples/mockservice"
	"go.uber.org/goleak"
	"go.uber.org/mock/gomock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type deps struct {
	locker *coordmock.MockLocker
	lock   *coordmock.MockLock
	cache  *coordmock.MockInvalidator
	events *coordmock.MockEventBus
	done   chan struct{} // the lease's Done; close it to lose the lease
	runner *mockservice.Runner
}

func newDeps(t *testing.T) *deps {
	ctrl := gomock.NewController(t)
	d := &deps{
		locker: coordmock.NewMockLocker(ctrl),
		lock:   coordmock.NewMockLock(ctrl),
		cache:  coordmock.NewMockInvalidator(ctrl),
		events: coordmock.NewMockEventBus(ctrl),
		done:   make(chan struct{}),
	}
	d.lock.EXPECT().Done().Return(d.done).AnyTimes()
	d.runner = mockservice.NewRunner(d.locker, d.cache, d.events, time.Minute)
	return d
}

// lockOptions checks the options Run passes to Acquire.
func lockOptions(t *testing.T) gomock.Matcher {
	return gomock.Cond(func(opts []coord.LockOption) bool {
		o, err := driver.NewLockOptions(opts...)
		if err != nil {
			t.Errorf("Run passed invalid lock options: %v", err)
			return false
		}
		return o.TTL == time.Minute && o.Retries == 0 && o.AutoRenew
	})
}

func TestRunSuccess(t *testing.T) {
	d := newDeps(t)
	gomock.InOrder(
		d.locker.EXPECT().Acquire(gomock.Any(), "job:report", lockOptions(t)).Return(d.lock, nil),
		d.cache.EXPECT().Invalidate(gomock.Any(), "job:report:result", nil).Return(nil),
		d.events.EXPECT().Publish(gomock.Any(), mockservice.FinishedTopic, gomock.Cond(func(p any) bool {
			f, ok := p.(mockservice.Finished)
			return ok && f.Job == "report"
		})).Return(nil),
		d.lock.EXPECT().Release(gomock.Any()).Return(nil),
	)
	ran := 0
	err := d.runner.Run(t.Context(), "report", func(context.Context) error {
		ran++
		return nil
	})
	if err != nil || ran != 1 {
		t.Fatalf("Run = %v, job ran %d times; want nil, 1", err, ran)
	}
}

func TestRunSkippedWhenHeldElsewhere(t *testing.T) {
	d := newDeps(t)
	d.locker.EXPECT().Acquire(gomock.Any(), "job:report", gomock.Any()).Return(nil, coord.ErrNotAcquired)
	// No Invalidate, Publish or Release: gomock fails the test on any.
	err := d.runner.Run(t.Context(), "report", func(context.Context) error {
		t.Error("the job ran without the lease")
		return nil
	})
	if !errors.Is(err, mockservice.ErrSkipped) || !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("Run = %v; want ErrSkipped wrapping ErrNotAcquired", err)
	}
}

func TestRunJobFails(t *testing.T) {
	d := newDeps(t)
	boom := errors.New("boom")
	d.locker.EXPECT().Acquire(gomock.Any(), "job:report", gomock.Any()).Return(d.lock, nil)
	d.lock.EXPECT().Release(gomock.Any()).Return(nil)
	err := d.runner.Run(t.Context(), "report", func(context.Context) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v; want the job's error", err)
	}
}

func TestRunPublishFails(t *testing.T) {
	d := newDeps(t)
	d.locker.EXPECT().Acquire(gomock.Any(), "job:report", gomock.Any()).Return(d.lock, nil)
	d.cache.EXPECT().Invalidate(gomock.Any(), "job:report:result", nil).Return(nil)
	d.events.EXPECT().Publish(gomock.Any(), mockservice.FinishedTopic, gomock.Any()).Return(coord.ErrUnavailable)
	d.lock.EXPECT().Release(gomock.Any()).Return(nil) // released despite the failure
	err := d.runner.Run(t.Context(), "report", func(context.Context) error { return nil })
	if !errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("Run = %v; want ErrUnavailable", err)
	}
}

func TestRunLeaseLost(t *testing.T) {
	d := newDeps(t)
	d.locker.EXPECT().Acquire(gomock.Any(), "job:report", gomock.Any()).Return(d.lock, nil)
	d.lock.EXPECT().Release(gomock.Any()).Return(coord.ErrExpired)
	err := d.runner.Run(t.Context(), "report", func(ctx context.Context) error {
		close(d.done) // the backend finds the lease lost
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(10 * time.Second):
			return errors.New("the job's context was not cancelled")
		}
	})
	if !errors.Is(err, coord.ErrLeaseLost) {
		t.Fatalf("Run = %v; want ErrLeaseLost", err)
	}
}
