package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

// installPermitWaiter puts a permit waiter on ch of b's lease waits, as a
// waiting Acquire would be (without a subscription: nothing is published
// to it here), and removes it at the end of the test.
func installPermitWaiter(t *testing.T, b *Backend, ch string) *leaseWaiter {
	t.Helper()
	lw := b.locker.leases
	w := &leaseWaiter{role: rolePermit, wake: make(chan struct{}, 1), ttl: 10 * time.Second, grant: make(chan leaseGrant, 1)}
	lw.mu.Lock()
	lw.chans[ch] = &waitChan{waiters: []*leaseWaiter{w}, observers: map[*observer]struct{}{}}
	lw.mu.Unlock()
	t.Cleanup(func() {
		lw.mu.Lock()
		delete(lw.chans, ch)
		lw.mu.Unlock()
	})
	return w
}

// permitOf returns a Lock of b for the permit token holds on resource.
func permitOf(b *Backend, resource, token string) *lock {
	s := b.locker.sem
	keys, ch := b.keys.semKeys(resource)
	return &lock{
		lk: b.locker, kind: s.permit, relArgs: []any{ch, s.free, "0"}, resource: resource, key: keys[0],
		token: token, keys: keys[0:1], tokenArg: token, ttl: 10 * time.Second, done: make(chan struct{}),
	}
}

// TestPermitHandoffOffWithLockReplicas: the local handoff of a permit
// grants it inside Release, with no WAIT after it, so with LockReplicas
// set a Release does not hand its permit to a local waiter: it frees the
// permit and wakes the waiter, whose own try WAITs. Without LockReplicas
// the same Release hands the permit over (the check that the setup
// reaches the handoff at all).
func TestPermitHandoffOffWithLockReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	for _, replicas := range []int{0, 1} {
		// The permit is taken by a Backend without LockReplicas (there is
		// no replica here to acknowledge it), and released by b.
		plain, _ := newTestBackend(t, srv.Options, &Options{})
		b, _ := newTestBackend(t, srv.Options, &Options{LockReplicas: replicas, LockReplicaTimeout: 20 * time.Millisecond})
		res := "handoff-replicas-" + string(rune('0'+replicas))
		p, err := plain.Semaphores().Acquire(ctx, res, 1, coord.WithTTL(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		_, ch := b.keys.semKeys(res)
		w := installPermitWaiter(t, b, ch)
		if err := permitOf(b, res, p.Token()).Release(ctx); err != nil {
			t.Fatalf("LockReplicas %d: Release = %v", replicas, err)
		}
		var g leaseGrant
		select {
		case g = <-w.grant:
		default:
		}
		holders, err := b.Semaphores().Holders(ctx, res)
		if err != nil {
			t.Fatal(err)
		}
		if replicas == 0 {
			if !g.ok || holders != 1 {
				t.Fatalf("LockReplicas 0: the Release handed nothing to the local waiter (grant %+v, %d holders): the test does not reach the handoff", g, holders)
			}
			continue
		}
		if g.ok || holders != 0 {
			t.Errorf("LockReplicas 1: the Release handed its permit to the local waiter (grant ok %v, %d holders), with no WAIT covering it", g.ok, holders)
		}
		if !woken(w) {
			t.Error("LockReplicas 1: the Release did not wake the local waiter to take the freed permit itself")
		}
	}
}

// TestLockReplicasEveryShape: with LockReplicas and no replica, every
// kind of lease (read, write, permit, leadership) is refused with an
// error wrapping ErrUnavailable that names the resource and the counts,
// and nothing stays held; a waiting call fails at that first refusal, as
// the exclusive Acquire does, rather than retrying into it until its
// wait ends. A job's Complete says its record is not on a replica.
func TestLockReplicasEveryShape(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	const timeout = 20 * time.Millisecond
	b, _ := newTestBackend(t, srv.Options, &Options{LockReplicas: 1, LockReplicaTimeout: timeout})
	refused := func(t *testing.T, what, res string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrUnavailable) {
			t.Fatalf("%s without a replica = %v, want ErrUnavailable", what, err)
		}
		if msg := err.Error(); !strings.Contains(msg, res) || !strings.Contains(msg, "0 of 1 replicas") {
			t.Errorf("%s: error %q does not name the resource and the counts", what, msg)
		}
	}
	for _, wait := range []bool{false, true} {
		opts := []coord.LockOption{coord.WithTTL(10 * time.Second), coord.WithRetry(0, 0)}
		sfx := ""
		if wait {
			// A wait far longer than the test: only the refusal ends it.
			opts = []coord.LockOption{coord.WithTTL(10 * time.Second), coord.WithWait(time.Second)}
			sfx = "-wait"
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t.Run("exclusive"+sfx, func(t *testing.T) {
			l, err := b.Locker().Acquire(wctx, "lk"+sfx, opts...)
			refused(t, "Acquire", "lk"+sfx, err)
			if l != nil {
				// A nil *lock in a non-nil Lock: a caller that checks the
				// Lock rather than the error would use it.
				t.Errorf("Acquire returned a non-nil Lock (%T) with its error", l)
			}
			if locked, err := b.Locker().Locked(ctx, "lk"+sfx); err != nil || locked {
				t.Errorf("after the refused Acquire: Locked = %v, %v; want nothing held", locked, err)
			}
		})
		t.Run("read"+sfx, func(t *testing.T) {
			l, err := b.RWLocker().RLock(wctx, "rw"+sfx, opts...)
			refused(t, "RLock", "rw"+sfx, err)
			if l != nil {
				t.Error("RLock returned a lease with its error")
			}
			if st, err := b.RWLocker().State(ctx, "rw"+sfx); err != nil || st.Readers != 0 || st.Writer {
				t.Errorf("after the refused RLock: State = %+v, %v; want nothing held", st, err)
			}
		})
		t.Run("write"+sfx, func(t *testing.T) {
			_, err := b.RWLocker().Lock(wctx, "rw"+sfx, opts...)
			refused(t, "Lock", "rw"+sfx, err)
			if st, err := b.RWLocker().State(ctx, "rw"+sfx); err != nil || st.Readers != 0 || st.Writer || st.WritersWaiting != 0 {
				t.Errorf("after the refused Lock: State = %+v, %v; want nothing held nor waiting", st, err)
			}
			// Readers are not held back by a writer intent left behind.
			if _, err := b.RWLocker().RLock(wctx, "rw"+sfx, coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrUnavailable) {
				t.Errorf("an RLock after the refused Lock = %v, want the replica refusal, not a writer's intent", err)
			}
		})
		t.Run("permit"+sfx, func(t *testing.T) {
			_, err := b.Semaphores().Acquire(wctx, "sem"+sfx, 2, opts...)
			refused(t, "Semaphores.Acquire", "sem"+sfx, err)
			if n, err := b.Semaphores().Holders(ctx, "sem"+sfx); err != nil || n != 0 {
				t.Errorf("after the refused Acquire: Holders = %d, %v; want 0", n, err)
			}
		})
		t.Run("leader"+sfx, func(t *testing.T) {
			_, err := b.Elector().Campaign(wctx, "el"+sfx, "me", opts...)
			refused(t, "Campaign", "el"+sfx, err)
			if li, err := b.Elector().Leader(ctx, "el"+sfx); !errors.Is(err, coord.ErrNotFound) {
				t.Errorf("after the refused Campaign: Leader = %+v, %v; want ErrNotFound", li, err)
			}
		})
		cancel()
	}
	t.Run("job", func(t *testing.T) {
		slot, err := b.Jobs().Due(ctx, "nightly", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		err = b.Jobs().Complete(ctx, "nightly", slot)
		refused(t, "Jobs.Complete", "nightly", err)
		if s, err := b.Jobs().Due(ctx, "nightly", time.Hour); err != nil || !s.Done {
			t.Errorf("after Complete: Due = %+v, %v; want the period recorded done on the master", s, err)
		}
		if err := b.Jobs().Fail(ctx, "nightly", slot); err != nil {
			t.Errorf("Fail = %v; a failure is recorded without WAIT", err)
		}
	})
}

// TestLockReplicasClusterShapes: in a Cluster (masters without replicas
// here), each shape's acquire and its WAIT go to the master of the
// lease's slot: every resource, whichever master serves it, is refused
// for the missing replica ("0 of 1"), not redirected (MOVED) nor
// granted, and nothing stays held.
func TestLockReplicasClusterShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster takes seconds to form; skipped with -short")
	}
	c := redistest.StartCluster(t, 3)
	cc := c.ClusterClient(t)
	ctx := t.Context()
	b, err := New(cc, &Options{Prefix: "lrc:", LockReplicas: 1, LockReplicaTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	masters := map[string]bool{}
	for i := range 9 { // spread over the three masters' slots
		res := "r" + string(rune('a'+i))
		keys, _ := b.keys.semKeys(res)
		m, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr] = true
		opts := []coord.LockOption{coord.WithTTL(10 * time.Second), coord.WithRetry(0, 0)}
		calls := map[string]func() (coord.Lock, error){
			"Acquire":            func() (coord.Lock, error) { return b.Locker().Acquire(ctx, res, opts...) },
			"RLock":              func() (coord.Lock, error) { return b.RWLocker().RLock(ctx, res, opts...) },
			"Lock":               func() (coord.Lock, error) { return b.RWLocker().Lock(ctx, res, opts...) },
			"Semaphores.Acquire": func() (coord.Lock, error) { return b.Semaphores().Acquire(ctx, res, 3, opts...) },
			"Campaign":           func() (coord.Lock, error) { return b.Elector().Campaign(ctx, res, "me", opts...) },
		}
		for what, call := range calls {
			l, err := call()
			if l != nil {
				_ = l.Release(ctx)
			}
			if !errors.Is(err, coord.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
				t.Errorf("%s on %q with LockReplicas 1 and no replica in the Cluster = lease %v, %v; want the replica refusal", what, res, l != nil, err)
			}
		}
		st, err := b.RWLocker().State(ctx, res)
		n, err2 := b.Semaphores().Holders(ctx, res)
		locked, err3 := b.Locker().Locked(ctx, res)
		if err := errors.Join(err, err2, err3); err != nil {
			t.Fatal(err)
		}
		if st.Readers != 0 || st.Writer || n != 0 || locked {
			t.Errorf("%q after the refusals: read-write %+v, %d permits, locked %v; want nothing held", res, st, n, locked)
		}
		if _, err := b.Elector().Leader(ctx, res); !errors.Is(err, coord.ErrNotFound) {
			t.Errorf("%q after the refused Campaign: Leader error %v, want ErrNotFound", res, err)
		}
	}
	if len(masters) < 2 {
		t.Fatalf("the resources fell on %d master(s); the test needs them spread", len(masters))
	}
}
