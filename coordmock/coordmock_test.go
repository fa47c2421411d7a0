package coordmock_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/coordmock"
	"go.uber.org/goleak"
	"go.uber.org/mock/gomock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Every mock implements its interface.
var (
	_ coord.Backend      = (*coordmock.MockBackend)(nil)
	_ coord.Locker       = (*coordmock.MockLocker)(nil)
	_ coord.Lock         = (*coordmock.MockLock)(nil)
	_ coord.SessionStore = (*coordmock.MockSessionStore)(nil)
	_ coord.Invalidator  = (*coordmock.MockInvalidator)(nil)
	_ coord.EventBus     = (*coordmock.MockEventBus)(nil)
	_ coord.Subscription = (*coordmock.MockSubscription)(nil)
	_ coord.Aser         = (*coordmock.MockAser)(nil)
)

func TestWithLockOnMocks(t *testing.T) {
	ctrl := gomock.NewController(t)
	locker := coordmock.NewMockLocker(ctrl)
	lock := coordmock.NewMockLock(ctrl)
	done := make(chan struct{})

	locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(lock, nil)
	lock.EXPECT().Done().Return(done).AnyTimes()
	lock.EXPECT().Release(gomock.Any()).Return(nil)

	ran := false
	err := coord.WithLock(t.Context(), locker, "job", func(context.Context) error {
		ran = true
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("WithLock = %v, ran = %v; want nil, true", err, ran)
	}
}

func TestWithLockNotAcquired(t *testing.T) {
	ctrl := gomock.NewController(t)
	locker := coordmock.NewMockLocker(ctrl)
	locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(nil, coord.ErrNotAcquired)

	err := coord.WithLock(t.Context(), locker, "job", func(context.Context) error {
		t.Error("fn ran without the lock")
		return nil
	})
	if !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("WithLock = %v; want ErrNotAcquired", err)
	}
}
