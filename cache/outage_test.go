package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord/backend/memory"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

// staleWindow is the documented worst-case staleness window after a
// silent outage of the subscriber connection with the Redis backend's
// default options: a PING every second (HealthInterval), suspected after
// a second without its PONG (PingTimeout), and up to half a second more
// for scheduling and delivering the GapStart on a loaded machine.
const staleWindow = 2500 * time.Millisecond

// TestSilentOutageStaleness: the subscriber connection of a reader goes
// through a proxy that stops forwarding without a reset, for 6s, while
// another instance keeps changing a value and invalidating it. Reads
// through the reader's near cache may be stale only within staleWindow of
// the cut; after it the cache loads through. After the heal the cache is
// purged, serves again, and stays fresh.
func TestSilentOutageStaleness(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewStallProxy(t, srv.Addr())
	ctx := t.Context()

	readerClient := goredis.NewClient(&goredis.Options{Addr: proxy.Addr()})
	writerClient := goredis.NewClient(srv.Options())
	reader, err := coordredis.New(readerClient, nil)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := coordredis.New(writerClient, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New[int64](ctx, reader.Invalidator(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		proxy.Heal()
		_ = reader.Close(context.Background())
		_ = writer.Close(context.Background())
		proxy.Close()
		_ = readerClient.Close()
		_ = writerClient.Close()
	})

	var version atomic.Int64 // the source of truth
	load := func(context.Context, string) (int64, error) { return version.Load(), nil }
	write := func() {
		version.Add(1)
		if err := writer.Invalidator().Invalidate(ctx, "v", nil); err != nil {
			t.Error(err)
		}
	}
	read := func() (got, before int64) {
		before = version.Load()
		got, err := c.GetOrLoad(ctx, "v", load)
		if err != nil {
			t.Fatal(err)
		}
		return got, before
	}
	// Warm: the value is cached, and an invalidation reaches the reader.
	read()
	write()
	waitUntil(t, 3*time.Second, func() bool { v, b := read(); return v == b }, "the first invalidation delivered")
	if _, ok := c.Get("v"); !ok {
		t.Fatal("value not cached before the cut")
	}

	const cut = 6 * time.Second
	proxy.Stall()
	t0 := time.Now()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				write()
			}
		}
	})
	var lastStale time.Duration
	stale, reads := 0, 0
	for time.Since(t0) < cut {
		got, before := read()
		reads++
		if got < before {
			stale++
			lastStale = time.Since(t0)
		}
		time.Sleep(20 * time.Millisecond) // the pace of reads, not a wait for a condition
	}
	close(stop)
	wg.Wait()
	st := c.Stats()
	t.Logf("during the %v cut: %d of %d reads stale, the last %v after the cut; cache %+v", cut, stale, reads, lastStale, st)
	if lastStale > staleWindow {
		t.Errorf("a stale read %v after the cut, past the %v window", lastStale, staleWindow)
	}
	if st.Gaps == 0 || !st.Suspended {
		t.Errorf("the cache was not suspended during the outage: %+v", st)
	}

	healed := time.Now()
	proxy.Heal()
	waitUntil(t, 10*time.Second, func() bool { return !c.Stats().Suspended }, "the cache serves again after the heal")
	t.Logf("serving again %v after the heal", time.Since(healed))
	if got, before := read(); got != before {
		t.Errorf("read after the heal = %d, want %d", got, before)
	}
	if _, ok := c.Get("v"); !ok {
		t.Error("value not cached after the heal")
	}
	write()
	waitUntil(t, 3*time.Second, func() bool { v, b := read(); return v == b }, "an invalidation after the heal delivered")
}

// TestGapSuspendsCache: on the memory backend a cut subscription
// suspends the cache at once (nothing served or stored, loads go
// through) until the reconnect's PurgeAll.
func TestGapSuspendsCache(t *testing.T) {
	hub := memory.NewHub(nil)
	n := hub.NewNode(&memory.NodeOptions{ReconnectDelay: time.Hour})
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	c, err := New[int](t.Context(), n.Invalidator(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Set("k", 1); err != nil {
		t.Fatal(err)
	}
	n.CutSubscription()
	waitUntil(t, 2*time.Second, func() bool { return c.Stats().Suspended }, "suspended")
	if _, ok := c.Get("k"); ok {
		t.Error("Get served a value while suspended")
	}
	loads := 0
	for range 3 {
		v, err := c.GetOrLoad(t.Context(), "k", func(context.Context, string) (int, error) { loads++; return 2, nil })
		if err != nil || v != 2 {
			t.Fatalf("GetOrLoad = %d, %v", v, err)
		}
	}
	if loads != 3 {
		t.Errorf("%d loads for 3 reads while suspended, want 3 (load through)", loads)
	}
	if err := c.Set("k", 3); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Errorf("%d entries stored while suspended", c.Len())
	}
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
