package main

import (
	"context"
	"fmt"
	"time"
)

// metricDef describes one metric of a test.
type metricDef struct {
	key, label string
	// worst: the table also shows the worst round (the largest, or the
	// smallest when low is set).
	worst, low bool
	// ratio: the table shows contender/baseline (and contender/each of
	// the test's vs).
	ratio bool
}

// cpuMetrics are the CPU costs every test reports.
var cpuMetrics = []metricDef{
	{key: "stall", label: "process stall ms", worst: true},
	{key: "client µs/op", label: "client CPU µs/op", ratio: true},
	{key: "redis µs/op", label: "redis-server CPU µs/op", ratio: true},
}

// rate returns the ops function of a test whose metric key is a rate.
func rate(key string) func(metrics, time.Duration) float64 {
	return func(m metrics, d time.Duration) float64 { return m[key] * d.Seconds() }
}

// test is one measurement, run for each of its contenders in every round.
// The first contender is the baseline of the ratios.
type test struct {
	id, title, note string
	contenders      []string
	// vs are more baselines: the table shows the coord contenders' ratios
	// to each of them too.
	vs      []string
	metrics []metricDef
	// ops returns how many operations a cell did, for CPU per operation.
	ops func(m metrics, d time.Duration) float64
	run func(ctx context.Context, contender string, round int, d time.Duration) (metrics, error)
}

// setup makes the contenders (each on its own clients) and the tests.
func setup(ctx context.Context, srv *server, cfg config) ([]*test, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) ([]*test, func(), error) {
		closeAll()
		return nil, nil, err
	}

	lk, closeLk, err := lockers(srv)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, closeLk)
	rlc, err := newRueidis(srv)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, rlc.Close)
	lk["rueidis"] = newRueidisLocker(rlc)

	chans := map[string]*channel{}
	for _, name := range []string{"raw", "raw-hop", "raw-timeout"} {
		c, err := newRawChannel(ctx, srv, name == "raw-hop", map[bool]time.Duration{true: 3 * time.Second}[name == "raw-timeout"])
		if err != nil {
			return fail(err)
		}
		closers = append(closers, c.close)
		chans[name] = c
	}
	for _, name := range []string{"invalidation", "events"} {
		c, err := newCoordChannel(ctx, srv, name == "events")
		if err != nil {
			return fail(err)
		}
		closers = append(closers, c.close)
		chans[name] = c
	}
	floodC := srv.newClient()
	closers = append(closers, func() { floodC.Close() })

	sess, err := newSessionOps(ctx, srv, cfg.goroutines)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, sess.close)
	sessOps := sess.ops()
	rsc, err := newRueidis(srv)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, rsc.Close)
	rsess, err := newRueidisSessions(ctx, rsc, cfg.goroutines)
	if err != nil {
		return fail(err)
	}
	for name, o := range rsess.ops() {
		sessOps[name]["rueidis"] = o
	}

	lockNames := []string{"raw", "coord", "redsync", "redislock", "rueidis"}
	vsRueidis := []string{"rueidis"}
	pairMetrics := []metricDef{
		{key: "pairs/s", label: "pairs/s", ratio: true},
		{key: "p50", label: "pair p50 ms", ratio: true},
		{key: "p99", label: "pair p99 ms", ratio: true},
	}
	g := cfg.goroutines
	tests := []*test{
		{
			id: "lock-1", title: "Locks, uncontended, 1 goroutine",
			note: "Acquire (try once) + Release of a key of its own, in a loop. raw = SET NX PX + EVALSHA compare-and-delete; " +
				"rueidis = the same commands on github.com/redis/rueidis with its defaults (auto-pipelining: concurrent callers' commands share a pipeline).",
			contenders: lockNames, metrics: pairMetrics, ops: rate("pairs/s"),
			run: func(ctx context.Context, c string, r int, d time.Duration) (metrics, error) {
				return runUncontended(ctx, lk[c], fmt.Sprintf("u1:%s:%d", c, r), 1, d)
			},
		},
		{
			id: fmt.Sprintf("lock-%d", g), title: fmt.Sprintf("Locks, uncontended, %d goroutines", g),
			note:       "Each goroutine takes and releases a key of its own, in a loop.",
			contenders: lockNames, vs: vsRueidis, metrics: pairMetrics, ops: rate("pairs/s"),
			run: func(ctx context.Context, c string, r int, d time.Duration) (metrics, error) {
				return runUncontended(ctx, lk[c], fmt.Sprintf("u%d:%s:%d", g, c, r), g, d)
			},
		},
		{
			id: "contended", title: fmt.Sprintf("Locks, %d goroutines contending for one key, zero hold time", g),
			note: fmt.Sprintf("Each goroutine waits as long as it takes (coord: WithWait(100ms), woken by releases; raw, redsync, redislock: "+
				"retry every %v without limit; rueidis: raw's polling on rueidis), releases at once, and goes again. Handoff = from the release call to the acquisition "+
				"by a different goroutine. Starved = a goroutine that never acquired or waited over %v once (a wait still running at "+
				"the end counts, cut there). coord-%dinst: the goroutines spread over %d Backends (instances), %d on each; no target applies to it. "+
				"coord-nolocal: coord with the local handoff off (Options.LocalHandoffs -1: every release deletes the lease and wakes "+
				"the next waiter, which takes it in a round trip of its own).", pollDelay, cfg.starve, instances, instances, g/instances),
			contenders: append(lockNames[:len(lockNames):len(lockNames)], fmt.Sprintf("coord-%dinst", instances), "coord-nolocal"), vs: vsRueidis, ops: rate("acq/s"),
			metrics: []metricDef{
				{key: "acq/s", label: "acquisitions/s", ratio: true, worst: true, low: true},
				{key: "wait p50", label: "wait p50 ms", ratio: true},
				{key: "wait p99", label: "wait p99 ms", ratio: true, worst: true},
				{key: "wait max", label: "wait max ms", worst: true},
				{key: "handoff p50", label: "handoff p50 ms", ratio: true},
				{key: "handoff p99", label: "handoff p99 ms", ratio: true},
				{key: "re-wins", label: "releaser re-wins %", worst: true},
				{key: "starved", label: "starved goroutines", worst: true},
			},
			run: func(ctx context.Context, c string, r int, d time.Duration) (metrics, error) {
				return runContended(ctx, lk[c], fmt.Sprintf("hot:%s:%d", c, r), g, d, cfg.starve)
			},
		},
		{
			id: "pubsub-1k", title: fmt.Sprintf("Publish to receive at %d msgs/s", cfg.rate),
			note: "One publisher paced at the rate, one subscriber on another client (coord: two Backends). From before the " +
				"publish call to the subscriber's handler. raw = go-redis PUBLISH and a PubSub reading the same Node-design JSON; " +
				"raw-hop = the same, the reader handing each message to a handler goroutine over a buffered Go channel; " +
				"raw-timeout = the reader using ReceiveTimeout(ctx, 3s) (a read deadline per message), as backend/redis read before commit f922898. " +
				fmt.Sprintf("Each cell lasts %v (-latency-samples %d at the rate), so that a p99 is not a handful of messages.", latencyCell(cfg, 0, cfg.duration), cfg.latencyN),
			contenders: []string{"raw", "raw-hop", "raw-timeout", "invalidation", "events"},
			ops:        func(m metrics, _ time.Duration) float64 { return m["samples"] },
			metrics: []metricDef{
				{key: "p50", label: "p50 ms", ratio: true},
				{key: "p99", label: "p99 ms", ratio: true, worst: true},
				{key: "max", label: "max ms", worst: true},
				{key: "lost %", label: "lost %", worst: true},
			},
			run: func(ctx context.Context, c string, r int, d time.Duration) (metrics, error) {
				return runLatency(ctx, chans[c], cfg.rate, latencyCell(cfg, r, d))
			},
		},
		{
			id: "subscriber", title: "One subscriber's maximum rate",
			note: "A go-redis client floods the contender's channel with its wire messages in pipelines of 256, at most 16384 " +
				"in flight (sent, neither handled nor dropped). coord subscribers use the default queues (8192 for invalidations, 1024 for events). raw-timeout: raw reading " +
				"with ReceiveTimeout(ctx, 3s) (a read deadline per message), as backend/redis read before commit f922898.",
			contenders: []string{"raw", "raw-timeout", "invalidation", "events"}, ops: rate("msgs/s"),
			metrics: []metricDef{
				{key: "msgs/s", label: "received msgs/s", ratio: true, worst: true, low: true},
				{key: "dropped", label: "dropped (queue full)", worst: true},
			},
			run: func(ctx context.Context, c string, _ int, d time.Duration) (metrics, error) {
				return runFlood(ctx, floodC, chans[c], d)
			},
		},
	}
	for _, name := range []string{"create", "get", "update"} {
		ops := sessOps[name]
		what := map[string]string{
			"create": "coord Create of a 10-field session vs a raw pipelined HSET of the same 10 JSON fields + PEXPIRE",
			"get":    "coord Get vs a raw HGETALL of the same session hash",
			"update": "coord Update of 2 fields vs a raw HSET of the same 2 JSON fields",
		}[name] + "; rueidis = raw's commands on github.com/redis/rueidis (auto-pipelined)"
		tests = append(tests, &test{
			id: "session-" + name, title: fmt.Sprintf("Session %s, %d goroutines", name, g),
			note:       what + ".",
			contenders: []string{"raw", "coord", "rueidis"}, vs: vsRueidis, ops: rate("ops/s"),
			metrics: []metricDef{
				{key: "ops/s", label: "ops/s", ratio: true},
				{key: "p50", label: "p50 ms", ratio: true},
				{key: "p99", label: "p99 ms", ratio: true},
			},
			run: func(ctx context.Context, c string, _ int, d time.Duration) (metrics, error) {
				return runOps(ctx, ops[c], g, d)
			},
		})
	}
	rt, closeRate, err := rateTests(srv, cfg)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, closeRate)
	tests = append(tests, rt...)
	tests = append(tests, procTest(srv, cfg))
	stTests, closeSt, err := streamTests(srv, cfg)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, closeSt)
	tests = append(tests, stTests...)
	for _, t := range tests {
		t.metrics = append(t.metrics, cpuMetrics...)
	}
	return tests, closeAll, nil
}

// target is one goal: of issue 7 (item 3), then of issue 17.
type target struct {
	desc            string
	test, contender string
	metric          string
	ratio           bool    // compare contender/baseline (median of the per-round ratios)
	versus          string  // the baseline of the ratio when not the test's first contender
	worst           bool    // compare the worst round instead of the median
	atMost          bool    // the value must be <= limit (else >=)
	limit           float64 // in the metric's unit, or a ratio
	unit            string
}

func targets(cfg config) []target {
	g := cfg.goroutines
	all := []target{
		{desc: fmt.Sprintf("uncontended pair at %d goroutines ≥ 0.95× raw", g), test: fmt.Sprintf("lock-%d", g), contender: "coord", metric: "pairs/s", ratio: true, limit: 0.95},
		{desc: "contended: acquisitions/s ≥ 1.0× raw polling at 1 ms", test: "contended", contender: "coord", metric: "acq/s", ratio: true, limit: 1.0},
		{desc: "contended: p99 wait ≤ 5 ms", test: "contended", contender: "coord", metric: "wait p99", atMost: true, limit: 5, unit: " ms"},
		{desc: "contended: max wait ≤ 50 ms (worst round)", test: "contended", contender: "coord", metric: "wait max", worst: true, atMost: true, limit: 50, unit: " ms"},
		{desc: "contended: releaser re-wins ≤ 50% of handoffs", test: "contended", contender: "coord", metric: "re-wins", atMost: true, limit: 50, unit: "%"},
		{desc: "contended: no goroutine starved (worst round)", test: "contended", contender: "coord", metric: "starved", worst: true, atMost: true, limit: 0},
		{desc: "4 processes: wait p99 ≤ 10 ms (worst round)", test: "contended-4proc", contender: "coord", metric: "wait p99", worst: true, atMost: true, limit: 10, unit: " ms"},
		{desc: "4 processes: wait max ≤ 50 ms (worst round)", test: "contended-4proc", contender: "coord", metric: "wait max", worst: true, atMost: true, limit: 50, unit: " ms"},
		{desc: "4 processes: each process's share within ±25% of the mean (worst round)", test: "contended-4proc", contender: "coord", metric: "share", worst: true, atMost: true, limit: 25, unit: "%"},
		{desc: "uncontended pair at 1 goroutine ≥ 1.0× raw", test: "lock-1", contender: "coord", metric: "pairs/s", ratio: true, limit: 1.0},
		{desc: "session Get ≥ 0.9× raw", test: "session-get", contender: "coord", metric: "ops/s", ratio: true, limit: 0.9},
		{desc: "invalidation p50 ≤ 1.2× raw pub/sub", test: "pubsub-1k", contender: "invalidation", metric: "p50", ratio: true, atMost: true, limit: 1.2},
		{desc: fmt.Sprintf("invalidation p99 ≤ 1 ms at %d/s", cfg.rate), test: "pubsub-1k", contender: "invalidation", metric: "p99", atMost: true, limit: 1, unit: " ms"},
		{desc: "one subscriber ≥ 100k invalidations/s", test: "subscriber", contender: "invalidation", metric: "msgs/s", limit: 100000, unit: "/s"},
		{desc: fmt.Sprintf("rate limit GCRA at %d goroutines ≥ 1.0× redis_rate", g), test: "rate-gcra", contender: "coord", metric: "ops/s", ratio: true, limit: 1.0},
		{desc: "sliding window ≥ 0.8× coord GCRA", test: "rate-window", contender: "coord-window", metric: "ops/s", ratio: true, limit: 0.8},
		// Issue 17, items 3 to 5.
		{desc: fmt.Sprintf("uncontended pair at %d goroutines ≥ 0.9× rueidis", g), test: fmt.Sprintf("lock-%d", g), contender: "coord", versus: "rueidis", metric: "pairs/s", ratio: true, limit: 0.9},
		{desc: "contended: acquisitions/s ≥ 0.9× rueidis polling at 1 ms", test: "contended", contender: "coord", versus: "rueidis", metric: "acq/s", ratio: true, limit: 0.9},
		{desc: "session Create ≥ 0.9× rueidis", test: "session-create", contender: "coord", versus: "rueidis", metric: "ops/s", ratio: true, limit: 0.9},
		{desc: "session Get ≥ 0.9× rueidis", test: "session-get", contender: "coord", versus: "rueidis", metric: "ops/s", ratio: true, limit: 0.9},
		{desc: "session Update ≥ 0.9× rueidis", test: "session-update", contender: "coord", versus: "rueidis", metric: "ops/s", ratio: true, limit: 0.9},
		{desc: "session Create ≥ 0.8× raw", test: "session-create", contender: "coord", metric: "ops/s", ratio: true, limit: 0.8},
		{desc: "session Create: server CPU per create ≤ 1.5× raw", test: "session-create", contender: "coord", metric: "redis µs/op", ratio: true, atMost: true, limit: 1.5},
		{desc: fmt.Sprintf("invalidation p99 at %d/s ≤ 1.1× raw", cfg.rate), test: "pubsub-1k", contender: "invalidation", metric: "p99", ratio: true, atMost: true, limit: 1.1},
		{desc: fmt.Sprintf("event p99 at %d/s ≤ 1.1× raw", cfg.rate), test: "pubsub-1k", contender: "events", metric: "p99", ratio: true, atMost: true, limit: 1.1},
		{desc: "one subscriber: invalidations/s ≥ 0.95× raw", test: "subscriber", contender: "invalidation", metric: "msgs/s", ratio: true, limit: 0.95},
	}
	return append(all, leaseTargets(cfg)...)
}
