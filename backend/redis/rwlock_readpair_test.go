package redis_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// readPairCost runs n read pairs (try once, release) with pair and
// returns the commands the scripts ran per pair (EVALSHA itself not
// counted) and the TIME calls among them.
func readPairCost(t *testing.T, raw *goredis.Client, n int, pair func()) (cmds, times float64) {
	t.Helper()
	ctx := context.Background()
	pair() // load the scripts
	before := readServerCost(ctx, t, raw)
	for range n {
		pair()
	}
	after := readServerCost(ctx, t, raw)
	var total int64
	for cmd, c := range after.calls {
		if cmd == "evalsha" || cmd == "eval" {
			continue
		}
		total += c - before.calls[cmd]
	}
	return float64(total) / float64(n), float64(after.calls["time"]-before.calls["time"]) / float64(n)
}

// The uncontended read pair reads the server clock once per script (the
// acquire's TIME serves the reader's expiry and the fence) and runs at
// most 9 commands, 10 beside another reader (INFO commandstats of a real
// server). Before, it ran 11 with three TIMEs.
func TestReadPairCommands(t *testing.T) {
	srv := redistest.Start(t)
	raw := srv.Client(t)
	ctx := context.Background()
	rw := adminBackend(t, raw, "rpc:").RWLocker()
	pair := func(resource string) func() {
		return func() {
			l, err := rw.RLock(ctx, resource, coord.WithTTL(10*time.Second), coord.WithRetry(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	const n = 20
	cmds, times := readPairCost(t, raw, n, pair("alone"))
	t.Logf("read pair alone: %.1f commands, %.1f TIME", cmds, times)
	if cmds > 9 || times > 2 {
		t.Errorf("read pair alone: %.1f commands (want ≤ 9), %.1f TIME (want ≤ 2)", cmds, times)
	}
	other, err := rw.RLock(ctx, "shared", coord.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cmds, times = readPairCost(t, raw, n, pair("shared"))
	t.Logf("read pair beside a reader: %.1f commands, %.1f TIME", cmds, times)
	if cmds > 10 || times > 2 {
		t.Errorf("read pair beside a reader: %.1f commands (want ≤ 10), %.1f TIME (want ≤ 2)", cmds, times)
	}
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// serverMillis returns the server clock in milliseconds.
func serverMillis(t *testing.T, raw *goredis.Client) int64 {
	t.Helper()
	now, err := raw.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now.UnixMilli()
}

// waitServerPast polls the server clock until it is past ms (within 2 s).
func waitServerPast(t *testing.T, raw *goredis.Client, ms int64) {
	t.Helper()
	coordtest.Eventually(t, 2*time.Second, func() bool { return serverMillis(t, raw) > ms }, "the server clock passes %d", ms)
}

// Readers that never release (crashed, or left to expire) are pruned by
// the next reader, so the set does not grow with them while readers keep
// coming and nobody releases.
func TestExpiredReadersPrunedByNextReader(t *testing.T) {
	srv := redistest.Start(t)
	raw := srv.Client(t)
	ctx := context.Background()
	rw := adminBackend(t, raw, "erp:").RWLocker()
	const key = "erp:rw:{cfg}:r"
	exp := serverMillis(t, raw) + 50
	for i := range 20 {
		// Readers of another instance that crashed, scored as rw_rlock.lua
		// scores them; the set lasts 10 s, as a long reader's would.
		if err := raw.ZAdd(ctx, key, goredis.Z{Score: float64(exp), Member: fmt.Sprintf("AAAAAAAAAAAAAAAAAAAA%02d.crashed", i)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.PExpire(ctx, key, 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	waitServerPast(t, raw, exp)
	l, err := rw.RLock(ctx, "cfg", coord.WithTTL(time.Second), coord.WithRetry(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := raw.ZCard(ctx, key).Result(); err != nil || n != 1 {
		t.Errorf("readers set holds %d members after a read lease joined 20 expired ones (%v); want 1", n, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A reader that joins a set whose readers have all expired (the set
// itself still there) gets a set that expires: pruning them deleted the
// set, and the ZADD that follows makes a new one, without expiry unless
// the script sets it.
func TestReadersSetKeepsExpiryAfterPrune(t *testing.T) {
	srv := redistest.Start(t)
	raw := srv.Client(t)
	ctx := context.Background()
	rw := adminBackend(t, raw, "rse:").RWLocker()
	const key = "rse:rw:{cfg}:r"
	exp := serverMillis(t, raw) + 50
	if err := raw.ZAdd(ctx, key, goredis.Z{Score: float64(exp), Member: "AAAAAAAAAAAAAAAAAAAAAA.crashed"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.PExpire(ctx, key, 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	waitServerPast(t, raw, exp)
	l, err := rw.RLock(ctx, "cfg", coord.WithTTL(time.Second), coord.WithRetry(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release(ctx) }()
	pttl, err := raw.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	// At least what is left of the reader's TTL (a loaded machine's
	// delays taken off); -1 (no expiry) would leave the set for ever.
	if pttl < 500*time.Millisecond {
		t.Fatalf("readers set PTTL %v after a 1s reader joined a set of expired readers; want ≥ 0.5s", pttl)
	}
}

// The release of an expired read lease still in the set says ErrExpired
// and takes only that reader out; the others' holds stay.
func TestExpiredReaderReleaseLeavesOthers(t *testing.T) {
	srv := redistest.Start(t)
	raw := srv.Client(t)
	ctx := context.Background()
	rw := adminBackend(t, raw, "err:").RWLocker()
	short, err := rw.RLock(ctx, "cfg", coord.WithTTL(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	long, err := rw.RLock(ctx, "cfg", coord.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 2*time.Second, func() bool {
		st, err := rw.State(ctx, "cfg")
		return err == nil && st.Readers == 1
	}, "State 2s after a 50ms reader; want 1 reader")
	if err := short.Release(ctx); !errors.Is(err, coord.ErrExpired) {
		t.Fatalf("Release of the expired reader = %v; want ErrExpired", err)
	}
	if n, err := raw.ZCard(ctx, "err:rw:{cfg}:r").Result(); err != nil || n != 1 {
		t.Fatalf("readers set holds %d members (%v); want the live one", n, err)
	}
	if _, err := rw.Lock(ctx, "cfg", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("a writer's try beside a live reader = %v; want ErrNotAcquired", err)
	}
	if err := long.Release(ctx); err != nil {
		t.Fatalf("Release of the live reader = %v", err)
	}
	if n, err := raw.Exists(ctx, "err:rw:{cfg}:r").Result(); err != nil || n != 0 {
		t.Fatalf("readers set still there after the last reader left (%d, %v)", n, err)
	}
}
