package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// handoffServers runs fn on miniredis and on a real redis-server.
func handoffServers(t *testing.T, fn func(t *testing.T, opts func() *goredis.Options)) {
	m := miniredis.RunT(t)
	m.ClockTTL(true)
	t.Run("miniredis", func(t *testing.T) {
		fn(t, func() *goredis.Options { return &goredis.Options{Addr: m.Addr()} })
	})
	srv := redistest.Start(t)
	t.Run("redis-server", func(t *testing.T) { fn(t, srv.Options) })
}

func newTestBackend(t *testing.T, opts func() *goredis.Options, o *Options) (*Backend, *goredis.Client) {
	t.Helper()
	c := goredis.NewClient(opts())
	b, err := New(c, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close(context.Background())
		_ = c.Close()
	})
	return b, c
}

// queued returns how many Acquires of this instance wait for resource.
func (lk *Locker) queued(resource string) int {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if q := lk.queues[resource]; q != nil {
		return len(q.waiters)
	}
	return 0
}

type acquired struct {
	l   coord.Lock
	err error
}

func acquireAsync(ctx context.Context, lk *Locker, resource string, opts ...coord.LockOption) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		l, err := lk.Acquire(ctx, resource, opts...)
		ch <- acquired{l, err}
	}()
	return ch
}

// TestLocalHandoff: a release hands the lease to the waiter of the same
// instance — with the waiter's token and TTL and a higher fence — well
// before the waiter's retry delay, with the local handoff on and off.
func TestLocalHandoff(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		for _, n := range []int{0, -1} {
			t.Run(fmt.Sprintf("LocalHandoffs=%d", n), func(t *testing.T) {
				ctx := t.Context()
				b, raw := newTestBackend(t, opts, &Options{Prefix: "lh:", LocalHandoffs: n})
				lk := b.Locker().(*Locker)
				res := fmt.Sprintf("r%d", n)
				held, err := lk.Acquire(ctx, res, coord.WithTTL(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				// The retry delay is far above the bound below: only the
				// release can hand the lease over in time.
				got := acquireAsync(ctx, lk, res, coord.WithTTL(5*time.Second), coord.WithRetry(3, 30*time.Second))
				coordtest.Eventually(t, 2*time.Second, func() bool { return lk.queued(res) == 1 }, "the waiter queues")
				start := time.Now()
				if err := held.Release(ctx); err != nil {
					t.Fatal(err)
				}
				var r acquired
				select {
				case r = <-got:
				case <-time.After(2 * time.Second):
					t.Fatal("the waiter did not get the lease within 2s of the release")
				}
				if r.err != nil {
					t.Fatalf("waiter: %v", r.err)
				}
				t.Logf("handed over in %v", time.Since(start))
				if r.l.Fence() <= held.Fence() {
					t.Errorf("fence %d not above the previous holder's %d", r.l.Fence(), held.Fence())
				}
				key := "lh:lock:{" + res + "}"
				if v, _ := raw.Get(ctx, key).Result(); v != r.l.Token() {
					t.Errorf("the lease key does not hold the new holder's token")
				}
				if pttl, _ := raw.PTTL(ctx, key).Result(); pttl <= 0 || pttl > 5*time.Second {
					t.Errorf("PTTL %v: not the waiter's TTL (5s)", pttl)
				}
				if ttl, err := r.l.TTL(ctx); err != nil || ttl <= 0 {
					t.Errorf("TTL of the handed-over lease = %v, %v", ttl, err)
				}
				if err := r.l.Release(ctx); err != nil {
					t.Fatal(err)
				}
				// Nobody waits any more: the lease is free at once, not
				// reserved for waiters (the instance's own wake
				// subscription may still be leaving).
				l3, err := lk.Acquire(ctx, res, coord.WithRetry(0, 0))
				if err != nil {
					t.Fatalf("a try-once Acquire right after the last release = %v", err)
				}
				if err := l3.Release(ctx); err != nil {
					t.Fatal(err)
				}
				if err := held.Release(ctx); err != nil {
					t.Errorf("second Release of the first lease = %v, want nil", err)
				}
				if n, _ := raw.Exists(ctx, key).Result(); n != 0 {
					t.Errorf("the lease key is still there after the last release")
				}
			})
		}
	})
}

// TestLocalHandoffToLeavingWaiter: a waiter whose context ends while the
// lease is being handed to it gives the lease on to the next waiter; no
// lease stays behind, whatever the timing.
func TestLocalHandoffToLeavingWaiter(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		ctx := t.Context()
		b, raw := newTestBackend(t, opts, &Options{Prefix: "lw:"})
		lk := b.Locker().(*Locker)
		var firstWon, secondWon int
		for round := range 40 {
			res := fmt.Sprintf("r%d", round)
			held, err := lk.Acquire(ctx, res, coord.WithTTL(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			ctx1, cancel1 := context.WithCancel(ctx)
			first := acquireAsync(ctx1, lk, res, coord.WithWait(30*time.Second))
			coordtest.Eventually(t, 2*time.Second, func() bool { return lk.queued(res) == 1 }, "the first waiter queues")
			second := acquireAsync(ctx, lk, res, coord.WithWait(30*time.Second))
			coordtest.Eventually(t, 2*time.Second, func() bool { return lk.queued(res) == 2 }, "the second waiter queues")

			// Cancel the first waiter around the release, sometimes before,
			// sometimes during, sometimes after.
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range round % 8 * 50 {
					_ = time.Now() // spin a little: vary the interleaving
				}
				cancel1()
			}()
			if err := held.Release(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Wait()

			var r1, r2 acquired
			select {
			case r1 = <-first:
			case <-time.After(2 * time.Second):
				t.Fatalf("round %d: the cancelled waiter did not return", round)
			}
			if r1.l != nil {
				firstWon++
				if err := r1.l.Release(ctx); err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(r1.err, coord.ErrNotAcquired) || !errors.Is(r1.err, context.Canceled) {
				t.Fatalf("round %d: cancelled waiter: %v", round, r1.err)
			}
			select {
			case r2 = <-second:
			case <-time.After(2 * time.Second):
				t.Fatalf("round %d: the second waiter did not get the lease within 2s (first returned %v)", round, r1.err)
			}
			if r2.err != nil {
				t.Fatalf("round %d: second waiter: %v", round, r2.err)
			}
			secondWon++
			if r2.l.Fence() <= held.Fence() {
				t.Errorf("round %d: fence %d not above %d", round, r2.l.Fence(), held.Fence())
			}
			if err := r2.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			// No lease, and no reservation either: the only subscriber
			// left on the wake channel, if any, is this instance's own.
			if v, err := raw.Get(ctx, "lw:lock:{"+res+"}").Result(); err != goredis.Nil {
				t.Fatalf("round %d: the lease key holds %q after the last release (%v)", round, v, err)
			}
			cancel1()
		}
		t.Logf("the cancelled waiter got the lease first in %d rounds; the second waiter in %d", firstWon, secondWon)
		if got := len(lk.Held()); got != 0 {
			t.Errorf("Held() = %d leases after every release", got)
		}
	})
}

// TestLocalHandoffYields: while the goroutines of one instance keep a
// resource busy, handing it among themselves, a waiter on another
// instance still gets it soon — far sooner than the TTL or its retry
// delay — because the local handoff yields after LocalHandoffs in a row.
func TestLocalHandoffYields(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		ctx := t.Context()
		a, _ := newTestBackend(t, opts, &Options{Prefix: "ly:"})
		other, _ := newTestBackend(t, opts, &Options{Prefix: "ly:"})
		la := a.Locker().(*Locker)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var rounds atomic.Int64
		var inside atomic.Int32
		errs := make(chan error, 8)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					l, err := la.Acquire(ctx, "busy", coord.WithTTL(10*time.Second), coord.WithWait(30*time.Second))
					if err != nil {
						errs <- err
						return
					}
					if inside.Add(1) != 1 {
						errs <- errors.New("two holders at once")
					}
					inside.Add(-1)
					rounds.Add(1)
					if err := l.Release(ctx); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		defer func() {
			close(stop)
			wg.Wait()
		}()
		coordtest.Eventually(t, 5*time.Second, func() bool { return rounds.Load() > 200 }, "the local goroutines hand the lease around")

		start := time.Now()
		got := acquireAsync(ctx, other.Locker().(*Locker), "busy", coord.WithTTL(10*time.Second), coord.WithWait(30*time.Second))
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatal(r.err)
			}
			if inside.Add(1) != 1 {
				t.Error("two holders at once")
			}
			inside.Add(-1)
			t.Logf("the other instance got the lease after %v (%d local acquisitions so far)", time.Since(start), rounds.Load())
			if err := r.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(3 * time.Second):
			t.Fatal("the other instance's waiter did not get the lease within 3s (TTL 10s, retry delay 30s)")
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	})
}
