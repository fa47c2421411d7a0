// Package reliability holds coord's reliability tests: the conformance
// suite on a three-master Redis Cluster and through a Sentinel failover
// client, fault injection against a real redis-server (kill -9 and
// restart, SIGSTOP past a lease, CLIENT KILL of the subscriber, a flood at
// a blocked subscriber), an exclusion checker that runs many contending
// holders on one resource, security tests (ACL, TLS, forged tokens, names
// that try to reach other keys, secrets in logs) and a comparison of
// coord.MatchGlob with a real server's PSUBSCRIBE.
//
// The package has no exported API: everything is in its _test.go files.
// The tests start their own redis-server processes (package
// internal/redistest); without redis-server they skip, except under
// CI=true, where they fail. docs/RELIABILITY.md lists every test, what it
// injects, what it asserts and the figures it produced.
//
//	go test -race -count=1 ./reliability/
//
// fuzz.sh runs every fuzz target of the module for a short time.
package reliability
