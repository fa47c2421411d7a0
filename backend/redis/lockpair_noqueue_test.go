package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

// TestReleaseWithoutQueueWakesOtherInstance: with the queue in Redis off
// (HandoffWindow negative), a release publishes on the wake channel and
// another instance's waiter takes the lease at once, long before its
// retry delay would have it try again. The release's arguments differ
// with the queue off (the handoff window and this instance's subscriber
// count are sent only then), so this path has a test of its own.
func TestReleaseWithoutQueueWakesOtherInstance(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	newBackend := func() *coordredis.Backend {
		c := goredis.NewClient(srv.Options())
		t.Cleanup(func() { _ = c.Close() })
		b, err := coordredis.New(c, &coordredis.Options{Prefix: "nq:", HandoffWindow: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close(context.Background()) })
		return b
	}
	a, b := newBackend(), newBackend()
	admin := goredis.NewClient(srv.Options())
	defer admin.Close()

	held, err := a.Locker().Acquire(ctx, "r", coord.WithTTL(30*time.Second), coord.WithRetry(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// The waiter retries only every 5 s: only a wake-up gets it the lease
	// sooner.
	const retryDelay = 5 * time.Second
	type result struct {
		l   coord.Lock
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		l, err := b.Locker().Acquire(wctx, "r", coord.WithTTL(30*time.Second), coord.WithRetry(100, retryDelay))
		got <- result{l, err, time.Now()}
	}()
	// Wait until the waiter listens on the wake channel (its first try
	// was refused and it subscribed).
	ch := "nq:lock:{r}:wake"
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := admin.PubSubNumSub(ctx, ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n[ch] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waiter did not subscribe to %s within 5s", ch)
		}
		time.Sleep(5 * time.Millisecond)
	}
	released := time.Now()
	if err := held.Release(ctx); err != nil {
		t.Fatalf("Release = %v", err)
	}
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("the waiter's Acquire = %v", r.err)
		}
		defer func() { _ = r.l.Release(ctx) }()
		// Half the retry delay: a wake-up delayed that long on a loaded
		// machine is still told apart from no wake-up at all.
		if d := r.at.Sub(released); d >= retryDelay/2 {
			t.Errorf("the waiter got the lease %v after the release: not woken (retry delay %v)", d, retryDelay)
		}
		if r.l.Fence() <= held.Fence() {
			t.Errorf("fence %d after %d: not increasing", r.l.Fence(), held.Fence())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the waiter did not get the lease within 15s of the release")
	}
}
