package redis_test

import (
	"context"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

// detectBound is how soon a silent outage of the subscriber connection
// must be noticed with the default options (a PING every second,
// suspected after a second without an answer), with half a second for a
// loaded machine; before the PING deadline it took 6 to 9 seconds.
const detectBound = 2500 * time.Millisecond

// TestSilentSubscriberOutageDetected: the subscriber connection goes
// through a proxy that stops forwarding without a reset. Within
// detectBound the backend reports its subscriber reconnecting and a
// NotifyGaps subscriber gets a GapStart; after the heal every invalidation
// subscriber gets the PurgeAll "reconnect" and delivery resumes.
func TestSilentSubscriberOutageDetected(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewStallProxy(t, srv.Addr())
	ctx := t.Context()
	client := goredis.NewClient(&goredis.Options{Addr: proxy.Addr()})
	b, err := coordredis.New(client, nil)
	if err != nil {
		t.Fatal(err)
	}
	pubClient := goredis.NewClient(srv.Options())
	pub, err := coordredis.New(pubClient, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proxy.Heal()
		_ = b.Close(context.Background())
		_ = pub.Close(context.Background())
		proxy.Close()
		_ = client.Close()
		_ = pubClient.Close()
	})
	var mu sync.Mutex
	var got []coord.Invalidation
	var gapAt time.Time
	if _, err := b.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
		mu.Lock()
		defer mu.Unlock()
		if inv.Kind == coord.GapStart && gapAt.IsZero() {
			gapAt = time.Now()
		}
		got = append(got, inv)
	}, coord.NotifyGaps()); err != nil {
		t.Fatal(err)
	}
	has := func(f func(coord.Invalidation) bool) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, inv := range got {
			if f(inv) {
				return true
			}
		}
		return false
	}
	if err := pub.Invalidator().Invalidate(ctx, "before", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() bool { return has(func(i coord.Invalidation) bool { return i.Key == "before" }) }, "delivery before the cut")

	proxy.Stall()
	cut := time.Now()
	eventually(t, 10*time.Second, func() bool { return b.SubscriberState() != coord.Connected }, "the subscriber reported down")
	if d := time.Since(cut); d > detectBound {
		t.Errorf("the silent outage was noticed %v after the cut, want within %v", d, detectBound)
	}
	eventually(t, 5*time.Second, func() bool { return has(func(i coord.Invalidation) bool { return i.Kind == coord.GapStart }) }, "a GapStart")
	mu.Lock()
	d := gapAt.Sub(cut)
	mu.Unlock()
	t.Logf("GapStart delivered %v after the cut", d)
	if d > detectBound {
		t.Errorf("GapStart delivered %v after the cut, want within %v", d, detectBound)
	}
	if err := pub.Invalidator().Invalidate(ctx, "lost", nil); err != nil {
		t.Fatal(err)
	}
	proxy.Heal()
	eventually(t, 10*time.Second, func() bool {
		return has(func(i coord.Invalidation) bool { return i.Kind == coord.PurgeAll && i.Reason == coord.ReasonReconnect })
	}, "the PurgeAll reconnect after the heal")
	deadline := time.Now().Add(5 * time.Second)
	for !has(func(i coord.Invalidation) bool { return i.Key == "after" }) {
		if time.Now().After(deadline) {
			t.Fatal("delivery did not resume within 5s of the PurgeAll")
		}
		if err := pub.Invalidator().Invalidate(ctx, "after", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the pace of retries, not a wait for a condition
	}
}
