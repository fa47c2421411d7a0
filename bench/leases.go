package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// The tests of read-write leases, permits and elections (issue 13): coord
// beside the straightforward raw go-redis implementation of each (a ZSET
// semaphore script, a hash read-write lock, as most users write them).

// semLimit is the number of permits of the contended semaphore test.
const semLimit = 4

// readHold is how long each reader holds its read lease in the writer
// wait test.
const readHold = 2 * time.Millisecond

// coordReadLocker takes read leases.
type coordReadLocker struct{ rw coord.RWLocker }

func (c coordReadLocker) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	return coordObtain(wait, func(opt coord.LockOption) (coord.Lock, error) {
		return c.rw.RLock(ctx, key, coord.WithTTL(lockTTL), opt)
	})
}

// coordWriteLocker takes write leases.
type coordWriteLocker struct{ rw coord.RWLocker }

func (c coordWriteLocker) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	return coordObtain(wait, func(opt coord.LockOption) (coord.Lock, error) {
		return c.rw.Lock(ctx, key, coord.WithTTL(lockTTL), opt)
	})
}

// coordPermitLocker takes permits of a semaphore of limit.
type coordPermitLocker struct {
	s     coord.Semaphores
	limit int
}

func (c coordPermitLocker) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	return coordObtain(wait, func(opt coord.LockOption) (coord.Lock, error) {
		return c.s.Acquire(ctx, key, c.limit, coord.WithTTL(lockTTL), opt)
	})
}

// coordObtain runs take once (wait false) or waiting (wait true), as
// coordLocker does.
func coordObtain(wait bool, take func(coord.LockOption) (coord.Lock, error)) (releaser, error) {
	opt := coord.WithRetry(0, 0)
	if wait {
		opt = coord.WithWait(100 * time.Millisecond)
	}
	l, err := take(opt)
	if err != nil {
		if !wait && errors.Is(err, coord.ErrNotAcquired) {
			return nil, errBusy
		}
		return nil, err
	}
	return l.Release, nil
}

// rawSem is a ZSET semaphore as users write it: the client's clock in
// ARGV, expired permits pruned, ZADD when under the limit; waiting polls
// every pollDelay.
type rawSem struct {
	c                *goredis.Client
	acquire, release *goredis.Script
	limit            int
}

func newRawSem(c *goredis.Client, limit int) *rawSem {
	return &rawSem{c: c, limit: limit,
		acquire: goredis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0`),
		release: goredis.NewScript(`return redis.call('ZREM', KEYS[1], ARGV[1])`),
	}
}

func (r *rawSem) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	tok := token()
	return pollRaw(ctx, wait, func() (bool, error) {
		n, err := r.acquire.Run(ctx, r.c, []string{key}, tok, r.limit, time.Now().UnixMilli(), lockTTL.Milliseconds()).Int()
		return n == 1, err
	}, func(ctx context.Context) error {
		return r.release.Run(ctx, r.c, []string{key}, tok).Err()
	})
}

// rawRW is a hash read-write lock as users write it (Redisson's layout,
// simplified): field "mode" = read or write, one field per holder; no
// writer preference; waiting polls every pollDelay.
type rawRW struct {
	c                              *goredis.Client
	rlock, wlock, runlock, wunlock *goredis.Script
	write                          bool
}

func newRawRW(c *goredis.Client, write bool) *rawRW {
	return &rawRW{c: c, write: write,
		rlock: goredis.NewScript(`
if redis.call('HGET', KEYS[1], 'mode') == 'write' then return 0 end
redis.call('HSET', KEYS[1], 'mode', 'read', ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`),
		wlock: goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'mode', 'write', ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`),
		runlock: goredis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HLEN', KEYS[1]) <= 1 then redis.call('DEL', KEYS[1]) end
return 1`),
		wunlock: goredis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return redis.call('DEL', KEYS[1]) end
return 0`),
	}
}

func (r *rawRW) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	tok := token()
	take, give := r.rlock, r.runlock
	if r.write {
		take, give = r.wlock, r.wunlock
	}
	return pollRaw(ctx, wait, func() (bool, error) {
		n, err := take.Run(ctx, r.c, []string{key}, tok, lockTTL.Milliseconds()).Int()
		return n == 1, err
	}, func(ctx context.Context) error {
		return give.Run(ctx, r.c, []string{key}, tok).Err()
	})
}

// pollRaw tries once, or every pollDelay until ctx ends.
func pollRaw(ctx context.Context, wait bool, try func() (bool, error), rel releaser) (releaser, error) {
	for {
		ok, err := try()
		if err != nil {
			return nil, err
		}
		if ok {
			return rel, nil
		}
		if !wait {
			return nil, errBusy
		}
		t := time.NewTimer(pollDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// leaseSet is the contenders of the lease tests.
type leaseSet struct {
	pair     map[string]locker // each goroutine on a key of its own
	sem      map[string]locker // one semLimit-permit semaphore (or the exclusive lock)
	readers  map[string]locker
	writers  map[string]locker
	electors [2]coord.Elector
}

// leaseTests returns the tests of read-write leases, permits and
// elections, and a function that closes their clients.
func leaseTests(srv *server, cfg config) ([]*test, func(), error) {
	var clients []*goredis.Client
	var backends []*coordredis.Backend
	closeAll := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, b := range backends {
			_ = b.Close(ctx)
		}
		for _, c := range clients {
			_ = c.Close()
		}
	}
	client := func() *goredis.Client {
		c := srv.newClient()
		clients = append(clients, c)
		return c
	}
	backend := func() (*coordredis.Backend, error) {
		b, err := coordredis.New(client(), &coordredis.Options{Prefix: "lbench:"})
		if err == nil {
			backends = append(backends, b)
		}
		return b, err
	}
	var bs [4]*coordredis.Backend
	for i := range bs {
		b, err := backend()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		bs[i] = b
	}
	ls := leaseSet{
		pair: map[string]locker{
			"coord-lock":   coordLocker{bs[0].Locker()},
			"read":         coordReadLocker{bs[0].RWLocker()},
			"permit":       coordPermitLocker{bs[0].Semaphores(), semLimit},
			"raw-hash-rw":  newRawRW(client(), false),
			"raw-zset-sem": newRawSem(client(), semLimit),
		},
		sem: map[string]locker{
			"coord-lock":   coordLocker{bs[1].Locker()},
			"permit":       coordPermitLocker{bs[1].Semaphores(), semLimit},
			"raw-zset-sem": newRawSem(client(), semLimit),
		},
		readers:  map[string]locker{"coord": coordReadLocker{bs[2].RWLocker()}, "raw-hash-rw": newRawRW(client(), false)},
		writers:  map[string]locker{"coord": coordWriteLocker{bs[3].RWLocker()}, "raw-hash-rw": newRawRW(client(), true)},
		electors: [2]coord.Elector{bs[2].Elector(), bs[3].Elector()},
	}
	g := cfg.goroutines
	semMetrics := []metricDef{
		{key: "acq/s", label: "acquisitions/s", ratio: true, worst: true, low: true},
		{key: "wait p50", label: "wait p50 ms", ratio: true},
		{key: "wait p99", label: "wait p99 ms", ratio: true, worst: true},
		{key: "wait max", label: "wait max ms", worst: true},
		{key: "starved", label: "starved goroutines", worst: true},
	}
	tests := []*test{
		{
			id: fmt.Sprintf("lease-pair-%d", g), title: fmt.Sprintf("Lease pairs, uncontended, %d goroutines", g),
			note: "Each goroutine takes (try once) and releases a lease on a key of its own, in a loop. coord-lock = coord's exclusive " +
				"lease (the baseline); read = a read lease (RWLocker.RLock); permit = a permit of a 4-permit semaphore; raw-hash-rw = a " +
				"read lock of a hash read-write lock (HSET mode/holder + PEXPIRE; HDEL); raw-zset-sem = a ZSET semaphore script " +
				"(client clock in ARGV, prune, ZCARD, ZADD; ZREM).",
			contenders: []string{"coord-lock", "read", "permit", "raw-hash-rw", "raw-zset-sem"}, ops: rate("pairs/s"),
			metrics: []metricDef{
				{key: "pairs/s", label: "pairs/s", ratio: true},
				{key: "p50", label: "pair p50 ms", ratio: true},
				{key: "p99", label: "pair p99 ms", ratio: true},
			},
			run: func(ctx context.Context, c string, r int, d time.Duration) (metrics, error) {
				return runUncontended(ctx, ls.pair[c], fmt.Sprintf("lp:%s:%d", c, r), g, d)
			},
		},
		{
			id: "sem-contended", title: fmt.Sprintf("%d goroutines on one %d-permit semaphore, zero hold time", g, semLimit),
			note: fmt.Sprintf("Each goroutine waits as long as it takes for a permit (coord: WithWait(100ms), woken by releases; "+
				"raw-zset-sem: polls every %v), releases at once, and goes again. coord-lock = the same with coord's exclusive lease "+
				"(one holder; the baseline). Starved = a goroutine that never acquired or waited over %v once.", pollDelay, cfg.starve),
			contenders: []string{"coord-lock", "permit", "raw-zset-sem"}, ops: rate("acq/s"), metrics: semMetrics,
			run: func(ctx context.Context, c string, r int, d time.Duration) (metrics, error) {
				return runContended(ctx, ls.sem[c], fmt.Sprintf("sc:%s:%d", c, r), g, d, cfg.starve)
			},
		},
		{
			id: "rw-writer", title: fmt.Sprintf("A writer under continuous readers (%d readers holding %v each)", g/2, readHold),
			note: fmt.Sprintf("%d goroutines take read leases, hold each %v and go again at once, so reads always overlap; one "+
				"goroutine takes the write lease (waiting), releases it at once, pauses 1 ms and goes again. Writer wait = from the "+
				"writer's call to its lease. coord: writer intents hold new readers back; raw-hash-rw: no writer preference (a writer "+
				"waiting past the end of the run counts, cut there).", g/2, readHold),
			contenders: []string{"coord", "raw-hash-rw"}, ops: rate("reads/s"),
			metrics: []metricDef{
				{key: "writer p50", label: "writer wait p50 ms", ratio: true},
				{key: "writer p99", label: "writer wait p99 ms", ratio: true, worst: true},
				{key: "writes/s", label: "writes/s", ratio: true},
				{key: "reads/s", label: "reads/s", ratio: true},
			},
			run: func(ctx context.Context, c string, r int, d time.Duration) (metrics, error) {
				return runWriterWait(ctx, ls.readers[c], ls.writers[c], fmt.Sprintf("rw:%s:%d", c, r), g/2, d)
			},
		},
		{
			id: "elect-handover", title: "Leadership handover on resignation",
			note: "Two instances: the leader resigns (Release) while the other waits in Campaign (WithWait(100ms)); handover = from " +
				"the Release call to the other's Campaign returning; then the roles swap. The wake-up is the changes channel's " +
				"notification, not the TTL (10 s).",
			contenders: []string{"coord"}, ops: rate("handovers/s"),
			metrics: []metricDef{
				{key: "handover p50", label: "handover p50 ms"},
				{key: "handover p99", label: "handover p99 ms", worst: true},
				{key: "handovers/s", label: "handovers/s"},
			},
			run: func(ctx context.Context, _ string, r int, d time.Duration) (metrics, error) {
				return runHandover(ctx, ls.electors, fmt.Sprintf("el:%d", r), d)
			},
		},
	}
	for _, t := range tests {
		t.metrics = append(t.metrics, cpuMetrics...)
	}
	return tests, closeAll, nil
}

// leaseTargets are the targets of issue 13.
func leaseTargets(cfg config) []target {
	g := cfg.goroutines
	pair := fmt.Sprintf("lease-pair-%d", g)
	return []target{
		{desc: fmt.Sprintf("read pair at %d goroutines ≥ 0.9× coord's exclusive pair", g), test: pair, contender: "read", metric: "pairs/s", ratio: true, limit: 0.9},
		{desc: fmt.Sprintf("permit pair at %d goroutines ≥ 0.9× coord's exclusive pair", g), test: pair, contender: "permit", metric: "pairs/s", ratio: true, limit: 0.9},
		{desc: "4-permit semaphore: p99 wait ≤ 5 ms", test: "sem-contended", contender: "permit", metric: "wait p99", atMost: true, limit: 5, unit: " ms"},
		{desc: "4-permit semaphore: no goroutine starved (worst round)", test: "sem-contended", contender: "permit", metric: "starved", worst: true, atMost: true, limit: 0},
		{desc: "4-permit semaphore: acquisitions/s ≥ 3× exclusive contended", test: "sem-contended", contender: "permit", metric: "acq/s", ratio: true, limit: 3},
		{desc: fmt.Sprintf("writer wait p99 ≤ 2× the read hold time (%v)", readHold), test: "rw-writer", contender: "coord", metric: "writer p99", atMost: true, limit: 2 * float64(readHold) / float64(time.Millisecond), unit: " ms"},
		{desc: "resignation hands leadership over in ≤ 10 ms p99", test: "elect-handover", contender: "coord", metric: "handover p99", atMost: true, limit: 10, unit: " ms"},
	}
}

// runWriterWait runs readers goroutines holding overlapping read leases
// and one writer taking the write lease in a loop, for d.
func runWriterWait(ctx context.Context, rl, wl locker, key string, readers int, d time.Duration) (metrics, error) {
	start := time.Now()
	end := start.Add(d)
	wctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, readers+1)
	for i := range readers {
		wg.Go(func() {
			for wctx.Err() == nil {
				rel, err := rl.obtain(wctx, key, true)
				if err != nil {
					if wctx.Err() == nil {
						errs[i] = err
					}
					return
				}
				sleepFor(wctx, readHold)
				if err := rel(context.Background()); err != nil {
					errs[i] = err
					return
				}
				reads.Add(1)
			}
		})
		// Stagger the readers so their holds overlap.
		sleepFor(wctx, readHold/time.Duration(readers))
	}
	var waits samples
	wg.Go(func() {
		for wctx.Err() == nil {
			t0 := time.Now()
			rel, err := wl.obtain(wctx, key, true)
			if err != nil {
				if wctx.Err() != nil {
					waits = append(waits, end.Sub(t0))
					return
				}
				errs[readers] = err
				return
			}
			waits = append(waits, time.Since(t0))
			if err := rel(context.Background()); err != nil {
				errs[readers] = err
				return
			}
			sleepFor(wctx, time.Millisecond)
		}
	})
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sorted := merge([]samples{waits})
	return metrics{
		"writer p50": percentile(sorted, 0.50),
		"writer p99": percentile(sorted, 0.99),
		"writes/s":   float64(len(sorted)) / elapsed.Seconds(),
		"reads/s":    float64(reads.Load()) / elapsed.Seconds(),
	}, nil
}

// runHandover alternates leadership between two electors for d: the
// leader resigns while the other waits in Campaign.
func runHandover(ctx context.Context, es [2]coord.Elector, name string, d time.Duration) (metrics, error) {
	start := time.Now()
	end := start.Add(d)
	opts := []coord.LockOption{coord.WithTTL(lockTTL), coord.WithWait(100 * time.Millisecond)}
	leader, err := es[0].Campaign(ctx, name, "bench-0", opts...)
	if err != nil {
		return nil, err
	}
	var lat samples
	for i := 1; time.Now().Before(end) && ctx.Err() == nil; i++ {
		type res struct {
			l   coord.Leadership
			err error
			at  time.Time
		}
		got := make(chan res, 1)
		campaigning := make(chan struct{})
		go func() {
			close(campaigning)
			l, err := es[i%2].Campaign(ctx, name, fmt.Sprintf("bench-%d", i%2), opts...)
			got <- res{l, err, time.Now()}
		}()
		<-campaigning
		sleepFor(ctx, 2*time.Millisecond) // let the campaigner find the leadership held and wait
		t0 := time.Now()
		if err := leader.Release(context.WithoutCancel(ctx)); err != nil {
			<-got
			return nil, err
		}
		r := <-got
		if r.err != nil {
			return nil, r.err
		}
		lat = append(lat, r.at.Sub(t0))
		leader = r.l
	}
	elapsed := time.Since(start)
	if err := leader.Release(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	sorted := merge([]samples{lat})
	return metrics{
		"handover p50": percentile(sorted, 0.50),
		"handover p99": percentile(sorted, 0.99),
		"handovers/s":  float64(len(lat)) / elapsed.Seconds(),
	}, nil
}

// sleepFor sleeps d or until ctx ends.
func sleepFor(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
