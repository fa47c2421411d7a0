package redis

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

// bookSizes returns the sizes of the Locker's per-name and per-lease
// books.
func (lk *Locker) bookSizes() map[string]int {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	return map[string]int{
		"queues": len(lk.queues), "byChannel": len(lk.byChannel), "held": len(lk.held),
		"renew": len(lk.renew), "orphans": len(lk.orphans),
	}
}

// TestNoLockerStateLeftPerName: once no lease or waiter is left on a
// name, neither the holding nor the waiting instance keeps anything of
// it, whether the waiter was on another instance or on the same one
// (local handoff).
func TestNoLockerStateLeftPerName(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		ctx := t.Context()
		a, _ := newTestBackend(t, opts, &Options{Prefix: "ns:"})
		b, _ := newTestBackend(t, opts, &Options{Prefix: "ns:"})
		const names = 200
		for i := range names {
			res := fmt.Sprintf("n%d", i)
			waiterOn := b.locker
			if i%2 == 1 {
				waiterOn = a.locker
			}
			held, err := a.locker.Acquire(ctx, res, coord.WithTTL(time.Minute), coord.WithAutoRenew())
			if err != nil {
				t.Fatal(err)
			}
			got := acquireAsync(ctx, waiterOn, res, coord.WithTTL(time.Minute), coord.WithAutoRenew(), coord.WithWait(time.Second))
			waitFor(t, 5*time.Second, func() bool { return waiterOn.queued(res) == 1 }, "the waiter queues")
			if err := held.Release(ctx); err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.err != nil {
				t.Fatalf("%s: waiter: %v", res, r.err)
			}
			if err := r.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for name, lk := range map[string]*Locker{"holder": a.locker, "waiter": b.locker} {
			waitFor(t, 2*time.Second, func() bool {
				for _, n := range lk.bookSizes() {
					if n != 0 {
						return false
					}
				}
				return true
			}, fmt.Sprintf("the %s instance's books empty after %d names (%v)", name, names, lk.bookSizes()))
		}
	})
}

// TestNoOrphanForOOMRefusal: an acquire refused for lack of memory wrote
// nothing, so it leaves no orphan for the watchdog to chase for a TTL.
func TestNoOrphanForOOMRefusal(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	b, raw := newTestBackend(t, srv.Options, nil)
	if err := raw.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = raw.ConfigSet(context.Background(), "maxmemory", "0").Err() }()
	for i := range 10 {
		if _, err := b.locker.Acquire(ctx, fmt.Sprintf("oom%d", i), coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrUnavailable) {
			t.Fatalf("Acquire with memory full = %v, want ErrUnavailable", err)
		}
	}
	if n := b.locker.bookSizes()["orphans"]; n != 0 {
		t.Errorf("%d orphans after acquires refused for lack of memory, want 0", n)
	}
}

// slowKeyHook holds every command on key for a second (or until its ctx
// ends), as a server that does not answer for that key would.
type slowKeyHook struct{ key string }

func (h slowKeyHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h slowKeyHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}
func (h slowKeyHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		for _, a := range cmd.Args() {
			if a == h.key {
				t := time.NewTimer(time.Second)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return ctx.Err()
				}
				break
			}
		}
		return next(ctx, cmd)
	}
}

// TestOrphansDoNotDelayRenewals: releases retried in the background
// against a server that does not answer for their key (a second each) do
// not hold up the renewal of a live lease.
func TestOrphansDoNotDelayRenewals(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		ctx := t.Context()
		b, raw := newTestBackend(t, opts, &Options{Prefix: "od:"})
		raw.AddHook(slowKeyHook{key: "od:lock:{stuck}"})
		const ttl = 600 * time.Millisecond
		l, err := b.locker.Acquire(ctx, "live", coord.WithTTL(ttl), coord.WithAutoRenew())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			b.locker.addOrphan("od:lock:{stuck}", fmt.Sprintf("token-%d", i), time.Minute)
		}
		select {
		case <-l.Done():
			t.Fatalf("an auto-renewed %v lease was lost while orphans were retried on a slow key", ttl)
		case <-time.After(5 * ttl):
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
