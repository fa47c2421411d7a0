package coordmock_test

import (
	"context"
	"fmt"

	"go.uber.org/mock/gomock"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/cache"
	"github.com/cgn-bot/coord/coordmock"
)

// printer is a gomock.TestReporter for the examples; a test passes its
// *testing.T instead.
type printer struct{}

func (printer) Errorf(format string, args ...any) { fmt.Printf("error: "+format+"\n", args...) }
func (printer) Fatalf(format string, args ...any) { fmt.Printf("fatal: "+format+"\n", args...) }

// A near cache over a mocked Invalidator: ReadySubscription closes its
// Done channel when the cache unsubscribes, so Close returns.
func ExampleReadySubscription() {
	ctrl := gomock.NewController(printer{}) // in a test: gomock.NewController(t)
	inv := coordmock.NewMockInvalidator(ctrl)
	inv.EXPECT().Subscribe(gomock.Any(), gomock.Any(), gomock.Any()).
		Return(coordmock.ReadySubscription(ctrl), nil)

	users, err := cache.New[string](context.Background(), inv, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := users.GetOrLoad(context.Background(), "user:1", func(context.Context, string) (string, error) {
		return "Ada", nil
	})
	fmt.Println(v, err)
	_ = users.Close()
	ctrl.Finish()
	fmt.Println("closed")
	// Output:
	// Ada <nil>
	// closed
}

// WithLock over a mocked Locker: GrantedLease answers the calls WithLock
// makes (Done, Release) and expects the Release.
func ExampleGrantedLease() {
	ctrl := gomock.NewController(printer{}) // in a test: gomock.NewController(t)
	locker := coordmock.NewMockLocker(ctrl)
	lease := coordmock.GrantedLease(ctrl, "nightly", 7)
	locker.EXPECT().Acquire(gomock.Any(), "nightly", gomock.Any()).Return(lease, nil)

	err := coord.WithLock(context.Background(), locker, "nightly", func(ctx context.Context) error {
		fmt.Println("running under fence", lease.Fence())
		return nil
	})
	ctrl.Finish()
	fmt.Println(err, lease.Released())
	// Output:
	// running under fence 7
	// <nil> 1
}
