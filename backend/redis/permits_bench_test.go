package redis_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// BenchmarkPermitPair: 16 goroutines each take (try once) and release a
// permit of a 4-permit semaphore of its own, in a loop, beside coord's
// exclusive pair (the lease-pair-16 test of bench/), on one server.
// Besides ns/op and allocs/op (the client's side) it reports what the
// server pays per pair: its CPU (INFO cpu) and the commands it ran,
// scripts included (INFO commandstats):
//
//	go test -run '^$' -bench 'PermitPair' -benchmem -count 5 ./backend/redis/
func BenchmarkPermitPair(b *testing.B) {
	srv := benchServer(b)
	ttl := coord.WithTTL(10 * time.Second)
	once := coord.WithRetry(0, 0)
	for _, tc := range []struct {
		name string
		pair func(ctx context.Context, be coordBackend, res string) error
	}{
		{"lock", func(ctx context.Context, be coordBackend, res string) error {
			l, err := be.Locker().Acquire(ctx, res, ttl, once)
			if err != nil {
				return err
			}
			return l.Release(ctx)
		}},
		{"permit", func(ctx context.Context, be coordBackend, res string) error {
			l, err := be.Semaphores().Acquire(ctx, res, 4, ttl, once)
			if err != nil {
				return err
			}
			return l.Release(ctx)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			be := benchBackend(b, srv, nil)
			admin := srv.Client(b)
			var ids atomic.Int64
			parallel16(b)
			b.ReportAllocs()
			m := startMeter(b, admin)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				res := fmt.Sprintf("pp-%s-%d", tc.name, ids.Add(1))
				for pb.Next() {
					if err := tc.pair(ctx, be, res); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			m.report(b)
		})
	}
}

// BenchmarkPermitContended: 16 goroutines on one 4-permit semaphore,
// each waiting for a permit (WithWait(100ms)) and releasing it at once,
// as the sem-contended test of bench/ does. Besides ns per acquisition it
// reports what the server pays per acquisition (CPU, commands, scripts,
// PUBLISHes) and the permits live on average (the permit set's size,
// sampled every 200µs):
//
//	go test -run '^$' -bench 'PermitContended' -benchtime 3s -count 3 ./backend/redis/
func BenchmarkPermitContended(b *testing.B) {
	srv := benchServer(b)
	be := benchBackend(b, srv, &coordredis.Options{Prefix: "pc:"})
	admin := srv.Client(b)
	const res = "contended"
	key := "pc:sem:{" + res + "}"
	opts := []coord.LockOption{coord.WithTTL(10 * time.Second), coord.WithWait(100 * time.Millisecond)}
	var live, samples atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		c := srv.Client(b)
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			// ZCOUNT, which the permit scripts on these paths do not run, so
			// that serverCost can leave the samples out.
			if n, err := c.ZCount(context.Background(), key, "-inf", "+inf").Result(); err == nil {
				live.Add(n)
				samples.Add(1)

			}
		}
	}()
	parallel16(b)
	b.ReportAllocs()
	m := startMeter(b, admin)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			l, err := be.Semaphores().Acquire(ctx, res, 4, opts...)
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
	b.StopTimer()
	close(stop)
	<-sampled
	d := m.report(b)
	b.ReportMetric(d.publishes/float64(b.N), "publishes/op")
	if s := samples.Load(); s > 0 {
		b.ReportMetric(float64(live.Load())/float64(s), "live-permits")
	}
}

// coordBackend is what the pair benchmarks use of a Backend.
type coordBackend interface {
	Locker() coord.Locker
	Semaphores() coord.Semaphores
}

// cost is a server's CPU seconds and command counts so far.
type cost struct {
	cpu     float64 // used_cpu_user + used_cpu_sys, seconds
	calls   float64 // every command, those scripts run included (not INFO, nor the samples' ZCOUNT)
	scripts float64 // EVALSHA and EVAL calls
	// PUBLISH calls
	publishes float64
}

// meter is what a permit benchmark read before its measured run.
type meter struct {
	admin  *goredis.Client
	server cost
	client float64
}

// startMeter reads the server's cost and this process's CPU so far.
func startMeter(b *testing.B, admin *goredis.Client) meter {
	b.Helper()
	return meter{admin: admin, server: serverCost(b, admin), client: clientCPU(b)}
}

// report reports, per operation of b since m was read, the client's and
// the server's CPU, the commands and the scripts the server ran, and
// returns the server's cost over the run.
func (m meter) report(b *testing.B) cost {
	b.Helper()
	c1 := clientCPU(b)
	after := serverCost(b, m.admin)
	d := cost{cpu: after.cpu - m.server.cpu, calls: after.calls - m.server.calls,
		scripts: after.scripts - m.server.scripts, publishes: after.publishes - m.server.publishes}
	n := float64(b.N)
	b.ReportMetric((c1-m.client)*1e6/n, "client-µs/op")
	b.ReportMetric(d.cpu*1e6/n, "server-µs/op")
	b.ReportMetric(d.calls/n, "commands/op")
	b.ReportMetric(d.scripts/n, "scripts/op")
	return d
}

// clientCPU returns this process's CPU seconds so far.
func clientCPU(b *testing.B) float64 {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// serverCost reads INFO cpu and commandstats (readServerCost) and sums
// the calls the permit benchmarks count.
func serverCost(b *testing.B, c *goredis.Client) cost {
	b.Helper()
	s := readServerCost(context.Background(), b, c)
	out := cost{cpu: s.cpu}
	for name, calls := range s.calls {
		switch name {
		case "client|setinfo", "hello", "ping", "zcount":
			continue
		case "evalsha", "eval":
			out.scripts += float64(calls)
		case "publish", "spublish":
			out.publishes += float64(calls)
		}
		out.calls += float64(calls)
	}
	return out
}
