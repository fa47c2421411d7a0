package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

// TestDeadWaiterDoesNotStallQueue: the entry a killed waiter leaves in
// the queue (older than a live waiter's, so the release reserves the
// lease for it) holds the queue up for at most its lifetime: the live
// waiter, whose retry delay is 30s, gets the lease well within 1s of the
// release (the bound is five handoff windows, 250ms, plus a wake-up).
func TestDeadWaiterDoesNotStallQueue(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		ctx := t.Context()
		holder, raw := newTestBackend(t, opts, &Options{Prefix: "dw:"})
		waiter, _ := newTestBackend(t, opts, &Options{Prefix: "dw:"})
		l, err := holder.Locker().Acquire(ctx, "r", coord.WithTTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		// The entry of a waiter killed just after its last try: as a live
		// one renews it, lasting five handoff windows.
		now, err := raw.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		q := "dw:lock:{r}:q"
		life := 5 * DefaultHandoffWindow
		member := fmt.Sprintf("%d%06d%s", now.Unix(), now.Nanosecond()/1000, "bot-dead")
		if err := raw.ZAdd(ctx, q, goredis.Z{Score: float64(now.Add(life).UnixMilli()), Member: member}).Err(); err != nil {
			t.Fatal(err)
		}
		raw.PExpire(ctx, q, life)
		got := acquireAsync(ctx, waiter.Locker().(*Locker), "r", coord.WithTTL(time.Minute), coord.WithWait(30*time.Second))
		waitQueued(t, raw, q, 2)
		start := time.Now()
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Logf("the live waiter got the lease %v after the release (the dead entry lasted %v)", time.Since(start), life)
			if err := r.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Second):
			t.Fatalf("the live waiter did not get the lease within 1s of the release (a dead entry lasts %v; retry delay 30s): a dead waiter stalls the queue", life)
		}
	})
}

// waitQueued waits up to 2s for queue q to hold n entries.
func waitQueued(t *testing.T, raw *goredis.Client, q string, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := raw.ZCard(t.Context(), q).Result()
		if err == nil && c == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d entries (%v), want %d", q, c, err, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestQueuedNotServedOutOfTurn: a waiter whose instance queued behind
// another's does not take the lease reserved for the other, even when it
// tries at once; the other takes it.
func TestQueuedNotServedOutOfTurn(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		ctx := t.Context()
		holder, raw := newTestBackend(t, opts, &Options{Prefix: "ot:"})
		first, _ := newTestBackend(t, opts, &Options{Prefix: "ot:"})
		second, _ := newTestBackend(t, opts, &Options{Prefix: "ot:"})
		l, err := holder.Locker().Acquire(ctx, "r", coord.WithTTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		q := "ot:lock:{r}:q"
		g1 := acquireAsync(ctx, first.Locker().(*Locker), "r", coord.WithTTL(time.Minute), coord.WithWait(30*time.Second))
		waitQueued(t, raw, q, 1)
		g2 := acquireAsync(ctx, second.Locker().(*Locker), "r", coord.WithTTL(time.Minute), coord.WithWait(30*time.Second))
		waitQueued(t, raw, q, 2)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// The second instance's try, made now, finds the lease reserved.
		if _, err := second.Locker().Acquire(ctx, "r", coord.WithRetry(0, 0)); err == nil {
			t.Fatal("a try-once Acquire took the lease reserved for the oldest waiter")
		}
		var r1 acquired
		select {
		case r1 = <-g1:
		case r2 := <-g2:
			t.Fatalf("the second waiter got the lease first (%v)", r2.err)
		case <-time.After(time.Second):
			t.Fatal("the oldest waiter did not get the lease within 1s (retry delay 30s)")
		}
		if r1.err != nil {
			t.Fatal(r1.err)
		}
		if err := r1.l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case r2 := <-g2:
			if r2.err != nil {
				t.Fatal(r2.err)
			}
			if err := r2.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Second):
			t.Fatal("the second waiter did not get the lease within 1s of the first's release")
		}
		if n, _ := raw.Exists(ctx, q, q+"f", "ot:lock:{r}").Result(); n != 0 {
			t.Errorf("%d of the queue, its flag and the lease key left after every release", n)
		}
	})
}

// TestUncontendedPairPublishesNothing: a lease taken and released with
// nobody waiting costs no PUBLISH, and no more than 8 commands in all
// (INFO commandstats of a real server).
func TestUncontendedPairPublishesNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	b, raw := newTestBackend(t, srv.Options, &Options{Prefix: "up:"})
	lk := b.Locker()
	pair := func(opt coord.LockOption) {
		l, err := lk.Acquire(ctx, "r", coord.WithTTL(time.Minute), opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pair(coord.WithRetry(0, 0)) // load the scripts
	if err := raw.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for range n {
		pair(coord.WithRetry(0, 0))
		pair(coord.WithWait(time.Second))
	}
	info, err := raw.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	total := 0
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd || strings.HasPrefix(name, "config") || name == "info" {
			continue
		}
		for f := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				c, _ := strconv.Atoi(v)
				calls[name] = c
				total += c
			}
		}
	}
	t.Logf("commands for %d uncontended pairs: %v", 2*n, calls)
	if calls["publish"] != 0 {
		t.Errorf("%d PUBLISH for %d pairs with nobody waiting", calls["publish"], 2*n)
	}
	if total > 8*2*n {
		t.Errorf("%d commands for %d pairs: over 8 a pair", total, 2*n)
	}
}

// TestCancelledWaiterLeavesQueue: an instance whose only waiter gives up
// takes its entry out of the queue at once (an entry left behind would be
// passed over only after it lapsed, and dropped after 10s), and the next
// instance's waiter gets the lease on the release.
func TestCancelledWaiterLeavesQueue(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		ctx := t.Context()
		holder, raw := newTestBackend(t, opts, &Options{Prefix: "cl:"})
		quitter, _ := newTestBackend(t, opts, &Options{Prefix: "cl:"})
		next, _ := newTestBackend(t, opts, &Options{Prefix: "cl:"})
		l, err := holder.Locker().Acquire(ctx, "r", coord.WithTTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		q := "cl:lock:{r}:q"
		qctx, cancel := context.WithCancel(ctx)
		defer cancel()
		gq := acquireAsync(qctx, quitter.Locker().(*Locker), "r", coord.WithTTL(time.Minute), coord.WithWait(30*time.Second))
		waitQueued(t, raw, q, 1)
		gn := acquireAsync(ctx, next.Locker().(*Locker), "r", coord.WithTTL(time.Minute), coord.WithWait(30*time.Second))
		waitQueued(t, raw, q, 2)
		cancel()
		if r := <-gq; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", r.err)
		}
		waitQueued(t, raw, q, 1) // the quitter's entry is gone
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-gn:
			if r.err != nil {
				t.Fatal(r.err)
			}
			if err := r.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Second):
			t.Fatal("the next waiter did not get the lease within 1s of the release (retry delay 30s)")
		}
	})
}
