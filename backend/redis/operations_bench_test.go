package redis_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/conformance"
)

// BenchmarkOperations measures every operation of every interface on a
// real redis-server, with the same names as on the memory backend:
//
//	go test -run '^$' -bench Operations -benchmem ./backend/redis/
func BenchmarkOperations(b *testing.B) {
	srv := benchServer(b)
	var n atomic.Int64
	conformance.Benchmark(b, func(b *testing.B) conformance.BenchInstances {
		prefix := "bench" + strconv.FormatInt(n.Add(1), 10) + ":"
		return func(b *testing.B) coord.Backend {
			c := goredis.NewClient(srv.Options())
			be, err := coordredis.New(c, &coordredis.Options{Prefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				_ = be.Close(context.Background())
				_ = c.Close()
			})
			return be
		}
	})
}
