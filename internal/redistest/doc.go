// Package redistest starts real redis-server processes for tests: a single
// server, a Redis Cluster and a Sentinel group, all on 127.0.0.1, each
// process with its own temp dir and no persistence (save "", appendonly
// no).
//
//	func TestSomething(t *testing.T) {
//		srv := redistest.Start(t)
//		client := srv.Client(t) // a *goredis.Client, closed at cleanup
//		...
//		srv.Kill(t)    // SIGKILL
//		srv.Restart(t) // same port, empty data set, answers PING
//	}
//
// A cluster takes about 2s to form and a Sentinel group about 1s, a single
// server some milliseconds: start one in a top-level test and share it with
// its subtests (with a unique key prefix each), and start a separate one
// for a test that injects faults.
//
// # Faults
//
// A [Server] injects faults: [Server.Kill] and [Server.Restart] on the same
// port, [Server.Stop] (SIGTERM), [Server.Pause] and [Server.Resume]
// (SIGSTOP and SIGCONT: connections stay open and commands hang),
// [Server.KillPubSubClients] (CLIENT KILL TYPE pubsub). A [Cluster] kills
// and restarts one node; a [Sentinel] group runs SENTINEL FAILOVER and
// waits for it to complete.
//
// # Processes and ports
//
// Each process leads its own process group, so signals reach anything it
// forks. The group is signalled only while its leader is not reaped (after
// the reap its ID is a free pid a new process may take); on Linux the exit
// is seen before the reap, and what the leader forked is killed then.
// Every process is killed and reaped at tb.Cleanup; on Linux a
// parent-death signal also kills it when the test binary dies without
// running its cleanups. Start-up waits by polling PING with a deadline;
// a failure carries the tail of the server's log.
//
// Ports are picked at random below the kernel's ephemeral port range and
// checked free by listening on them (falling back to port 0 when that range
// is too small), so that a killed server's port is not taken by an outgoing
// connection before Restart reuses it. A start that loses its port to
// another process is retried on a new port.
//
// # Availability
//
// When redis-server (or, for a cluster, redis-cli) is missing, older than
// 6.2, or cannot start, the test is skipped with the reason, except under
// CI=true, where it fails: CI must run the real-server tests, visibly.
// [Available] reports the reason without starting anything.
//
// # Security options
//
// [WithPassword] sets requirepass; [WithACLUser] creates an ACL user with
// every permission and turns the default user off; [WithTLS] serves TLS only,
// with a CA and a certificate for 127.0.0.1 made by the test (client
// certificates are not required). [Server.URL] includes the credentials and
// the rediss:// scheme; a client built from it must still trust the CA, from
// [Server.TLSConfig] or [Server.CAPool].
//
// # Goroutine leak checks
//
// Packages that kill servers under live go-redis clients should pass
// [GoleakOptions] to goleak.VerifyTestMain; see there.
package redistest
