package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

// TestStreamReadsLeaveThePoolAlone: blocking reads run on connections of
// their own, so more subscriptions than the pool has connections leave it
// free for everything else (go-redis#1002: blocked XREADs took every
// pooled connection).
func TestStreamReadsLeaveThePoolAlone(t *testing.T) {
	srv := redistest.Start(t)
	o := srv.Options()
	o.PoolSize = 2
	o.PoolTimeout = 300 * time.Millisecond
	c := goredis.NewClient(o)
	b, err := coordredis.New(c, &coordredis.Options{Prefix: "pool:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close(context.Background())
		_ = c.Close()
	})
	ctx := t.Context()
	s := b.Streams()
	got := make(chan string, 10)
	for i := range 6 {
		sub, err := s.Consume(ctx, fmt.Sprintf("quiet-%d", i), "g", func(context.Context, coord.StreamEntry) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	sub, err := s.Consume(ctx, "busy", "g", func(_ context.Context, e coord.StreamEntry) error {
		got <- e.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	time.Sleep(100 * time.Millisecond) // every read is blocked now
	for range 5 {
		start := time.Now()
		id, err := s.Append(ctx, "busy", 1)
		if err != nil {
			t.Fatalf("Append with 7 subscriptions blocked in reads and a pool of 2: %v", err)
		}
		if d := time.Since(start); d >= o.PoolTimeout {
			t.Fatalf("Append took %v: it waited for a pooled connection", d)
		}
		select {
		case g := <-got:
			if g != id {
				t.Fatalf("delivered %s, want %s", g, id)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("the entry was not delivered within 3s")
		}
	}
}
