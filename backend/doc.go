// Package backend opens a coord backend from a URL or from the
// environment and wires the middleware, with the start-up policy of the
// design: no Redis configured means the in-process memory backend (a
// single instance); a Redis that is configured but cannot be reached is an
// error, unless the caller opts into falling back to memory, which is
// logged at error level and reported as degraded by Health, because leases
// that silently stop being shared are worse than a failed start.
//
//	b, err := backend.FromEnv(ctx, backend.Config{Registerer: prometheus.DefaultRegisterer, Logger: logger})
//	if err != nil { ... }
//	defer b.Close(context.WithoutCancel(ctx))
//
// # Entry points
//
// [Open] (a URL) and [FromEnv] (the environment) are the common case: one
// backend per process, a memory backend on a hub of its own. The methods
// of an [Opener] do the same and keep the memory hubs they create by name,
// so that several backends opened from "mem://name" (tests, or several
// instances in one process) share one hub.
//
// # Memory only
//
// This package links go-redis, Prometheus and the middleware, since any
// URL or environment may name Redis. A program that only ever runs as a
// single instance imports [github.com/cgn-bot/coord/backend/memory]
// directly instead, which links neither:
//
//	b := memory.NewHub(nil).New(nil)
//	defer b.Close(context.Background())
//
// # URLs
//
//   - mem://name opens an instance on the memory hub called name. Every
//     backend an [Opener] opens from the same name is an instance on the
//     same hub, as processes on one Redis; an empty name (and an empty
//     URL) means [DefaultMemoryName]. Query parameter: instance (the
//     instance ID).
//   - redis://[user:password@]host[:port][/db] and rediss://... (TLS)
//     open the Redis backend on a go-redis client made for it. Query
//     parameters: prefix (the key prefix, default "cgn:"), instance (the
//     instance ID), and go-redis's own (dial_timeout, read_timeout,
//     pool_size, protocol, ...).
//
// An unknown scheme or query parameter is an error wrapping
// [coord.ErrInvalid].
//
// # Environment
//
// [FromEnv] reads REDIS_URL, else
// REDIS_HOST, REDIS_PORT (default 6379), REDIS_PASSWORD and REDIS_DB
// (default 0), with REDIS_TLS and REDIS_TLS_CA_FILE in both cases; the
// Redis variables are all read by [coordredis.FromLookup], the one place
// that parses them, and this package adds only the prefix and instance
// parameters of a URL and ENABLE_DISTRIBUTED_CACHE. ENABLE_DISTRIBUTED_CACHE=false selects memory even when
// Redis is configured; true, or unset, uses Redis when it is configured.
// The choice of memory is logged at info level on [Config].Logger; when
// Redis is configured (REDIS_URL or REDIS_HOST) but ENABLE_DISTRIBUTED_CACHE
// is false, it is logged at warn level (on [slog.Default] when
// Config.Logger is nil) and Health reports [coord.Degraded] with the
// reason, as for a fallback: the instance runs alone.
//
// # Logs
//
// [Config].Logger receives the operation records of the logging
// middleware and everything else coord logs: each retry of the connection
// at start-up (attempt, error, next delay), the fallback or choice of
// memory, and the Redis backend's own records (connections lost and
// restored, renewals, lost leases). With no Logger, only the operation
// records are off; the rest goes to [slog.Default]. docs/LOGGING.md lists
// every record with its level.
//
// # Lifetime
//
// [Opened.Close] closes the backend and the go-redis client opened for
// it, and returns every error joined with [errors.Join], never stopping
// at the first. The memory hubs an Opener keeps need no closing.
//
// # As
//
// [Opened] forwards As through its middleware: a Redis backend fills a
// *goredis.UniversalClient or a **coordredis.Backend, a memory backend a
// **memory.Hub or a **memory.Backend.
//
// # Errors
//
// Bad URLs, parameters and environment values: [coord.ErrInvalid]. A Redis
// that does not answer within ctx or the start-up retries:
// [coord.ErrUnavailable] (with [coordredis.ErrAuth] when it refused the
// credentials). Passwords never appear in errors or logs.
package backend
