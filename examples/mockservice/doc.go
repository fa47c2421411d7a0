// Package mockservice is an example of a service that takes coord
// interfaces by injection and is unit-tested with the mocks of package
// coordmock.
//
// [Runner] runs named jobs so that each runs on one instance at a time:
// under a lease ([coord.WithLock]), then it invalidates the cached result
// of the job on every instance and publishes a "job.finished" event. Its
// tests (runner_test.go) drive it with gomock, including the paths where
// another instance holds the lease, the job fails, the publish fails and
// the lease is lost while the job runs; the example runs it on the memory
// backend.
package mockservice
