package redis

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// During a rolling upgrade, instances running the read scripts before
// commit 9b337ad (testdata/rwv1: the acquire pruned expired readers, the
// release read the reader's score) share resources with instances running
// today's. The layout is the same: a reader is a member of the readers set
// scored by its expiry (server ms), an expired member counts as gone
// whoever prunes it, the set lasts at least as long as its live members,
// and both draw fences with take(). So each side's readers share with the
// other's, each side's release of its own reader says what it did, the
// set never outlives its readers unbounded nor lapses under a live one,
// and fences rise across both.
func TestReadScriptsMixWithPreviousVersion(t *testing.T) {
	srv := redistest.Start(t)
	b, raw := newTestBackend(t, srv.Options, &Options{Prefix: "up:"})
	ctx := context.Background()
	lib := mustLua("lock_lib") + "\n" + mustLua("lease_now") + "\n"
	old := func(name string) *goredis.Script {
		src, err := os.ReadFile("testdata/rwv1/" + name + ".lua")
		if err != nil {
			t.Fatal(err)
		}
		return goredis.NewScript(lib + string(src))
	}
	oldRLock, oldRelease := old("rw_rlock"), old("zlease_release")
	rw := b.RWLocker()
	keys, ch := b.keys.rwKeys("cfg")
	oldTake := func(token string, ttl time.Duration) int64 {
		t.Helper()
		f, err := oldRLock.Run(ctx, raw, keys, token, ttl.Milliseconds()).Int64()
		if err != nil || f <= 0 {
			t.Fatalf("previous version's read lease: %d, %v", f, err)
		}
		return f
	}
	oldRelease1 := func(token string) int64 {
		t.Helper()
		n, err := oldRelease.Run(ctx, raw, keys[2:4], token, ch, "old", "1").Int64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	expiry := func() time.Duration {
		t.Helper()
		d, err := raw.PTTL(ctx, keys[2]).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// An old reader first, a new one beside it, then an old one again:
	// all share, fences rise, the set lasts as long as the longest.
	f1 := oldTake("AAAAAAAAAAAAAAAAAAAAAA.old1", 10*time.Second)
	l2, err := rw.RLock(ctx, "cfg", coord.WithTTL(30*time.Second), coord.WithRetry(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	f3 := oldTake("AAAAAAAAAAAAAAAAAAAAAA.old3", time.Second)
	if !(f1 < l2.Fence() && l2.Fence() < f3) {
		t.Fatalf("fences %d, %d, %d across the two versions: not rising", f1, l2.Fence(), f3)
	}
	if st, err := rw.State(ctx, "cfg"); err != nil || st.Readers != 3 {
		t.Fatalf("State = %+v, %v; want 3 readers", st, err)
	}
	if d := expiry(); d < 29*time.Second {
		t.Fatalf("readers set expires in %v with a 30s reader in it", d)
	}
	// Each side releases its own.
	if n := oldRelease1("AAAAAAAAAAAAAAAAAAAAAA.old1"); n != 1 {
		t.Fatalf("previous version's release of its live reader = %d; want 1", n)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := oldRelease1("AAAAAAAAAAAAAAAAAAAAAA.old3"); n != 1 {
		t.Fatalf("previous version's release of its live reader = %d; want 1", n)
	}
	if n, err := raw.Exists(ctx, keys[2]).Result(); err != nil || n != 0 {
		t.Fatalf("readers set left after every reader left (%d, %v)", n, err)
	}

	// A new reader alone, an old one joining its set (the old script
	// reads the set's PTTL): the set keeps the new reader's span.
	l4, err := rw.RLock(ctx, "cfg", coord.WithTTL(20*time.Second), coord.WithRetry(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	f5 := oldTake("AAAAAAAAAAAAAAAAAAAAAA.old5", 50*time.Millisecond)
	if f5 <= l4.Fence() {
		t.Fatalf("fence %d after %d", f5, l4.Fence())
	}
	if d := expiry(); d < 19*time.Second {
		t.Fatalf("readers set expires in %v with a 20s reader in it", d)
	}
	// The old reader expires unreleased: the new release prunes it, and
	// the old one's late release says it had expired.
	coordtest.Eventually(t, 2*time.Second, func() bool {
		st, err := rw.State(ctx, "cfg")
		return err == nil && st.Readers == 1
	}, "State 2s after a 50ms reader; want 1 reader")
	if err := l4.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := oldRelease1("AAAAAAAAAAAAAAAAAAAAAA.old5"); n != 0 {
		t.Fatalf("previous version's release of its expired reader = %d; want 0", n)
	}
	if n, err := raw.Exists(ctx, keys[2]).Result(); err != nil || n != 0 {
		t.Fatalf("readers set left after every reader left or expired (%d, %v)", n, err)
	}

	// An old reader and a new one both run out unreleased: the new one's
	// late release says ErrExpired and takes both out of the set.
	oldTake("AAAAAAAAAAAAAAAAAAAAAA.old6", 20*time.Millisecond)
	l7, err := rw.RLock(ctx, "cfg", coord.WithTTL(40*time.Millisecond), coord.WithRetry(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 2*time.Second, func() bool {
		st, err := rw.State(ctx, "cfg")
		return err == nil && st.Readers == 0
	}, "State 2s after 20 and 40ms readers; want none")
	if err := l7.Release(ctx); !errors.Is(err, coord.ErrExpired) {
		t.Fatalf("Release of an expired read lease = %v; want ErrExpired", err)
	}
	if n, err := raw.Exists(ctx, keys[2]).Result(); err != nil || n != 0 {
		t.Fatalf("readers set left after its readers expired and one released (%d, %v)", n, err)
	}
}
