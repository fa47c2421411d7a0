package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	goredis "github.com/redis/go-redis/v9"
)

// RateLimiter keeps rate limits in Redis, shared by every instance on the
// server and prefix. Each decision is one script run, through the
// backend's group-commit batcher, on the server clock (TIME inside the
// script, integer microseconds); each limited key is one Redis key, in
// the hash slot of the key's own tag, so a Cluster spreads the keys and
// never sees a cross-slot script:
//
//	P + "rl:{K}"    string: K's GCRA TAT (µs of the server clock), PX until it is reached
//	P + "rl:{K}:w"  zset: K's sliding window, one member "time:i" per event scored by its
//	                time (µs), PX a Period after the newest event
//
// It never allows on error: an error wraps [coord.ErrUnavailable] (or
// [coord.ErrInvalid], [coord.ErrClosed], or ctx's error), and its
// decision is the zero RateDecision.
type RateLimiter struct {
	b              *Backend
	gcra, window   *goredis.Script
	recArg, peeArg any // "1" and "0", boxed once
}

var _ coord.RateLimiter = (*RateLimiter)(nil)

func newRateLimiter(b *Backend) *RateLimiter {
	return &RateLimiter{
		b:      b,
		gcra:   goredis.NewScript(mustLua("rate_gcra")),
		window: goredis.NewScript(mustLua("rate_window")),
		recArg: "1",
		peeArg: "0",
	}
}

// rateKeys returns the GCRA key and the window key of key (one
// allocation: the first is a prefix of the second).
func (k keyspace) rateKeys(key string) (gcra, window string) {
	window = k.prefix + "rl:{" + escapeName(key) + "}:w"
	return window[:len(window)-len(":w")], window
}

func (rl *RateLimiter) check(key string, limit coord.Limit, n int) error {
	if err := driver.ValidateName("rate key", key); err != nil {
		return err
	}
	if err := limit.Validate(n); err != nil {
		return err
	}
	return rl.b.checkOpen()
}

// Allow records n events on key if limit allows all n now. See
// [coord.RateLimiter].
func (rl *RateLimiter) Allow(ctx context.Context, key string, limit coord.Limit, n int) (coord.RateDecision, error) {
	if err := rl.check(key, limit, n); err != nil {
		return coord.RateDecision{}, err
	}
	return rl.decide(ctx, key, limit, n, rl.recArg)
}

// Peek reports key's state under limit without recording anything. See
// [coord.RateLimiter].
func (rl *RateLimiter) Peek(ctx context.Context, key string, limit coord.Limit) (coord.RateDecision, error) {
	if err := rl.check(key, limit, 1); err != nil {
		return coord.RateDecision{}, err
	}
	return rl.decide(ctx, key, limit, 1, rl.peeArg)
}

func (rl *RateLimiter) decide(ctx context.Context, key string, limit coord.Limit, n int, record any) (coord.RateDecision, error) {
	b := rl.b
	gk, wk := b.keys.rateKeys(key)
	var cmd *goredis.Cmd
	if limit.Window {
		cmd = b.batch.run(ctx, rl.window, []string{wk}, limit.Rate, limit.PeriodMicros(), n, record)
	} else {
		iv := limit.IntervalMicros()
		cmd = b.batch.run(ctx, rl.gcra, []string{gk}, iv, int64(limit.Size())*iv, n, record)
	}
	res, err := cmd.Int64Slice()
	if err := b.fail(ctx, "rate limit", err); err != nil {
		return coord.RateDecision{}, err
	}
	if len(res) != 4 || res[0] < 0 || res[0] > 1 || res[1] < 0 || res[2] < 0 || res[3] < 0 {
		return coord.RateDecision{}, fmt.Errorf("%w: coord/redis: rate limit: unexpected reply %v", coord.ErrUnavailable, res)
	}
	return coord.RateDecision{
		Allowed:    res[0] == 1,
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		ResetAfter: time.Duration(res[3]) * time.Microsecond,
	}, nil
}

// Reset forgets key's history under both algorithms (one DEL of both
// keys, which share a hash slot).
func (rl *RateLimiter) Reset(ctx context.Context, key string) error {
	if err := driver.ValidateName("rate key", key); err != nil {
		return err
	}
	b := rl.b
	if err := b.checkOpen(); err != nil {
		return err
	}
	gk, wk := b.keys.rateKeys(key)
	return b.fail(ctx, "rate limit reset", b.batch.process(ctx, goredis.NewIntCmd(ctx, "del", gk, wk)))
}

// RateKeys returns the Redis keys that hold key's rate limit state: the
// GCRA TAT and the sliding window. For tools; see [RateLimiter].
func (b *Backend) RateKeys(key string) (gcra, window string) { return b.keys.rateKeys(key) }

// RateInfo is what Redis holds about one rate limited key, for tools
// (coordctl rate show). It needs no Limit: the keys say how long their
// state matters.
type RateInfo struct {
	// Key is the rate limited key.
	Key string
	// GCRAResetAfter is how long until the key is back to its full GCRA
	// allowance: the time left on its TAT key; zero when it has none.
	GCRAResetAfter time.Duration
	// WindowEvents is how many events the sliding window key holds,
	// including any that left the window and no decision trimmed yet (a
	// decision trims them once the key holds the event it decides by).
	WindowEvents int64
	// WindowResetAfter is how long until the window key expires, a
	// period after its newest event; zero when it has none.
	WindowResetAfter time.Duration
}

// RateInfo reads what Redis holds about key's rate limits, in one round
// trip. The error wraps [coord.ErrInvalid] for a bad key,
// [coord.ErrClosed] or [coord.ErrUnavailable].
func (b *Backend) RateInfo(ctx context.Context, key string) (RateInfo, error) {
	if err := driver.ValidateName("rate key", key); err != nil {
		return RateInfo{}, err
	}
	if err := b.checkOpen(); err != nil {
		return RateInfo{}, err
	}
	gk, wk := b.keys.rateKeys(key)
	var gttl, wttl *goredis.DurationCmd
	var card *goredis.IntCmd
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		gttl = p.PTTL(ctx, gk)
		card = p.ZCard(ctx, wk)
		wttl = p.PTTL(ctx, wk)
		return nil
	})
	if err := b.fail(ctx, "rate info", err); err != nil {
		return RateInfo{}, err
	}
	return RateInfo{
		Key:              key,
		GCRAResetAfter:   max(gttl.Val(), 0),
		WindowEvents:     card.Val(),
		WindowResetAfter: max(wttl.Val(), 0),
	}, nil
}
