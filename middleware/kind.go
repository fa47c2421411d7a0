package middleware

import "github.com/cgn-bot/coord/middleware/internal/obs"

// ErrorKind returns the name of err's kind, from a fixed set: "ok" for nil,
// then the first of "expired", "not_held", "not_acquired", "lease_lost",
// "not_found", "closed", "invalid", "unavailable", "rate_limited",
// "canceled" and "deadline_exceeded" whose sentinel ([github.com/cgn-bot/coord.ErrExpired], ...,
// [context.Canceled], [context.DeadlineExceeded]) err wraps, and "other"
// for anything else. The metrics and logging decorators label errors
// with it, so it never carries user data.
func ErrorKind(err error) string { return obs.KindOf(err).String() }

// IsExpected reports whether err is an outcome of normal running rather
// than a failure: its kind (see [ErrorKind]) is "not_acquired" (a lock
// held by another holder), "not_found" (a session that does not exist or
// expired), "not_held" or "expired" (a lease that had already ended) or
// "canceled" (the caller gave up). The logging decorator logs these at
// its Expected level (Debug by default) and every other error at its
// Failure level (Warn); docs/LOGGING.md has the table. A nil err is not
// expected: it is a success.
func IsExpected(err error) bool { return err != nil && obs.Expected(obs.KindOf(err)) }
