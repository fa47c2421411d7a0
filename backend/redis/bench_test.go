package redis_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
	"github.com/cgn-bot/coord/internal/secret"
)

// The benchmarks run on a real redis-server and compare coord with the
// same work done with raw go-redis. Run them with
//
//	go test -run '^$' -bench . -benchtime 3s ./backend/redis/
//
// and compare the ns/op of each coord/raw pair.

const benchGoroutines = 16

// benchServer starts a redis-server and returns a client option factory.
func benchServer(b *testing.B) *redistest.Server {
	b.Helper()
	return redistest.Start(b)
}

func benchBackend(b *testing.B, srv *redistest.Server, opts *coordredis.Options) *coordredis.Backend {
	b.Helper()
	o := srv.Options()
	o.PoolSize = 32
	c := goredis.NewClient(o)
	be, err := coordredis.New(c, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = be.Close(context.Background())
		_ = c.Close()
	})
	return be
}

// parallel16 makes RunParallel use 16 goroutines whatever GOMAXPROCS is
// (when it divides 16).
func parallel16(b *testing.B) {
	b.SetParallelism(max(benchGoroutines/max(runtime.GOMAXPROCS(0), 1), 1))
}

// BenchmarkAcquireRelease: uncontended Acquire+Release at 16 goroutines,
// each on its own resource, against the raw pair (SET NX PX + EVALSHA
// compare-and-delete).
func BenchmarkAcquireRelease(b *testing.B) {
	srv := benchServer(b)
	b.Run("coord", func(b *testing.B) {
		be := benchBackend(b, srv, &coordredis.Options{Prefix: "bench:"})
		var ids atomic.Int64
		parallel16(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			res := fmt.Sprintf("uncontended-%d", ids.Add(1))
			for pb.Next() {
				l, err := be.Locker().Acquire(ctx, res, coord.WithTTL(10*time.Second), coord.WithRetry(0, 0))
				if err != nil {
					b.Error(err)
					return
				}
				if err := l.Release(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("raw", func(b *testing.B) {
		o := srv.Options()
		o.PoolSize = 32
		c := goredis.NewClient(o)
		defer c.Close()
		release := goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
		var ids atomic.Int64
		parallel16(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			key := fmt.Sprintf("raw:lock:{uncontended-%d}", ids.Add(1))
			for pb.Next() {
				token := secret.LockToken()
				ok, err := c.SetNX(ctx, key, token, 10*time.Second).Result()
				if err != nil || !ok {
					b.Errorf("SET NX: %v %v", ok, err)
					return
				}
				if err := release.Run(ctx, c, []string{key}, token).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkContended: 16 goroutines take turns on one resource. It
// reports the wait percentiles, the fewest acquisitions of any goroutine
// relative to a fair share (min-share, 1 = perfectly fair, 0 = one
// starved), and how often the releasing goroutine won the next handoff
// (rewin). instances-N spreads the goroutines over N Backends (16: one
// goroutine per Backend, as 16 processes would be).
func BenchmarkContended(b *testing.B) {
	srv := benchServer(b)
	for _, c := range []struct{ goroutines, instances int }{{16, 1}, {16, 4}, {16, 16}, {2, 2}} {
		goroutines, instances := c.goroutines, c.instances
		b.Run(fmt.Sprintf("goroutines-%d/instances-%d", goroutines, instances), func(b *testing.B) {
			bes := make([]*coordredis.Backend, instances)
			for i := range bes {
				bes[i] = benchBackend(b, srv, &coordredis.Options{Prefix: fmt.Sprintf("contended%d:", b.N), HandoffWindow: handoffForBench})
			}
			ctx := context.Background()
			var (
				mu       sync.Mutex
				waits    []time.Duration
				last     = -1
				handoffs int
				rewins   int
				counts   = make([]int, goroutines)
				left     atomic.Int64
			)
			left.Store(int64(b.N))
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := range goroutines {
				be := bes[g%instances]
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						start := time.Now()
						l, err := be.Locker().Acquire(ctx, "hot", coord.WithTTL(5*time.Second), coord.WithWait(100*time.Millisecond))
						if err != nil {
							b.Error(err)
							return
						}
						w := time.Since(start)
						mu.Lock()
						waits = append(waits, w)
						counts[g]++
						if last >= 0 {
							handoffs++
							if last == g {
								rewins++
							}
						}
						last = g
						mu.Unlock()
						if err := l.Release(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(waits)
			pct := func(p float64) float64 {
				if len(waits) == 0 {
					return 0
				}
				return float64(waits[int(p*float64(len(waits)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.5), "p50-wait-ms")
			b.ReportMetric(pct(0.99), "p99-wait-ms")
			b.ReportMetric(pct(1), "max-wait-ms")
			if handoffs > 0 {
				b.ReportMetric(float64(rewins)/float64(handoffs), "rewin")
			}
			if b.N >= goroutines {
				b.ReportMetric(float64(slices.Min(counts))/(float64(b.N)/float64(goroutines)), "min-share")
			}
		})
	}
}

// BenchmarkSessionGet: Get of a session with a few fields at 16
// goroutines, against a raw HGETALL of the same hash.
func BenchmarkSessionGet(b *testing.B) {
	srv := benchServer(b)
	be := benchBackend(b, srv, &coordredis.Options{Prefix: "sess:"})
	ctx := context.Background()
	s, err := be.Sessions().Create(ctx, "user-1", map[string]any{
		"name": "Ann", "id": int64(1234567890123456789), "roles": []string{"admin", "dev"},
		"prefs": map[string]any{"theme": "dark", "lang": "en"}, "n": 3,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("coord", func(b *testing.B) {
		parallel16(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := be.Sessions().Get(ctx, s.ID); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("raw", func(b *testing.B) {
		o := srv.Options()
		o.PoolSize = 32
		c := goredis.NewClient(o)
		defer c.Close()
		key := "sess:{s}:s:" + s.Handle
		parallel16(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m, err := c.HGetAll(ctx, key).Result()
				if err != nil || len(m) == 0 {
					b.Errorf("HGETALL: %d fields, %v", len(m), err)
					return
				}
			}
		})
	})
}

// BenchmarkInvalidationLatency: publish-to-receive time of one
// invalidation at a time between two instances, against a raw PUBLISH
// read by a raw SUBSCRIBE. It reports the median in microseconds.
func BenchmarkInvalidationLatency(b *testing.B) {
	srv := benchServer(b)
	report := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-us")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-us")
		}
	}
	b.Run("coord", func(b *testing.B) {
		pub := benchBackend(b, srv, &coordredis.Options{Prefix: "lat:"})
		sub := benchBackend(b, srv, &coordredis.Options{Prefix: "lat:"})
		got := make(chan struct{}, 1)
		s, err := sub.Invalidator().Subscribe(context.Background(), func(coord.Invalidation) { got <- struct{}{} })
		if err != nil {
			b.Fatal(err)
		}
		defer s.Unsubscribe()
		ctx := context.Background()
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			if err := pub.Invalidator().Invalidate(ctx, "user:42:profile", map[string]any{"reason": "update"}); err != nil {
				b.Fatal(err)
			}
			<-got
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		report(b, lat)
	})
	b.Run("raw", func(b *testing.B) {
		o := srv.Options()
		c := goredis.NewClient(o)
		defer c.Close()
		ctx := context.Background()
		ps := c.Subscribe(ctx, "raw:cache:invalidate")
		if _, err := ps.Receive(ctx); err != nil {
			b.Fatal(err)
		}
		got := make(chan struct{}, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if _, err := ps.ReceiveMessage(ctx); err != nil {
					return
				}
				got <- struct{}{}
			}
		}()
		msg := `{"instanceId":"bot-1-1-abc","cacheKey":"user:42:profile","metadata":{"reason":"update"},"timestamp":1703174400000}`
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			if err := c.Publish(ctx, "raw:cache:invalidate", msg).Err(); err != nil {
				b.Fatal(err)
			}
			<-got
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		_ = ps.Close()
		<-done
		report(b, lat)
	})
}

// pairTimer accumulates the time of coord and raw operations done
// alternately by the same goroutines, so that both see the same load.
type pairTimer struct {
	coordNs, rawNs atomic.Int64
	n              atomic.Int64
}

func (p *pairTimer) report(b *testing.B) {
	n := float64(max(p.n.Load(), 1))
	c, r := float64(p.coordNs.Load())/n, float64(p.rawNs.Load())/n
	b.ReportMetric(c/1000, "coord-us/op")
	b.ReportMetric(r/1000, "raw-us/op")
	if c > 0 {
		b.ReportMetric(r/c, "speed-vs-raw")
	}
}

// BenchmarkPairAcquireRelease alternates coord's Acquire+Release with the
// raw pair in each of 16 goroutines; speed-vs-raw is raw time / coord time.
func BenchmarkPairAcquireRelease(b *testing.B) {
	srv := benchServer(b)
	be := benchBackend(b, srv, &coordredis.Options{Prefix: "pair:"})
	o := srv.Options()
	o.PoolSize = 32
	c := goredis.NewClient(o)
	defer c.Close()
	release := goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	var ids atomic.Int64
	var pt pairTimer
	parallel16(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		id := ids.Add(1)
		res := fmt.Sprintf("u-%d", id)
		key := fmt.Sprintf("raw:lock:{u-%d}", id)
		for pb.Next() {
			t0 := time.Now()
			l, err := be.Locker().Acquire(ctx, res, coord.WithTTL(10*time.Second), coord.WithRetry(0, 0))
			if err != nil {
				b.Error(err)
				return
			}
			if err := l.Release(ctx); err != nil {
				b.Error(err)
				return
			}
			t1 := time.Now()
			token := secret.LockToken()
			if ok, err := c.SetNX(ctx, key, token, 10*time.Second).Result(); err != nil || !ok {
				b.Errorf("SET NX: %v %v", ok, err)
				return
			}
			if err := release.Run(ctx, c, []string{key}, token).Err(); err != nil {
				b.Error(err)
				return
			}
			t2 := time.Now()
			pt.coordNs.Add(int64(t1.Sub(t0)))
			pt.rawNs.Add(int64(t2.Sub(t1)))
			pt.n.Add(1)
		}
	})
	pt.report(b)
}

// BenchmarkPairSessionGet alternates coord's Get with a raw HGETALL of
// the same hash in each of 16 goroutines.
func BenchmarkPairSessionGet(b *testing.B) {
	srv := benchServer(b)
	be := benchBackend(b, srv, &coordredis.Options{Prefix: "pair:"})
	ctx := context.Background()
	s, err := be.Sessions().Create(ctx, "user-1", map[string]any{
		"name": "Ann", "id": int64(1234567890123456789), "roles": []string{"admin", "dev"},
		"prefs": map[string]any{"theme": "dark", "lang": "en"}, "n": 3,
	})
	if err != nil {
		b.Fatal(err)
	}
	o := srv.Options()
	o.PoolSize = 32
	c := goredis.NewClient(o)
	defer c.Close()
	key := "pair:{s}:s:" + s.Handle
	var pt pairTimer
	parallel16(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			if _, err := be.Sessions().Get(ctx, s.ID); err != nil {
				b.Error(err)
				return
			}
			t1 := time.Now()
			if m, err := c.HGetAll(ctx, key).Result(); err != nil || len(m) == 0 {
				b.Errorf("HGETALL: %d, %v", len(m), err)
				return
			}
			t2 := time.Now()
			pt.coordNs.Add(int64(t1.Sub(t0)))
			pt.rawNs.Add(int64(t2.Sub(t1)))
			pt.n.Add(1)
		}
	})
	pt.report(b)
}

// BenchmarkPairInvalidationLatency alternates a coord invalidation with a
// raw PUBLISH of the same JSON read by a raw SUBSCRIBE, one message at a
// time, and reports both medians (p50-ratio = coord / raw).
func BenchmarkPairInvalidationLatency(b *testing.B) {
	srv := benchServer(b)
	pub := benchBackend(b, srv, &coordredis.Options{Prefix: "pairlat:"})
	sub := benchBackend(b, srv, &coordredis.Options{Prefix: "pairlat:"})
	ctx := context.Background()
	gotCoord := make(chan struct{}, 1)
	s, err := sub.Invalidator().Subscribe(ctx, func(coord.Invalidation) { gotCoord <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	defer s.Unsubscribe()
	c := goredis.NewClient(srv.Options())
	defer c.Close()
	ps := c.Subscribe(ctx, "raw:cache:invalidate")
	if _, err := ps.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	gotRaw := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := ps.ReceiveMessage(ctx); err != nil {
				return
			}
			gotRaw <- struct{}{}
		}
	}()
	msg := `{"instanceId":"bot-1-1-abc","cacheKey":"user:42:profile","metadata":{"reason":"update"},"timestamp":1703174400000}`
	latC := make([]time.Duration, 0, b.N)
	latR := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := pub.Invalidator().Invalidate(ctx, "user:42:profile", map[string]any{"reason": "update"}); err != nil {
			b.Fatal(err)
		}
		<-gotCoord
		t1 := time.Now()
		if err := c.Publish(ctx, "raw:cache:invalidate", msg).Err(); err != nil {
			b.Fatal(err)
		}
		<-gotRaw
		t2 := time.Now()
		latC = append(latC, t1.Sub(t0))
		latR = append(latR, t2.Sub(t1))
	}
	b.StopTimer()
	_ = ps.Close()
	<-done
	slices.Sort(latC)
	slices.Sort(latR)
	pc, pr := latC[len(latC)/2], latR[len(latR)/2]
	b.ReportMetric(float64(pc.Nanoseconds())/1000, "coord-p50-us")
	b.ReportMetric(float64(pr.Nanoseconds())/1000, "raw-p50-us")
	b.ReportMetric(float64(pc)/float64(pr), "p50-ratio")
}

var handoffForBench = func() time.Duration {
	if os.Getenv("COORD_BENCH_NO_HANDOFF") != "" {
		return -1
	}
	return 0
}()
