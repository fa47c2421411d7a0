// Package logging decorates coord backends with structured logging through
// [log/slog]. It does not import Prometheus.
//
// [New] takes the [slog.Logger] to write to and returns a [Middleware];
// its methods decorate a whole backend or one part of it:
//
//	b = logging.New(logger, nil).Backend(b)
//
// # Records
//
// Each operation is logged with its name, duration, outcome and error: at
// Debug when it succeeds or ends with an outcome of normal running (a lock
// held by another holder, a session not found, a lease that had already
// ended, a call the caller canceled; see
// [github.com/cgn-bot/coord/middleware.IsExpected]), at Warn when it fails
// (the backend unavailable, a deadline exceeded, bad input), and a lease
// found lost before its release at Error (see [Options] to change the
// levels, and docs/LOGGING.md for the table). When
// no record could be written at the logger's level, a decorator costs a
// call to the handler's Enabled and nothing else. When only successes are
// below the level (a logger at Info), an operation is still timed, in
// case it fails, and Acquire decorates its Lock (one allocation) so that
// a failed Release or a lost lease is logged.
//
// A lease is found lost when its Release, Extend or TTL reports
// [coord.ErrNotHeld] or [coord.ErrExpired]; [coord.WithLock] always calls
// Release, so a lease lost under it is logged when its function returns.
//
// # Secrets
//
// Lock tokens and session tokens never appear in clear: only as an
// 8-character tag of their SHA-256, which matches the first characters of
// a session's handle. A session token passed where a name goes (a handle,
// a user ID, a key) is logged as its tag too, under the attribute's name
// followed by "_tag". Session data, event payloads and invalidation
// metadata are never logged.
//
// # As
//
// Decorators forward As and expose Unwrap, so [coord.As] reaches the
// backend's native types through them.
//
// # Errors
//
// Decorators return exactly what the decorated value returns.
package logging
