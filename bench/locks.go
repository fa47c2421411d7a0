package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// lockTTL is the lease of every lock in the run: long enough that no
// lease expires while held, so every handoff is a release.
const lockTTL = 10 * time.Second

// pollDelay is the retry delay of the polling contenders (raw, redsync,
// redislock) when they wait for a held lock.
const pollDelay = time.Millisecond

// errBusy is a try-once acquisition that found the lock held.
var errBusy = errors.New("lock held")

// releaser ends one acquisition.
type releaser func(ctx context.Context) error

// locker is one way of taking a lock: try once (wait false) or wait
// until ctx ends (wait true).
type locker interface {
	obtain(ctx context.Context, key string, wait bool) (releaser, error)
}

// rawLocker is the baseline: SET NX PX, and EVALSHA compare-and-delete;
// waiting polls every pollDelay.
type rawLocker struct {
	c       *goredis.Client
	release *goredis.Script
}

func newRawLocker(c *goredis.Client) *rawLocker {
	return &rawLocker{c: c, release: goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)}
}

func token() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (r *rawLocker) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	tok := token()
	var t *time.Timer
	for {
		ok, err := r.c.SetNX(ctx, key, tok, lockTTL).Result()
		if err != nil {
			return nil, err
		}
		if ok {
			return func(ctx context.Context) error {
				return r.release.Run(ctx, r.c, []string{key}, tok).Err()
			}, nil
		}
		if !wait {
			return nil, errBusy
		}
		if t == nil {
			t = time.NewTimer(pollDelay)
			defer t.Stop()
		} else {
			t.Reset(pollDelay)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// coordLocker is coord's Redis backend: try once with WithRetry(0, 0),
// wait with WithWait.
type coordLocker struct{ l coord.Locker }

func (c coordLocker) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	opt := coord.WithRetry(0, 0)
	if wait {
		opt = coord.WithWait(100 * time.Millisecond)
	}
	l, err := c.l.Acquire(ctx, key, coord.WithTTL(lockTTL), opt)
	if err != nil {
		if !wait && errors.Is(err, coord.ErrNotAcquired) {
			return nil, errBusy
		}
		return nil, err
	}
	return l.Release, nil
}

// redsyncLocker is go-redsync/redsync on one pool; waiting retries every
// pollDelay with no limit on tries.
type redsyncLocker struct{ rs *redsync.Redsync }

func (r redsyncLocker) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	m := r.rs.NewMutex(key, redsync.WithExpiry(lockTTL), redsync.WithTries(math.MaxInt32), redsync.WithRetryDelay(pollDelay))
	var err error
	if wait {
		err = m.LockContext(ctx)
	} else {
		err = m.TryLockContext(ctx)
	}
	if err != nil {
		var taken *redsync.ErrTaken
		if !wait && (errors.Is(err, redsync.ErrFailed) || errors.As(err, &taken)) {
			return nil, errBusy
		}
		if ctx.Err() != nil {
			return nil, errors.Join(err, ctx.Err())
		}
		return nil, err
	}
	return func(ctx context.Context) error {
		ok, err := m.UnlockContext(ctx)
		if err == nil && !ok {
			err = errors.New("redsync: unlock failed")
		}
		return err
	}, nil
}

// redislockLocker is bsm/redislock; waiting uses LinearBackoff(pollDelay)
// under the caller's deadline.
type redislockLocker struct{ c *redislock.Client }

func (r redislockLocker) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	var opt *redislock.Options
	if wait {
		opt = &redislock.Options{RetryStrategy: redislock.LinearBackoff(pollDelay)}
	}
	l, err := r.c.Obtain(ctx, key, lockTTL, opt)
	if err != nil {
		if !wait && errors.Is(err, redislock.ErrNotObtained) {
			return nil, errBusy
		}
		return nil, err
	}
	return l.Release, nil
}

// spread is a locker made of several instances: goroutine g uses
// instance g mod n (each instance a Backend on its own client).
type spread []locker

func (s spread) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	return s[0].obtain(ctx, key, wait)
}

func (s spread) at(g int) locker { return s[g%len(s)] }

// forGoroutine returns the locker goroutine g uses.
func forGoroutine(l locker, g int) locker {
	if s, ok := l.(spread); ok {
		return s.at(g)
	}
	return l
}

// instances is the number of Backends of the multi-instance coord
// contender of the contended test.
const instances = 4

// lockers makes the lock contenders, each on its own client (and coord on
// its own Backend, or on instances Backends for "coord-4inst"). close
// releases them.
func lockers(srv *server) (map[string]locker, func(), error) {
	rawC, coordC, rsC, rlC := srv.newClient(), srv.newClient(), srv.newClient(), srv.newClient()
	be, err := coordredis.New(coordC, &coordredis.Options{Prefix: "bench:"})
	if err != nil {
		return nil, nil, err
	}
	m := map[string]locker{
		"raw":       newRawLocker(rawC),
		"coord":     coordLocker{be.Locker()},
		"redsync":   redsyncLocker{redsync.New(redsyncgoredis.NewPool(rsC))},
		"redislock": redislockLocker{redislock.New(rlC)},
	}
	clients := []*goredis.Client{rawC, coordC, rsC, rlC}
	backends := []*coordredis.Backend{be}
	var four spread
	for range instances {
		c := srv.newClient()
		clients = append(clients, c)
		b, err := coordredis.New(c, &coordredis.Options{Prefix: "bench:"})
		if err != nil {
			return nil, nil, err
		}
		backends = append(backends, b)
		four = append(four, coordLocker{b.Locker()})
	}
	m[fmt.Sprintf("coord-%dinst", instances)] = four
	plainC := srv.newClient()
	clients = append(clients, plainC)
	plain, err := coordredis.New(plainC, &coordredis.Options{Prefix: "bench:", LocalHandoffs: -1})
	if err != nil {
		return nil, nil, err
	}
	backends = append(backends, plain)
	m["coord-nolocal"] = coordLocker{plain.Locker()}
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
	return m, closeAll, nil
}

// runUncontended has goroutines each take and release its own key in a
// loop for d. It reports pairs/s and the pair's p50 and p99.
func runUncontended(ctx context.Context, l locker, keyBase string, goroutines int, d time.Duration) (metrics, error) {
	parts := make([]samples, goroutines)
	errs := make([]error, goroutines)
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for g := range goroutines {
		key := fmt.Sprintf("%s:%d", keyBase, g)
		wg.Go(func() {
			lat := make(samples, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				rel, err := l.obtain(ctx, key, false)
				if err == nil {
					err = rel(context.WithoutCancel(ctx))
				}
				if err != nil {
					errs[g] = err
					break
				}
				lat = append(lat, time.Since(t0))
			}
			parts[g] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	all := merge(parts)
	return metrics{
		"pairs/s": float64(len(all)) / elapsed.Seconds(),
		"p50":     percentile(all, 0.50),
		"p99":     percentile(all, 0.99),
	}, nil
}

// runContended has goroutines take one key in turn with zero hold time
// for d, each waiting as long as it takes. A wait still running at the
// end counts, cut at the end, in the maximum and in starvation.
func runContended(ctx context.Context, l locker, key string, goroutines int, d, starveBound time.Duration) (metrics, error) {
	start := time.Now()
	end := start.Add(d)
	wctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	var (
		mu        sync.Mutex
		lastRel   = -1
		lastRelAt time.Time
		handoffs  int
		rewins    int
		handoff   samples
	)
	waits := make([]samples, goroutines)
	maxWait := make([]time.Duration, goroutines)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		lg := forGoroutine(l, g)
		wg.Go(func() {
			w := make(samples, 0, 1024)
			defer func() { waits[g] = w }()
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				rel, err := lg.obtain(wctx, key, true)
				t1 := time.Now()
				if err != nil {
					if wctx.Err() != nil {
						maxWait[g] = max(maxWait[g], end.Sub(t0))
						return
					}
					errs[g] = err
					return
				}
				if t1.After(end) {
					maxWait[g] = max(maxWait[g], end.Sub(t0))
					if err := rel(context.Background()); err != nil {
						errs[g] = err
					}
					return
				}
				wait := t1.Sub(t0)
				w = append(w, wait)
				maxWait[g] = max(maxWait[g], wait)
				mu.Lock()
				if lastRel >= 0 {
					handoffs++
					if lastRel == g {
						rewins++
					} else {
						handoff = append(handoff, t1.Sub(lastRelAt))
					}
				}
				lastRel = g
				lastRelAt = time.Now()
				mu.Unlock()
				if err := rel(context.Background()); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	all := merge(waits)
	starved := 0
	var worstWait time.Duration
	for g := range goroutines {
		if len(waits[g]) == 0 || maxWait[g] > starveBound {
			starved++
		}
		worstWait = max(worstWait, maxWait[g])
	}
	slices.Sort(handoff)
	rewin := math.NaN()
	if handoffs > 0 {
		rewin = 100 * float64(rewins) / float64(handoffs)
	}
	return metrics{
		"acq/s":       float64(len(all)) / d.Seconds(),
		"wait p50":    percentile(all, 0.50),
		"wait p99":    percentile(all, 0.99),
		"wait max":    ms(worstWait),
		"handoff p50": percentile(handoff, 0.50),
		"handoff p99": percentile(handoff, 0.99),
		"re-wins":     rewin,
		"starved":     float64(starved),
	}, nil
}
