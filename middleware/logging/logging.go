package logging

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/cgn-bot/coord/internal/secret"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Options configure a [Middleware]. A nil *Options means the defaults,
// and so does each nil field.
type Options struct {
	// Success is the level of the record of an operation that succeeded.
	// Default: [slog.LevelDebug].
	Success slog.Leveler
	// Expected is the level of the record of an operation whose error is
	// an answer the caller expects in normal running rather than a
	// failure (see [github.com/cgn-bot/coord/middleware.IsExpected]):
	// coord.ErrNotAcquired (the lock is held by another holder, whether
	// Acquire tried once or waited), coord.ErrNotFound (a session that
	// does not exist, expired or was rotated out), coord.ErrNotHeld and
	// coord.ErrExpired from Release, Extend or TTL (the lease had already
	// ended; the loss itself is logged once at the LeaseLost level), and
	// [context.Canceled] (the caller gave up). Default: [slog.LevelDebug].
	Expected slog.Leveler
	// Failure is the level of the record of an operation that returned
	// any other error (the backend unavailable, a deadline exceeded, bad
	// input, a closed backend), of a Health that is not healthy, and of a
	// purge-all signal delivered to a subscriber.
	// Default: [slog.LevelWarn].
	Failure slog.Leveler
	// LeaseLost is the level of the record of a lease found lost before
	// its holder released it. Default: [slog.LevelError].
	LeaseLost slog.Leveler
}

// Middleware logs the operations of the values it decorates to one
// [slog.Logger]. Its methods Backend, Locker, Sessions, Invalidator,
// Events and RateLimiter are decorators of the form func(next coord.Locker) coord.Locker.
// A nil *Middleware is valid: its decorators return next unchanged.
// A Middleware is safe for concurrent use by multiple goroutines.
//
// Each record has the message "coord " followed by the operation, and the
// attributes op, outcome ("ok" or the error's kind, see
// [github.com/cgn-bot/coord/middleware.ErrorKind]), duration, error (on failure), and the
// operation's arguments and results that are not secret: resource,
// fence, key, glob, topic, user_id, handle, counts. Lock and session
// tokens appear only as an 8-character tag of their SHA-256 (token,
// session); session data never appears, only its number of fields.
type Middleware struct {
	log   *slog.Logger
	clock obs.Clock

	success, expected, failure, lost slog.Leveler
	// top is the highest of the four levels when all of them are fixed
	// slog.Level values, so that the disabled check is one call.
	top      slog.Level
	fixedTop bool

	msgs [obs.NumOps]string
}

// Messages of the records that are not about one operation.
const (
	msgLeaseLost = "coord lease lost"
	msgPurge     = "coord invalidation purge"
)

// New returns a Middleware that logs to logger. A nil logger gives a nil
// *Middleware, whose decorators change nothing.
func New(logger *slog.Logger, opts *Options) *Middleware {
	if logger == nil {
		return nil
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Success == nil {
		o.Success = slog.LevelDebug
	}
	if o.Expected == nil {
		o.Expected = slog.LevelDebug
	}
	if o.Failure == nil {
		o.Failure = slog.LevelWarn
	}
	if o.LeaseLost == nil {
		o.LeaseLost = slog.LevelError
	}
	m := &Middleware{
		log:      logger,
		clock:    obs.NewClock(),
		success:  o.Success,
		expected: o.Expected,
		failure:  o.Failure,
		lost:     o.LeaseLost,
	}
	s, ok1 := o.Success.(slog.Level)
	f, ok2 := o.Failure.(slog.Level)
	l, ok3 := o.LeaseLost.(slog.Level)
	e, ok4 := o.Expected.(slog.Level)
	if ok1 && ok2 && ok3 && ok4 {
		m.top, m.fixedTop = max(s, f, l, e), true
	}
	for op := range obs.NumOps {
		m.msgs[op] = "coord " + op.String()
	}
	return m
}

// on reports whether any record of m could be written now: whether the
// highest of its levels is enabled (handlers enable every level from a
// threshold up). When it is false, decorators call through without
// reading the clock.
func (m *Middleware) on(ctx context.Context) bool {
	if m.fixedTop {
		return m.log.Enabled(ctx, m.top)
	}
	return m.log.Enabled(ctx, max(m.success.Level(), m.expected.Level(), m.failure.Level(), m.lost.Level()))
}

// level returns the level of an operation's record given its error, and
// whether a record at that level is written.
func (m *Middleware) level(ctx context.Context, err error) (slog.Level, bool) {
	lvl := m.levelOf(err)
	return lvl, m.log.Enabled(ctx, lvl)
}

// levelOf returns the level of an operation's record given its error:
// Success for nil, Expected for an outcome of normal running (see
// [Options].Expected), Failure for any other error.
func (m *Middleware) levelOf(err error) slog.Level {
	switch k := obs.KindOf(err); {
	case k == obs.OK:
		return m.success.Level()
	case obs.Expected(k):
		return m.expected.Level()
	}
	return m.failure.Level()
}

// write logs the record of op, which took d and ended with err, at lvl,
// with the operation's own attributes after the common ones.
func (m *Middleware) write(ctx context.Context, lvl slog.Level, op obs.Op, d time.Duration, err error, attrs ...slog.Attr) {
	all := make([]slog.Attr, 0, 4+len(attrs))
	all = append(all,
		slog.String("op", op.String()),
		slog.String("outcome", obs.KindOf(err).String()),
		slog.Duration("duration", d),
	)
	if err != nil {
		all = append(all, slog.String("error", err.Error()))
	}
	all = append(all, attrs...)
	m.log.LogAttrs(ctx, lvl, m.msgs[op], all...)
}

// done logs op, which started at start (a reading of m.clock) and ended
// with err, if its level is enabled. attrs is called only then.
func (m *Middleware) done(ctx context.Context, op obs.Op, start time.Duration, err error, attrs func() []slog.Attr) {
	lvl, ok := m.level(ctx, err)
	if !ok {
		return
	}
	var a []slog.Attr
	if attrs != nil {
		a = attrs()
	}
	m.write(ctx, lvl, op, m.clock.Now()-start, err, a...)
}

// name returns the attribute of a caller-given name (a resource, key,
// topic, user ID or handle). Names are not secrets, but a caller may pass
// a token where a name goes (a token given to Revoke as a handle, say):
// a value shaped like a session token is logged as its tag, under the
// key with "_tag" appended.
func name(key, v string) slog.Attr {
	if strings.HasPrefix(v, secret.SessionTokenPrefix) && secret.ValidSessionToken(v) {
		return slog.String(key+"_tag", secret.Redact(v))
	}
	return slog.String(key, v)
}
