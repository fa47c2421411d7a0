package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// The limit of the rate limit tests: per goroutine key, 1000 a second
// with a burst of 1000, so that a goroutine's decisions mix allowed and
// denied as a busy key's do.
const (
	benchRate   = 1000
	benchPeriod = time.Second
)

// rateOps holds the rate limit contenders, each on its own client:
// go-redis/redis_rate v10 (GCRA in float seconds), coord's GCRA and
// coord's sliding window.
type rateOps struct {
	be        *coordredis.Backend
	coordC    *goredis.Client
	peerC     *goredis.Client
	peer      *redis_rate.Limiter
	keys      []string
	gcra, win coord.Limit
}

func newRateOps(srv *server, goroutines int) (*rateOps, error) {
	r := &rateOps{coordC: srv.newClient(), peerC: srv.newClient()}
	be, err := coordredis.New(r.coordC, &coordredis.Options{Prefix: "bench:"})
	if err != nil {
		return nil, errors.Join(err, r.coordC.Close(), r.peerC.Close())
	}
	r.be = be
	r.peer = redis_rate.NewLimiter(r.peerC)
	for g := range goroutines {
		r.keys = append(r.keys, fmt.Sprintf("user-%d", g))
	}
	r.gcra = coord.Limit{Name: "bench", Rate: benchRate, Period: benchPeriod}
	r.win = coord.Limit{Name: "bench", Rate: benchRate, Period: benchPeriod, Window: true}
	return r, nil
}

func (r *rateOps) close() {
	_ = r.be.Close(context.Background())
	_ = r.coordC.Close()
	_ = r.peerC.Close()
}

func (r *rateOps) ops() map[string]op {
	peerLimit := redis_rate.Limit{Rate: benchRate, Burst: benchRate, Period: benchPeriod}
	return map[string]op{
		"redis_rate": func(ctx context.Context, g, _ int) error {
			_, err := r.peer.Allow(ctx, r.keys[g], peerLimit)
			return err
		},
		"coord": func(ctx context.Context, g, _ int) error {
			_, err := r.be.RateLimiter().Allow(ctx, r.keys[g], r.gcra, 1)
			return err
		},
		"coord-window": func(ctx context.Context, g, _ int) error {
			_, err := r.be.RateLimiter().Allow(ctx, r.keys[g], r.win, 1)
			return err
		},
	}
}

// rateTests returns the rate limit tests: coord's GCRA against
// redis_rate, and the sliding window against coord's GCRA.
func rateTests(srv *server, cfg config) ([]*test, func(), error) {
	r, err := newRateOps(srv, cfg.goroutines)
	if err != nil {
		return nil, nil, err
	}
	ops := r.ops()
	g := cfg.goroutines
	defs := []metricDef{
		{key: "ops/s", label: "decisions/s", ratio: true},
		{key: "p50", label: "p50 ms", ratio: true},
		{key: "p99", label: "p99 ms", ratio: true},
	}
	run := func(ctx context.Context, c string, _ int, d time.Duration) (metrics, error) {
		return runOps(ctx, ops[c], g, d)
	}
	return []*test{
		{
			id: "rate-gcra", title: fmt.Sprintf("Rate limit decisions (GCRA), %d goroutines", g),
			note: fmt.Sprintf("Each goroutine decides one event at a time on a key of its own, %d a second with a burst of %d "+
				"(its decisions mix allowed and denied). redis_rate = go-redis/redis_rate v10.0.1 Allow; coord = RateLimiter().Allow "+
				"through the group-commit batcher.", benchRate, benchRate),
			contenders: []string{"redis_rate", "coord"}, metrics: defs, ops: rate("ops/s"), run: run,
		},
		{
			id: "rate-window", title: fmt.Sprintf("Rate limit decisions, sliding window vs GCRA, %d goroutines", g),
			note: fmt.Sprintf("As rate-gcra; coord-window = the exact sliding window, %d in any second (a ZSET of up to %d members per key).",
				benchRate, benchRate),
			contenders: []string{"coord", "coord-window"}, metrics: defs, ops: rate("ops/s"), run: run,
		},
	}, r.close, nil
}
