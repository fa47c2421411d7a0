// Package coordmock holds go.uber.org/mock mocks of every interface of
// package coord, for unit tests of code that takes coord interfaces by
// injection:
//
//	ctrl := gomock.NewController(t)
//	locker := coordmock.NewMockLocker(ctrl)
//	locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(nil, coord.ErrNotAcquired)
//
// The mocks are generated (see generate.go) and checked in; check.sh
// regenerates them into a temporary directory and fails when the checked-in
// file differs, so they never drift from the interfaces. The mocks are
// typed: Return, Do and DoAndReturn take the method's own signature.
//
// # The rules a mock must keep
//
// A bare mock knows none of the rules of the interface it stands for, and
// some callers depend on them:
//
//   - [coord.Subscription]: Done must return a channel that Unsubscribe
//     closes. A near cache ([github.com/cgn-bot/coord/cache]) waits for
//     it in Close, so a mocked Subscription whose Done never closes hangs
//     the test until it times out. (A nil Subscription or a nil Done is
//     refused by cache.New with an error wrapping [coord.ErrInvalid].)
//   - [coord.Lock] under [coord.WithLock]: WithLock calls Done (to cancel
//     fn's context when the lease is lost) and Release (always, also
//     after a loss), so a mocked Lock needs both expected.
//
// Two helpers keep these rules for you. [ReadySubscription] returns a
// live subscription whose Unsubscribe closes Done, for a mocked Subscribe
// to return; [GrantedLease] returns a held lease (Resource, Fence, Token,
// Done, TTL, Extend and Release answered, Release expected at least once)
// for a mocked Acquire to return, and [Lease.Lose] loses it. Their
// expectations are fixed: for other behaviour, build the mock yourself.
//
// # When the memory backend is the better fake
//
// A mock is the right tool to check what your code asks of coord (the
// resource it locks, the options it passes, the key it invalidates) and
// to inject a failure exactly where you want it: an Acquire that returns
// [coord.ErrNotAcquired] or [coord.ErrUnavailable], a Publish that fails,
// a lease lost in the middle of a job.
//
// When the test is about behaviour rather than calls, use the memory
// backend instead (backend.Open with the URL "mem://name"; opens of one
// name share state, so two opens are two instances). It keeps every rule
// of the interfaces because it passes the conformance suite: mutual
// exclusion and fencing between instances, waiters woken by a release,
// sessions that expire, invalidations and events delivered to the other
// instances and not to the sender, purges after a gap, Close releasing
// what it holds. Prefer it when:
//
//   - two or more instances interact (one waits for the other's lease, a
//     cache on one instance is invalidated by a write on another);
//   - a test would otherwise script many calls in order, so that it tests
//     the script more than the code;
//   - the code under test is a near cache or anything else that
//     subscribes: the memory backend delivers, drops and purges as a
//     real backend does;
//   - you want time-based behaviour (lease expiry, session idle TTL)
//     without modelling it in DoAndReturn functions.
//
// docs/TESTING.md says more, with examples of both.
package coordmock
