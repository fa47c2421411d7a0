package redis_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

// A waiting writer that crashed leaves its intent behind: new readers
// wait for it to lapse (writer preference), and no longer.
func TestCrashedWriterIntentLapses(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	ctx := context.Background()
	b := adminBackend(t, client, "cwi:")
	rw := b.RWLocker()

	// The intent of a writer of another instance that crashed while
	// waiting: scored by the server clock, as rw_lock.lua does, lapsing
	// in 300 ms.
	now, err := client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	const lapse = 300 * time.Millisecond
	if err := client.ZAdd(ctx, "cwi:rw:{cfg}:q", goredis.Z{Score: float64(now.Add(lapse).UnixMilli()), Member: "AAAAAAAAAAAAAAAAAAAAAA.crashed"}).Err(); err != nil {
		t.Fatal(err)
	}
	st, err := rw.State(ctx, "cfg")
	if err != nil || st.WritersWaiting != 1 || st.Readers != 0 || st.Writer {
		t.Fatalf("State = %+v, %v; want one writer waiting", st, err)
	}
	if _, err := rw.RLock(ctx, "cfg", coord.WithRetry(0, 0)); err == nil {
		t.Fatal("a reader got in while a writer's intent was live")
	}
	start := time.Now()
	l, err := rw.RLock(ctx, "cfg", coord.WithWait(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release(ctx) }()
	waited := time.Since(start)
	// Not before the intent lapsed (less a margin for the clocks' reads),
	// and within a bound that tells a wait on the hint from a broken one.
	if waited < lapse-100*time.Millisecond || waited > lapse+2*time.Second {
		t.Fatalf("the reader waited %v for an intent lapsing in %v", waited, lapse)
	}
	if st, err := rw.State(ctx, "cfg"); err != nil || st.WritersWaiting != 0 || st.Readers != 1 {
		t.Fatalf("State after the lapse = %+v, %v", st, err)
	}
}

// Every lease value records the holder's instance ID after a secret part
// of at least 128 bits; the admin reads show the ID, never the secret.
func TestLeaseValuesRecordHolder(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	ctx := context.Background()
	b := adminBackend(t, client, "lvh:")
	var locks []coord.Lock
	take := func(l coord.Lock, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		locks = append(locks, l)
	}
	take(b.Locker().Acquire(ctx, "r", coord.WithTTL(time.Minute)))
	take(b.RWLocker().RLock(ctx, "r", coord.WithTTL(time.Minute)))
	take(b.Semaphores().Acquire(ctx, "r", 2, coord.WithTTL(time.Minute)))
	take(b.Elector().Campaign(ctx, "r", "me", coord.WithTTL(time.Minute)))
	for _, l := range locks {
		sec, rest, ok := strings.Cut(l.Token(), ".")
		if !ok || len(sec) < 22 || !strings.HasPrefix(rest, b.InstanceID()) {
			t.Errorf("a lease value does not have the shape <secret>.<instance ID>: %d bytes", len(l.Token()))
		}
	}
	ri, err := b.RW(ctx, "r")
	if err != nil || len(ri.Readers) != 1 || ri.Readers[0].InstanceID != b.InstanceID() {
		t.Fatalf("RW = %+v, %v", ri, err)
	}
	si, err := b.Semaphore(ctx, "r")
	if err != nil || len(si.Holders) != 1 || si.Holders[0].InstanceID != b.InstanceID() || si.Fence != locks[2].Fence() {
		t.Fatalf("Semaphore = %+v, %v", si, err)
	}
	li, err := b.Elector().Leader(ctx, "r")
	if err != nil || li.InstanceID != b.InstanceID() || li.Identity != "me" || li.Term != locks[3].Fence() {
		t.Fatalf("Leader = %+v, %v", li, err)
	}
	for _, l := range locks {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// scriptCounter counts the scripts a client runs, alone or in pipelines.
type scriptCounter struct{ n atomic.Int64 }

func (c *scriptCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *scriptCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *scriptCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

func (c *scriptCounter) count(cmd goredis.Cmder) {
	if n := cmd.Name(); n == "evalsha" || n == "eval" {
		c.n.Add(1)
	}
}

// Permits released while waiters queue on the same instance go straight
// to them: about one script per acquire-and-release pair, not a release,
// a give-back and tries in vain.
func TestPermitHandoffScripts(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	var sc scriptCounter
	client.AddHook(&sc)
	ctx := context.Background()
	b := adminBackend(t, client, "phs:")
	sem := b.Semaphores()
	const workers, pairs = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range pairs {
				l, err := sem.Acquire(ctx, "pool", 2, coord.WithTTL(time.Minute), coord.WithWait(100*time.Millisecond))
				if err == nil {
					err = l.Release(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	perPair := float64(sc.n.Load()) / (workers * pairs)
	t.Logf("%.2f scripts per pair", perPair)
	// A handed-over pair costs one script; tries that find no permit and
	// releases without a waiter add some. Above 1.6 the handoff is not
	// working (about 2 when most handed permits were given back).
	if perPair > 1.6 {
		t.Fatalf("%.2f scripts per acquire-and-release pair, want at most 1.6", perPair)
	}
}
