// Package robustness is a randomized fault harness for coord, in the
// spirit of etcd's robustness tests and Jepsen. A test in this package
// starts a deployment (a single redis-server), three worker processes (the
// binary in ./worker) that run a mixed workload against it, and a fault
// scheduler that, from a printed seed, kills and restarts redis-server from
// an older snapshot, pauses it or a worker, kills client connections,
// pauses writes, fills its memory and blackholes a worker's subscriber
// connection through a TCP proxy (and, when asked for, kills the worker
// that leads the election and restarts it). On a Cluster it also moves
// the hash slot of one lease shape's keys to another master
// (migrate-slot: an exclusive lock's, a read-write lock's, the
// semaphore's, the election's or the stream's), its keys one at a time so
// that scripts meet them split between the two masters.
//
// Every operation's invocation and response time is written by the
// workers as JSON lines ([Op]); the driver merges them and checks them:
// session fields as linearizable registers and fences as a strictly
// increasing sequence with porcupine, lease exclusion on the honoured
// intervals, near-cache reads against a staleness bound, event order, and
// invariants after the workload stops (no lease outlives its holder's
// release, session indexes agree with the sessions), and that no lease
// operation failed with an error wrapping coord.ErrInvalid or no coord
// sentinel.
//
// The workers also take read and write leases (coord.RWLocker), permits
// of a two-permit semaphore (coord.Semaphores) and leaderships
// (coord.RunElected), and append to a stream they consume in one group
// under stable consumer names (coord.Streams). On the honoured intervals
// no write lease overlaps another lease, no more permits stand than the
// limit, and there is at most one leader; read and write fences, permit
// fences and terms strictly increase; each Elector.Observe sees terms in
// order and, after the stop, no leader. After the faults stop and the group
// is drained, every entry whose Append returned an ID was delivered (or
// was lost with a restart from an older snapshot, counted apart), the
// group has nothing pending or unread and no dead letters, no two
// handlers ran one entry at once without a stall to allow it, and every
// redelivery has a cause (a consumer stopped past two thirds of the claim
// time, a fault that may have failed the acknowledgement, a restore);
// redeliveries are counted by cause in the log.
//
//	go test -race -count=1 ./reliability/robustness/                   # CI: fixed seed, single server; TestClusterMigrations
//	go test -count=1 -run TestClusterMigrations ./reliability/robustness/ -robustness.seed=9   # one migrate-slot per shape
//	go test -count=1 -run TestRobustness ./reliability/robustness/ -robustness.deployment=cluster -robustness.faults=migrate-slot -robustness.migrate=rw,sem
//	go test -count=1 -run TestRobustness ./reliability/robustness/ -robustness.duration=5m   # random seed
//	go test -count=1 -run TestRobustness ./reliability/robustness/ -robustness.seed=42
//	go test -count=1 -run TestRobustness ./reliability/robustness/ -robustness.deployment=cluster
//	go test -count=1 -run TestRobustness ./reliability/robustness/ -robustness.deployment=sentinel -robustness.faults=failover-lagging
//	go test -count=1 -run TestRobustness ./reliability/robustness/ -robustness.faults=kill-worker,pause-worker,restore
//
// The flags have environment equivalents: COORD_ROBUSTNESS_DEPLOYMENT,
// COORD_ROBUSTNESS_FAULTS, COORD_ROBUSTNESS_MIGRATE, COORD_ROBUSTNESS_STALENESS (the near cache's
// staleness bound, by default the 2.5s window docs/FAILURES.md states).
// COORD_ROBUSTNESS=off skips TestRobustness and TestClusterMigrations. COORD_ROBUSTNESS_CATCH=1 runs TestCatches, one
// single-fault schedule per known defect, each of which must be caught by
// the named checker. COORD_ROBUSTNESS_RECHECK=dir runs the checkers again
// on the histories a failed run kept in dir.
package robustness
