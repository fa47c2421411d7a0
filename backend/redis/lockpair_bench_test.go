package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
	"github.com/cgn-bot/coord/internal/secret"
)

// BenchmarkLockPairOneGoroutine: one goroutine takes (try once) and
// releases a lease of its own in a loop, the common case of a cron job or
// a request handler, against the raw pair (SET NX PX + EVALSHA
// compare-and-delete) on the same server. Compare the ns/op and
// allocs/op of the two:
//
//	go test -run '^$' -bench 'LockPairOneGoroutine' -count 5 ./backend/redis/
func BenchmarkLockPairOneGoroutine(b *testing.B) {
	srv := redistest.Start(b)
	client := func(b *testing.B) *goredis.Client {
		o := srv.Options()
		o.PoolSize = 32
		c := goredis.NewClient(o)
		b.Cleanup(func() { _ = c.Close() })
		return c
	}
	b.Run("coord", func(b *testing.B) {
		be, err := coordredis.New(client(b), &coordredis.Options{Prefix: "pair1:"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = be.Close(context.Background()) })
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			l, err := be.Locker().Acquire(ctx, "one", coord.WithTTL(10*time.Second), coord.WithRetry(0, 0))
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		c := client(b)
		release := goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
		ctx := context.Background()
		const key = "pair1raw:lock:{one}"
		b.ReportAllocs()
		for b.Loop() {
			token := secret.LockToken()
			ok, err := c.SetNX(ctx, key, token, 10*time.Second).Result()
			if err != nil || !ok {
				b.Fatalf("SET NX: %v %v", ok, err)
			}
			if n, err := release.Run(ctx, c, []string{key}, token).Int64(); err != nil || n != 1 {
				b.Fatalf("release: %d %v", n, err)
			}
		}
	})
}
