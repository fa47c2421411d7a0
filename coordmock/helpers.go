package coordmock

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.uber.org/mock/gomock"

	"github.com/cgn-bot/coord"
)

// Subscription is a [MockSubscription] that keeps the rules of
// [coord.Subscription] by itself: Done returns one channel, which
// Unsubscribe closes (called any number of times, from any goroutine).
// Code that waits for Done after Unsubscribe, as a near cache's Close
// does, returns instead of hanging. Make one with [ReadySubscription].
//
// Its expectations are set with AnyTimes, so adding more for Done or
// Unsubscribe has no effect; for other behaviour, build a
// [NewMockSubscription] yourself. A Subscription is safe for concurrent
// use by multiple goroutines.
type Subscription struct {
	*MockSubscription
	done chan struct{}
	once sync.Once
}

// ReadySubscription returns a live subscription for a mocked
// Subscribe to return:
//
//	inv.EXPECT().Subscribe(gomock.Any(), gomock.Any(), gomock.Any()).
//		Return(coordmock.ReadySubscription(ctrl), nil)
//
// Its Unsubscribe closes its Done channel; [Subscription.End] closes it
// too, as a closing backend does.
func ReadySubscription(ctrl *gomock.Controller) *Subscription {
	s := &Subscription{MockSubscription: NewMockSubscription(ctrl), done: make(chan struct{})}
	s.EXPECT().Unsubscribe().Do(s.End).AnyTimes()
	s.EXPECT().Done().Return(s.done).AnyTimes()
	return s
}

// End ends the subscription as a backend that closes does: Done is
// closed. It is idempotent, and so is Unsubscribe after it.
func (s *Subscription) End() {
	s.once.Do(func() { close(s.done) })
}

// Ended reports whether the subscription has ended (Unsubscribe or End
// was called).
func (s *Subscription) Ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Lease is a [MockLock] that behaves as a held lease on its own, with the
// calls [coord.WithLock] makes (Done and Release) and the ones code under
// a lease makes (Resource, Fence, Token, TTL, Extend) already expected.
// Make one with [GrantedLease].
//
// The rules it keeps, those of [coord.Lock]:
//
//   - Resource and Fence return what GrantedLease was given; Token returns
//     a fixed string that is no secret.
//   - Done returns one channel, closed by the first Release or by
//     [Lease.Lose].
//   - Release must be called at least once: as with a real lease, one the
//     code under test never releases fails the test when the controller
//     finishes. The first Release returns nil; later ones, and a Release
//     after Lose, return [coord.ErrNotHeld].
//   - While held, TTL returns the length of the last Extend (initially
//     [coord.DefaultLockTTL]) and Extend returns nil ([coord.ErrInvalid]
//     for a length that is not positive); once released or lost, both
//     return [coord.ErrNotHeld].
//
// Its expectations are set with AnyTimes (Release with MinTimes(1)), so
// adding more for the same methods has no effect; for other behaviour (an
// Extend that fails with [coord.ErrUnavailable], say), build a
// [NewMockLock] yourself. A Lease is safe for concurrent use by multiple
// goroutines.
type Lease struct {
	*MockLock
	done chan struct{}

	mu       sync.Mutex
	ttl      time.Duration
	released int  // Release calls
	ended    bool // released or lost
}

// GrantedLease returns a held lease on resource with fencing token fence,
// for a mocked Acquire to return:
//
//	lease := coordmock.GrantedLease(ctrl, "job", 7)
//	locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(lease, nil)
//	err := coord.WithLock(ctx, locker, "job", fn)
//
// See [Lease] for what it does.
func GrantedLease(ctrl *gomock.Controller, resource string, fence int64) *Lease {
	l := &Lease{MockLock: NewMockLock(ctrl), done: make(chan struct{}), ttl: coord.DefaultLockTTL}
	token := "coordmock-lease-" + strconv.FormatInt(fence, 10)
	l.EXPECT().Resource().Return(resource).AnyTimes()
	l.EXPECT().Fence().Return(fence).AnyTimes()
	l.EXPECT().Token().Return(token).AnyTimes()
	l.EXPECT().Done().Return(l.done).AnyTimes()
	l.EXPECT().TTL(gomock.Any()).DoAndReturn(l.ttlOf).AnyTimes()
	l.EXPECT().Extend(gomock.Any(), gomock.Any()).DoAndReturn(l.extend).AnyTimes()
	l.EXPECT().Release(gomock.Any()).DoAndReturn(l.release).MinTimes(1)
	return l
}

// Lose ends the lease as if it expired or was taken over: Done is
// closed, and Release, Extend and TTL return [coord.ErrNotHeld]. Under
// [coord.WithLock], fn's context is cancelled with cause
// [coord.ErrLeaseLost]. Lose after a Release does nothing.
func (l *Lease) Lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.end()
}

// Released reports how many times Release was called.
func (l *Lease) Released() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.released
}

// end closes Done once; l.mu is held.
func (l *Lease) end() {
	if !l.ended {
		l.ended = true
		close(l.done)
	}
}

func (l *Lease) release(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released++
	if l.ended {
		return fmt.Errorf("%w: coordmock: lease released or lost before", coord.ErrNotHeld)
	}
	l.end()
	return nil
}

func (l *Lease) extend(_ context.Context, by time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if by <= 0 {
		return fmt.Errorf("%w: coordmock: lease length %v is not positive", coord.ErrInvalid, by)
	}
	if l.ended {
		return fmt.Errorf("%w: coordmock: lease released or lost", coord.ErrNotHeld)
	}
	l.ttl = by
	return nil
}

func (l *Lease) ttlOf(context.Context) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return 0, fmt.Errorf("%w: coordmock: lease released or lost", coord.ErrNotHeld)
	}
	return l.ttl, nil
}
