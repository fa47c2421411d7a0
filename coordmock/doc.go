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
package coordmock
