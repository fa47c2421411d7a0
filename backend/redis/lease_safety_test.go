package redis_test

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
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

// acquireFence takes and releases the lease on resource, retrying while
// the server is coming back, and returns the lease's fence.
func acquireFence(t *testing.T, b *coordredis.Backend, resource string) int64 {
	t.Helper()
	ctx := t.Context()
	var l coord.Lock
	eventually(t, 10*time.Second, func() bool {
		var err error
		l, err = b.Locker().Acquire(ctx, resource, coord.WithRetry(0, 0))
		return err == nil
	}, "an acquire on the server")
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	return l.Fence()
}

// TestFenceAfterSnapshotRestore: a server killed and restarted from a
// snapshot taken three fences ago (its counter went back) still hands out
// a fence above every fence before.
func TestFenceAfterSnapshotRestore(t *testing.T) {
	srv := redistest.Start(t)
	c := goredis.NewClient(srv.Options())
	defer c.Close()
	b, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	var fences []int64
	for i := range 8 {
		fences = append(fences, acquireFence(t, b, "snap"))
		if i > 0 && fences[i] <= fences[i-1] {
			t.Fatalf("fence %d = %d, not above %d", i+1, fences[i], fences[i-1])
		}
		if i == 2 {
			srv.Do(t, "SAVE")
		}
	}
	srv.Kill(t)
	srv.Restart(t)
	if n, _ := srv.Do(t, "DBSIZE").(int64); n == 0 {
		t.Fatal("the server came back without its snapshot")
	}
	if f := acquireFence(t, b, "snap"); f <= fences[7] {
		t.Fatalf("fence after the restore = %d, not above the last one before it, %d (fences %v)", f, fences[7], fences)
	}
}

// TestFenceCounterRules: the fence is the greater of the counter + 1 and
// the server clock in microseconds; a counter ahead of the clock (the
// clock stepped back) is still exceeded; a counter that is no number
// counts as missing; the counter key expires.
func TestFenceCounterRules(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "fr:"})
		raw := rawClient(t, s)
		const fenceKey = "fr:lock:{r}:fence"
		f1 := acquireFence(t, b, "r")
		now := time.Now().UnixMicro()
		if f1 < now-int64(time.Hour/time.Microsecond) || f1 > now+int64(time.Hour/time.Microsecond) {
			t.Errorf("first fence %d is not the server clock in microseconds (about %d)", f1, now)
		}
		if ttl, err := raw.PTTL(ctx, fenceKey).Result(); err != nil || ttl <= 0 {
			t.Errorf("fence counter PTTL = %v, %v; want an expiry", ttl, err)
		}
		ahead := now + int64(time.Hour/time.Microsecond)
		if err := raw.Set(ctx, fenceKey, strconv.FormatInt(ahead, 10), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if f := acquireFence(t, b, "r"); f != ahead+1 {
			t.Errorf("fence with the counter an hour ahead of the clock = %d, want %d", f, ahead+1)
		}
		if ttl, err := raw.PTTL(ctx, fenceKey).Result(); err != nil || ttl < 50*time.Minute {
			t.Errorf("fence counter an hour ahead: PTTL = %v, %v; want it kept until the clock passes it", ttl, err)
		}
		if err := raw.Set(ctx, fenceKey, "not a number", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if f := acquireFence(t, b, "r"); f <= f1 || f >= ahead {
			t.Errorf("fence after a foreign counter = %d, want the clock (above %d, below %d)", f, f1, ahead)
		}
	})
}

// fillMemory writes filler data and sets maxmemory below the memory in
// use with the noeviction policy, so that the server refuses writes that
// may grow memory; the returned func lifts the limit again.
func fillMemory(t *testing.T, srv *redistest.Server) (lift func()) {
	t.Helper()
	ctx := t.Context()
	c := srv.Client(t)
	if err := c.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	filler := strings.Repeat("x", 64<<10)
	for i := range 32 {
		if err := c.Set(ctx, fmt.Sprintf("filler:%d", i), filler, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.InfoMap(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	used, err := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
	if err != nil {
		t.Fatalf("used_memory: %v", err)
	}
	if err := c.ConfigSet(ctx, "maxmemory", strconv.FormatInt(used-(1<<20), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "probe", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "OOM") {
		t.Fatalf("a write with memory full = %v, want an OOM refusal", err)
	}
	return func() {
		if err := c.ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
			t.Error(err)
		}
	}
}

// TestReleaseWhenMemoryFull: with maxmemory reached under noeviction, a
// release with another instance's waiter, a release to a waiter of the
// same instance and a force release all work (they free memory), while
// an acquire is refused; Health is degraded, with the reason, until
// writes succeed again, and the waiter then gets the lease.
func TestReleaseWhenMemoryFull(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	newBackend := func() *coordredis.Backend {
		c := goredis.NewClient(srv.Options())
		t.Cleanup(func() { _ = c.Close() })
		b, err := coordredis.New(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close(context.Background()) })
		return b
	}
	a, b := newBackend(), newBackend()
	if h := a.Health(ctx); h.Status != coord.Healthy {
		t.Fatalf("Health before = %v (%s), want healthy", h.Status, h.Error)
	}
	held, err := a.Locker().Acquire(ctx, "remote", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	local, err := a.Locker().Acquire(ctx, "local", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	forced, err := a.Locker().Acquire(ctx, "forced", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	remoteWaiter := make(chan error, 1)
	go func() {
		l, err := b.Locker().Acquire(ctx, "remote", coord.WithTTL(time.Minute), coord.WithWait(20*time.Millisecond))
		if err == nil {
			err = l.Release(context.Background())
		}
		remoteWaiter <- err
	}()
	localWaiter := make(chan error, 1)
	go func() {
		l, err := a.Locker().Acquire(ctx, "local", coord.WithTTL(time.Minute), coord.WithWait(20*time.Millisecond))
		if err == nil {
			err = l.Release(context.Background())
		}
		localWaiter <- err
	}()
	// Both waiters listen on their wake channels.
	raw := srv.Client(t)
	eventually(t, 5*time.Second, func() bool {
		n, err := raw.PubSubNumSub(ctx, "cgn:lock:{remote}:wake", "cgn:lock:{local}:wake").Result()
		return err == nil && n["cgn:lock:{remote}:wake"] == 1 && n["cgn:lock:{local}:wake"] == 1
	}, "the waiters subscribed")

	lift := fillMemory(t, srv)
	lifted := false
	defer func() {
		if !lifted {
			lift()
		}
	}()
	h := a.Health(ctx)
	if h.Status != coord.Degraded || !strings.Contains(h.Error, "OOM") {
		t.Errorf("Health with memory full = %v (%q), want degraded with the OOM reason", h.Status, h.Error)
	}
	if _, err := a.Locker().Acquire(ctx, "new", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Acquire with memory full = %v, want ErrUnavailable", err)
	}
	if err := held.Release(ctx); err != nil {
		t.Errorf("Release with another instance's waiter, memory full: %v", err)
	}
	if err := local.Release(ctx); err != nil {
		t.Errorf("Release with a waiter of the same instance, memory full: %v", err)
	}
	if ok, err := a.Locker().ForceRelease(ctx, "forced"); err != nil || !ok {
		t.Errorf("ForceRelease with memory full = %v, %v; want true, nil", ok, err)
	}
	if ok, err := a.Locker().Locked(ctx, "forced"); err != nil || ok {
		t.Errorf("Locked after ForceRelease = %v, %v; want false", ok, err)
	}
	_ = forced
	if ok, err := a.Locker().Locked(ctx, "remote"); err != nil || ok {
		t.Errorf("Locked after Release = %v, %v; want false (the lease released)", ok, err)
	}
	// A waiter woken meanwhile may have had its acquire refused.
	for _, ch := range []chan error{remoteWaiter, localWaiter} {
		select {
		case err := <-ch:
			if err != nil && !errors.Is(err, coord.ErrUnavailable) {
				t.Errorf("waiter: %v, want the lease or ErrUnavailable", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter neither got the released lease nor failed within 10s")
		}
	}
	lift()
	lifted = true
	for _, res := range []string{"remote", "local", "forced"} {
		l, err := b.Locker().Acquire(ctx, res, coord.WithWait(20*time.Millisecond))
		if err != nil {
			t.Fatalf("Acquire of %q once memory was freed: %v", res, err)
		}
		_ = l.Release(ctx)
	}
	if h := a.Health(ctx); h.Status != coord.Healthy {
		t.Errorf("Health after memory was freed = %v (%s), want healthy", h.Status, h.Error)
	}
}

// stallingBackend returns a Backend on srv whose commands time out after
// 200ms without retries, so a paused server fails them.
func stallingBackend(t *testing.T, srv *redistest.Server) *coordredis.Backend {
	t.Helper()
	o := srv.Options()
	o.ReadTimeout = 200 * time.Millisecond
	o.MaxRetries = -1
	c := goredis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	b, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// heldToken reports whether b's Held lists a lease with token.
func heldToken(b *coordredis.Backend, token string) bool {
	for _, l := range b.Locker().Held() {
		if l.Token() == token {
			return true
		}
	}
	return false
}

// TestFailedReleaseGivesUp: a Release that cannot reach Redis (the server
// paused past the read timeout, or ctx already ended) returns with the
// lease no longer renewed (Done closed, not in Held), WithLock included,
// and the release is retried in the background: another instance gets
// the resource well before the 20s TTL.
func TestFailedReleaseGivesUp(t *testing.T) {
	const ttl = 20 * time.Second
	t.Run("paused", func(t *testing.T) {
		srv := redistest.Start(t)
		b := stallingBackend(t, srv)
		other := stallingBackend(t, srv)
		ctx := t.Context()
		var l coord.Lock
		paused := false
		err := coord.WithLock(ctx, b.Locker(), "stall", func(context.Context) error {
			l = b.Locker().Held()[0]
			srv.Pause(t)
			paused = true
			return nil
		}, coord.WithTTL(ttl))
		if paused {
			defer srv.Resume(t)
		}
		if !errors.Is(err, coord.ErrUnavailable) {
			t.Errorf("WithLock with the server paused during the release = %v, want ErrUnavailable", err)
		}
		if heldToken(b, l.Token()) {
			t.Error("Held lists the lease after WithLock returned")
		}
		if !isClosedNow(l.Done()) {
			t.Error("Done not closed after WithLock returned")
		}
		srv.Resume(t)
		paused = false
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		next, err := other.Locker().Acquire(wctx, "stall", coord.WithWait(50*time.Millisecond))
		if err != nil {
			t.Fatalf("another instance did not get the resource within 5s of the server resuming (TTL %v): %v", ttl, err)
		}
		t.Logf("another instance held the lease %v after the server resumed", time.Since(start))
		_ = next.Release(ctx)
	})
	t.Run("ended ctx", func(t *testing.T) {
		srv := redistest.Start(t)
		b := stallingBackend(t, srv)
		other := stallingBackend(t, srv)
		ctx := t.Context()
		l, err := b.Locker().Acquire(ctx, "ended", coord.WithTTL(ttl), coord.WithAutoRenew())
		if err != nil {
			t.Fatal(err)
		}
		ended, cancel := context.WithCancel(ctx)
		cancel()
		if err := l.Release(ended); err == nil {
			t.Log("Release with an ended ctx succeeded")
		}
		if heldToken(b, l.Token()) || !isClosedNow(l.Done()) {
			t.Error("the lease is still held after Release returned")
		}
		// Only the background release can free it: this one never left.
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		defer wcancel()
		next, err := other.Locker().Acquire(wctx, "ended", coord.WithWait(50*time.Millisecond))
		if err != nil {
			t.Fatalf("another instance did not get the resource within 5s (TTL %v): %v", ttl, err)
		}
		_ = next.Release(ctx)
		if err := l.Release(ctx); err != nil {
			t.Errorf("a second Release of a lease given up = %v, want nil", err)
		}
	})
}

func isClosedNow(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
