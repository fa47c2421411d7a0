package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// TestShapesReleaseWhenMemoryFull: with maxmemory reached under
// noeviction, releasing a read lease, a write lease, a permit (also one
// handed to a waiter of the same instance) and a leadership still
// releases, while a read lease, a write lease, a permit and a leadership
// asked for are refused with ErrUnavailable and leave nothing behind (no
// reader, writer, intent, permit or leader).
func TestShapesReleaseWhenMemoryFull(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	c := goredis.NewClient(srv.Options())
	t.Cleanup(func() { _ = c.Close() })
	b, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	rw, sem, el := b.RWLocker(), b.Semaphores(), b.Elector()
	ttl := coord.WithTTL(time.Minute)

	read, err := rw.RLock(ctx, "r", ttl)
	if err != nil {
		t.Fatal(err)
	}
	write, err := rw.Lock(ctx, "w", ttl)
	if err != nil {
		t.Fatal(err)
	}
	permit, err := sem.Acquire(ctx, "p", 2, ttl)
	if err != nil {
		t.Fatal(err)
	}
	handed, err := sem.Acquire(ctx, "h", 1, ttl)
	if err != nil {
		t.Fatal(err)
	}
	lead, err := el.Campaign(ctx, "e", "me", ttl)
	if err != nil {
		t.Fatal(err)
	}
	// A waiter of this instance for the permit of "h": its release hands
	// the permit over.
	waiter := make(chan error, 1)
	go func() {
		l, err := sem.Acquire(ctx, "h", 1, ttl, coord.WithWait(20*time.Millisecond))
		if err == nil {
			err = l.Release(context.Background())
		}
		waiter <- err
	}()
	raw := srv.Client(t)
	coordtest.Eventually(t, 5*time.Second, func() bool {
		n, err := raw.PubSubNumSub(ctx, "cgn:sem:{h}:wake").Result()
		return err == nil && n["cgn:sem:{h}:wake"] == 1
	}, "the permit waiter subscribed")

	lift := fillMemory(t, srv)
	defer lift()

	// Refused, and nothing half-done.
	once := coord.WithRetry(0, 0)
	if _, err := rw.RLock(ctx, "r2", once); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("RLock with memory full = %v, want ErrUnavailable", err)
	}
	if _, err := rw.Lock(ctx, "w2", once); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Lock with memory full = %v, want ErrUnavailable", err)
	}
	if _, err := rw.Lock(ctx, "r", once); err == nil {
		t.Error("Lock on a resource with a reader succeeded")
	}
	if _, err := sem.Acquire(ctx, "p2", 2, once); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Acquire with memory full = %v, want ErrUnavailable", err)
	}
	if _, err := el.Campaign(ctx, "e2", "me", once); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Campaign with memory full = %v, want ErrUnavailable", err)
	}
	for _, name := range []string{"r2", "w2"} {
		if st, err := rw.State(ctx, name); err != nil || st != (coord.RWState{}) {
			t.Errorf("State(%q) after a refused lease = %+v, %v; want nothing", name, st, err)
		}
	}
	if n, err := sem.Holders(ctx, "p2"); err != nil || n != 0 {
		t.Errorf("Holders after a refused permit = %d, %v; want 0", n, err)
	}
	if info, err := el.Leader(ctx, "e2"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Leader after a refused campaign = %+v, %v; want ErrNotFound", info, err)
	}
	if n, err := raw.Exists(ctx, "cgn:rw:{r2}:r", "cgn:rw:{r2}:fence", "cgn:rw:{w2}:w", "cgn:rw:{w2}:q", "cgn:rw:{w2}:fence",
		"cgn:sem:{p2}", "cgn:sem:{p2}:fence", "cgn:elect:{e2}", "cgn:elect:{e2}:fence").Result(); err != nil || n != 0 {
		t.Errorf("keys left by the refused acquires: %d, %v", n, err)
	}

	// Released.
	if err := read.Release(ctx); err != nil {
		t.Errorf("release of a read lease with memory full: %v", err)
	}
	if err := write.Release(ctx); err != nil {
		t.Errorf("release of a write lease with memory full: %v", err)
	}
	if err := permit.Release(ctx); err != nil {
		t.Errorf("release of a permit with memory full: %v", err)
	}
	if err := handed.Release(ctx); err != nil {
		t.Errorf("release of a permit to a local waiter with memory full: %v", err)
	}
	if err := lead.Release(ctx); err != nil {
		t.Errorf("resignation with memory full: %v", err)
	}
	for _, name := range []string{"r", "w"} {
		if st, err := rw.State(ctx, name); err != nil || st.Readers != 0 || st.Writer {
			t.Errorf("State(%q) after the release = %+v, %v; want no holder", name, st, err)
		}
	}
	if n, err := sem.Holders(ctx, "p"); err != nil || n != 0 {
		t.Errorf("Holders after the release = %d, %v; want 0", n, err)
	}
	if info, err := el.Leader(ctx, "e"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Leader after the resignation = %+v, %v; want ErrNotFound", info, err)
	}
	select {
	case err := <-waiter:
		if err != nil && !errors.Is(err, coord.ErrUnavailable) {
			t.Errorf("permit waiter: %v, want the permit or ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the permit waiter neither got the released permit nor failed within 10s")
	}
}
