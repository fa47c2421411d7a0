// Package redistest starts real redis-server processes for tests: a single
// server, a Redis Cluster and a Sentinel group, all on 127.0.0.1 ports
// chosen free at start, each with its own temp dir and no persistence.
//
// A test calls [Start] (or [StartCluster], [StartSentinel]) and gets a
// handle whose methods inject faults: [Server.Kill] and [Server.Restart] on
// the same port, [Server.Stop], [Server.Pause] and [Server.Resume]
// (SIGSTOP/SIGCONT), [Server.KillPubSubClients]. Every process is stopped
// and reaped at tb.Cleanup; on Linux a parent-death signal also ends it if
// the test binary dies without running its cleanups.
//
// # Availability
//
// When redis-server (or, for a cluster, redis-cli) is missing, too old or
// cannot start, the test is skipped with the reason, except under CI=true,
// where it fails: CI must run the real-server tests, visibly. [Available]
// reports the reason without starting anything.
//
// # Security options
//
// [WithPassword] sets requirepass; [WithACLUser] creates an ACL user and
// turns the default user off; [WithTLS] serves TLS only, with a CA and
// certificate made by the test. [Server.URL] includes the credentials and
// the rediss:// scheme, and [Server.TLSConfig] gives the client side.
package redistest
