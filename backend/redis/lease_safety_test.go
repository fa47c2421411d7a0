package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

// acquireFence takes and releases the lease on resource, retrying while
// the server is coming back, and returns the lease's fence.
func acquireFence(t *testing.T, b *coordredis.Backend, resource string) int64 {
	t.Helper()
	ctx := t.Context()
	var l coord.Lock
	eventually(t, 10*time.Second, func() bool {
		var err error
		l, err = b.Locker().Acquire(ctx, resource, coord.WithRetry(0, 0))
		return err == nil
	}, "an acquire on the server")
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	return l.Fence()
}

// TestFenceAfterSnapshotRestore: a server killed and restarted from a
// snapshot taken three fences ago (its counter went back) still hands out
// a fence above every fence before.
func TestFenceAfterSnapshotRestore(t *testing.T) {
	srv := redistest.Start(t)
	c := goredis.NewClient(srv.Options())
	defer c.Close()
	b, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	var fences []int64
	for i := range 8 {
		fences = append(fences, acquireFence(t, b, "snap"))
		if i > 0 && fences[i] <= fences[i-1] {
			t.Fatalf("fence %d = %d, not above %d", i+1, fences[i], fences[i-1])
		}
		if i == 2 {
			srv.Do(t, "SAVE")
		}
	}
	srv.Kill(t)
	srv.Restart(t)
	if n, _ := srv.Do(t, "DBSIZE").(int64); n == 0 {
		t.Fatal("the server came back without its snapshot")
	}
	if f := acquireFence(t, b, "snap"); f <= fences[7] {
		t.Fatalf("fence after the restore = %d, not above the last one before it, %d (fences %v)", f, fences[7], fences)
	}
}

// TestFenceCounterRules: the fence is the greater of the counter + 1 and
// the server clock in microseconds; a counter ahead of the clock (the
// clock stepped back) is still exceeded; a counter that is no number
// counts as missing; the counter key expires.
func TestFenceCounterRules(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "fr:"})
		raw := rawClient(t, s)
		const fenceKey = "fr:lock:{r}:fence"
		f1 := acquireFence(t, b, "r")
		now := time.Now().UnixMicro()
		if f1 < now-int64(time.Hour/time.Microsecond) || f1 > now+int64(time.Hour/time.Microsecond) {
			t.Errorf("first fence %d is not the server clock in microseconds (about %d)", f1, now)
		}
		if ttl, err := raw.PTTL(ctx, fenceKey).Result(); err != nil || ttl <= 0 {
			t.Errorf("fence counter PTTL = %v, %v; want an expiry", ttl, err)
		}
		ahead := now + int64(time.Hour/time.Microsecond)
		if err := raw.Set(ctx, fenceKey, strconv.FormatInt(ahead, 10), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if f := acquireFence(t, b, "r"); f != ahead+1 {
			t.Errorf("fence with the counter an hour ahead of the clock = %d, want %d", f, ahead+1)
		}
		if ttl, err := raw.PTTL(ctx, fenceKey).Result(); err != nil || ttl < 50*time.Minute {
			t.Errorf("fence counter an hour ahead: PTTL = %v, %v; want it kept until the clock passes it", ttl, err)
		}
		if err := raw.Set(ctx, fenceKey, "not a number", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if f := acquireFence(t, b, "r"); f <= f1 || f >= ahead {
			t.Errorf("fence after a foreign counter = %d, want the clock (above %d, below %d)", f, f1, ahead)
		}
	})
}
