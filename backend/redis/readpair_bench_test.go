package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

// pairServerCost is what redis-server spent between two reads of its INFO:
// CPU (user + system) and the commands it ran (calls and usec per
// command, from INFO commandstats; a script's usec includes the commands
// it ran, which count again under their own names).
type pairServerCost struct {
	cpu   float64 // seconds
	calls map[string]int64
	usec  map[string]int64
}

func readServerCost(ctx context.Context, tb testing.TB, c *goredis.Client) pairServerCost {
	tb.Helper()
	info, err := c.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	s := pairServerCost{calls: map[string]int64{}, usec: map[string]int64{}}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if name == "used_cpu_user" || name == "used_cpu_sys" {
			v, _ := strconv.ParseFloat(rest, 64)
			s.cpu += v
			continue
		}
		cmd, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !isCmd || cmd == "info" || strings.HasPrefix(cmd, "config") {
			continue
		}
		for f := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				s.calls[cmd], _ = strconv.ParseInt(v, 10, 64)
			}
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				s.usec[cmd], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return s
}

// report sets the benchmark's server figures per op from before to s.
func (s pairServerCost) report(b *testing.B, before pairServerCost, ops int) {
	n := float64(ops)
	b.ReportMetric((s.cpu-before.cpu)*1e6/n, "srv-cpu-µs/op")
	var cmds, scripts, scriptUsec int64
	for cmd, c := range s.calls {
		c -= before.calls[cmd]
		if cmd == "evalsha" || cmd == "eval" {
			scripts += c
			scriptUsec += s.usec[cmd] - before.usec[cmd]
			continue
		}
		cmds += c
	}
	b.ReportMetric(float64(cmds)/n, "cmds/op")
	b.ReportMetric(float64(scripts)/n, "scripts/op")
	b.ReportMetric(float64(scriptUsec)/n, "script-µs/op")
}

// processCPU returns the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLeasePairServerCost: the uncontended pair of each lease shape
// (try once, release), 16 goroutines each on a key of its own, as the
// lease-pair-16 test of bench/ runs it, with what the pair costs
// redis-server: its CPU, the commands the scripts ran and the scripts'
// own time (INFO cpu and commandstats of a server this benchmark has to
// itself), beside the client's CPU (getrusage), ns/op and allocations:
//
//	go test -run '^$' -bench 'LeasePairServerCost' -benchtime 20000x -count 3 ./backend/redis/
func BenchmarkLeasePairServerCost(b *testing.B) {
	srv := redistest.Start(b)
	o := srv.Options()
	o.PoolSize = 32
	raw := goredis.NewClient(o)
	b.Cleanup(func() { _ = raw.Close() })
	shapes := []struct {
		name string
		take func(be *coordredis.Backend, ctx context.Context, key string) (coord.Lock, error)
	}{
		{"lock", func(be *coordredis.Backend, ctx context.Context, key string) (coord.Lock, error) {
			return be.Locker().Acquire(ctx, key, coord.WithTTL(10*time.Second), coord.WithRetry(0, 0))
		}},
		{"read", func(be *coordredis.Backend, ctx context.Context, key string) (coord.Lock, error) {
			return be.RWLocker().RLock(ctx, key, coord.WithTTL(10*time.Second), coord.WithRetry(0, 0))
		}},
		{"write", func(be *coordredis.Backend, ctx context.Context, key string) (coord.Lock, error) {
			return be.RWLocker().Lock(ctx, key, coord.WithTTL(10*time.Second), coord.WithRetry(0, 0))
		}},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			c := goredis.NewClient(o)
			b.Cleanup(func() { _ = c.Close() })
			be, err := coordredis.New(c, &coordredis.Options{Prefix: "lpc:"})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = be.Close(context.Background()) })
			ctx := context.Background()
			pair := func(key string) {
				l, err := sh.take(be, ctx, key)
				if err != nil {
					b.Error(err)
					return
				}
				if err := l.Release(ctx); err != nil {
					b.Error(err)
				}
			}
			pair("warm") // load the scripts
			var next atomic.Int64
			before := readServerCost(ctx, b, raw)
			cpu0 := processCPU()
			b.ReportAllocs()
			b.SetParallelism(8) // 16 goroutines at GOMAXPROCS 2
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key := fmt.Sprintf("%s-%d", sh.name, next.Add(1))
				for pb.Next() {
					pair(key)
				}
			})
			b.StopTimer()
			b.ReportMetric((processCPU()-cpu0).Seconds()*1e6/float64(b.N), "cli-cpu-µs/op")
			readServerCost(ctx, b, raw).report(b, before, b.N)
		})
	}
}
