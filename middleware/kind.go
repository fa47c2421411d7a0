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
