package reliability

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
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// failoverBound: after SENTINEL FAILOVER has completed (the new master
// takes writes), every kind of operation succeeds again within it.
const failoverBound = 5 * time.Second

// sentinelNode makes a Backend on a new failover client of g.
func sentinelNode(tb testing.TB, g *redistest.Sentinel, prefix string, fault bool) *node {
	tb.Helper()
	return sentinelNodeWith(tb, g, prefix, fault, nil)
}

// sentinelNodeWith is sentinelNode with set applied to the Backend's
// options.
func sentinelNodeWith(tb testing.TB, g *redistest.Sentinel, prefix string, fault bool, set func(*coordredis.Options)) *node {
	tb.Helper()
	name := uniq("rels-")
	o := g.FailoverOptions()
	o.ClientName = name
	opts := &coordredis.Options{Prefix: prefix, HealthInterval: time.Second}
	if fault {
		o.DialTimeout = 500 * time.Millisecond
		o.ReadTimeout = 500 * time.Millisecond
		o.WriteTimeout = 500 * time.Millisecond
		o.MaxRetries = 1
		opts.HealthInterval = 200 * time.Millisecond
	}
	if set != nil {
		set(opts)
	}
	return newNode(tb, goredis.NewFailoverClient(o), name, opts)
}

// TestSentinel starts one Sentinel group (a master, a replica, three
// sentinels), forces a failover under load and checks LockReplicas. The
// conformance suite through failover clients of a Sentinel group (every
// group of cases, with subscriber cuts and foreign publishes) is
// backend/redis's TestConformanceSentinel.
func TestSentinel(t *testing.T) {
	start := time.Now()
	g := redistest.StartSentinel(t)
	t.Logf("sentinel group up in %v", time.Since(start).Round(time.Millisecond))

	t.Run("FailoverUnderLoad", func(t *testing.T) { testFailoverUnderLoad(t, g) })
	t.Run("LockReplicas", func(t *testing.T) { testLockReplicas(t, g) })
}

// testLockReplicas checks Options.LockReplicas on a healthy group: when
// Acquire returns, the replica already has the lease (its token) and the
// fence, so a failover right then would not lose them.
func testLockReplicas(t *testing.T, g *redistest.Sentinel) {
	prefix := uniq("lr") + ":"
	n := sentinelNodeWith(t, g, prefix, false, func(o *coordredis.Options) {
		o.LockReplicas = 1
		o.LockReplicaTimeout = 2 * time.Second
	})
	ctx := t.Context()
	master := g.Master(t)
	var replica *redistest.Server
	for _, s := range g.DataNodes() {
		if s != master {
			replica = s
		}
	}
	start := time.Now()
	const rounds = 20
	for i := range rounds {
		res := fmt.Sprintf("lr:%d", i)
		l, err := n.Locker().Acquire(ctx, res, coord.WithTTL(10*time.Second))
		if err != nil {
			t.Fatalf("Acquire with LockReplicas 1 on a healthy group: %v", err)
		}
		key := n.prefixed("lock:{" + res + "}")
		if v, err := replica.DoContext(ctx, "GET", key); err != nil || v != l.Token() {
			t.Errorf("right after Acquire the replica has %v (%v) under %s, want the lease's token", v, err, key)
		}
		v, err := replica.DoContext(ctx, "GET", key+":fence")
		if f, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64); err != nil || f < l.Fence() {
			t.Errorf("right after Acquire the replica's fence is %v (%v), want at least %d", v, err, l.Fence())
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("LockReplicas 1: %d leases, each on the replica when Acquire returned; %v per acquire and release",
		rounds, (time.Since(start) / rounds).Round(time.Microsecond))
}

// TestSentinelMasterKilled and TestSentinelAsyncReplicationLoss kill a
// master, each in a Sentinel group of its own: the group is left as the
// fault made it.
func TestSentinelMasterKilled(t *testing.T) { testMasterKilled(t, redistest.StartSentinel(t)) }

func TestSentinelAsyncReplicationLoss(t *testing.T) {
	testAsyncReplicationLoss(t, redistest.StartSentinel(t))
}

// testAsyncReplicationLoss shows what asynchronous replication loses
// without a WAIT after acquiring: a lease taken on the master while its
// replica lags (here: its replication link was just cut) is gone once the master dies
// and the replica is promoted; the fence counter rolls back, but the next
// holder's fence is still above the lost lease's (a fence is never below
// the server clock in microseconds). With Options.LockReplicas the same
// Acquire is refused instead.
func testAsyncReplicationLoss(t *testing.T, g *redistest.Sentinel) {
	prefix := uniq("rl") + ":"
	a := sentinelNode(t, g, prefix, true)
	b := sentinelNode(t, g, prefix, true)
	ctx := t.Context()
	master := g.Master(t)
	var replica *redistest.Server
	for _, s := range g.DataNodes() {
		if s != master {
			replica = s
		}
	}
	// A first lease, replicated: the fence counter exists on both nodes.
	first, err := a.Locker().Acquire(ctx, "rl:res", coord.WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	fenceKey := a.prefixed("lock:{rl:res}:fence")
	coordtest.Eventually(t, 5*time.Second, func() bool {
		v, err := replica.DoContext(ctx, "GET", fenceKey)
		return err == nil && v != nil
	}, "the fence counter replicated")

	// Cut the replication link and keep it cut: the master refuses the
	// replica's PSYNC from now on, so what it writes now reaches no
	// replica before it dies.
	master.Do(t, "ACL", "SETUSER", "default", "-psync", "-sync")
	master.Do(t, "CLIENT", "KILL", "TYPE", "replica")
	coordtest.Eventually(t, 5*time.Second, func() bool {
		v, err := replica.DoContext(ctx, "INFO", "replication")
		str, _ := v.(string)
		return err == nil && strings.Contains(str, "master_link_status:down")
	}, "the replication link down")
	// With LockReplicas, the same Acquire is refused and leaves nothing
	// held.
	w := sentinelNodeWith(t, g, prefix, true, func(o *coordredis.Options) {
		o.LockReplicas = 1
		o.LockReplicaTimeout = 200 * time.Millisecond
	})
	start := time.Now()
	if l, err := w.Locker().Acquire(ctx, "rl:res", coord.WithTTL(30*time.Second), coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Acquire with LockReplicas 1 and no replica = %v, %v; want ErrUnavailable", l, err)
	}
	refusedIn := time.Since(start)
	if held, err := w.Locker().Locked(ctx, "rl:res"); held || err != nil {
		t.Errorf("after the refused Acquire, Locked = %v, %v; want the lease given up", held, err)
	}
	t.Logf("with LockReplicas 1 and the replica cut off, Acquire refused after %v (timeout 200ms)", refusedIn.Round(time.Millisecond))

	lost, err := a.Locker().Acquire(ctx, "rl:res", coord.WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	master.Kill(t)
	g.WaitForNewMaster(t, master)
	next, err := b.Locker().Acquire(ctx, "rl:res", coord.WithTTL(5*time.Second), coord.WithRetry(50, 100*time.Millisecond))
	if err != nil {
		t.Fatalf("Acquire on the promoted replica: %v", err)
	}
	t.Logf("lease acquired (fence %d) while the replica lagged, then the master died: the promoted replica granted the lease again with fence %d, while the first holder's lease still had ~30s to run; its Done closed: %v",
		lost.Fence(), next.Fence(), coordtest.IsClosed(lost.Done()))
	if next.Fence() <= lost.Fence() {
		t.Errorf("fence %d after the failover is not above the lost lease's %d: the counter rolled back and repeated a fence", next.Fence(), lost.Fence())
	}
	if err := lost.Extend(ctx, time.Second); !errors.Is(err, coord.ErrNotHeld) {
		t.Errorf("Extend of the lost lease = %v, want ErrNotHeld (the holder learns of the loss at its next call)", err)
	}
	_ = next.Release(ctx)
}

// testMasterKilled kills the master with SIGKILL under load: the
// sentinels notice after down-after-milliseconds (1s) and promote the
// replica; the backend works again within failoverBound of the new
// master taking writes.
func testMasterKilled(t *testing.T, g *redistest.Sentinel) {
	prefix := uniq("mk") + ":"
	a := sentinelNode(t, g, prefix, true)
	b := sentinelNode(t, g, prefix, true)
	ctx := t.Context()
	topic := uniq("mk-topic-")
	events := &coordtest.Recorder[coord.Event]{}
	if _, err := a.Events().Subscribe(ctx, topic, events.Add); err != nil {
		t.Fatal(err)
	}
	ld := startLoad(t, b, topic)
	coordtest.Eventually(t, 5*time.Second, func() bool { return ld.recovered(time.Now().Add(-time.Second)) }, "load running: %v", ld)
	old := g.Master(t)
	killAt := time.Now()
	old.Kill(t)
	coordtest.Eventually(t, 3*time.Second, healthIs(b, coord.Unhealthy), "b unhealthy once the master is gone")
	g.WaitForNewMaster(t, old)
	promoted := time.Now()
	recoverIn := coordtest.Eventually(t, failoverBound, func() bool { return ld.recovered(time.Now().Add(-100 * time.Millisecond)) },
		"load succeeding on the new master: %v", ld)
	deliverIn := coordtest.Eventually(t, failoverBound, func() bool {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = b.Events().Publish(pctx, topic, "after-kill")
		return events.Count(func(e coord.Event) bool { return string(e.Payload) == `"after-kill"` }) > 0
	}, "events delivered after the master was killed")
	ld.stop()
	t.Logf("master killed: new master taking writes %v after the kill; load recovered %v and events %v after that; load: %v",
		promoted.Sub(killAt).Round(time.Millisecond), recoverIn.Round(time.Millisecond), deliverIn.Round(time.Millisecond), ld)
	if ld.bad.Load() != 0 {
		t.Errorf("%d errors wrapped no coord sentinel", ld.bad.Load())
	}
}

// testFailoverUnderLoad runs locks, sessions and events through failover
// clients while SENTINEL FAILOVER swaps master and replica, and checks
// that everything works again within failoverBound of the new master
// taking writes, that nothing panicked and that every error wrapped a
// coord sentinel. It reports the gap each kind of operation saw and what
// the lease held across the failover became.
func testFailoverUnderLoad(t *testing.T, g *redistest.Sentinel) {
	prefix := uniq("fo") + ":"
	a := sentinelNode(t, g, prefix, true)
	b := sentinelNode(t, g, prefix, true)
	ctx := t.Context()
	topic := uniq("fo-topic-")
	invs := &coordtest.Recorder[coord.Invalidation]{}
	events := &coordtest.Recorder[coord.Event]{}
	if _, err := a.Invalidator().Subscribe(ctx, invs.Add); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Events().Subscribe(ctx, topic, events.Add); err != nil {
		t.Fatal(err)
	}
	deliver := func(d time.Duration, marker string) (time.Duration, bool) {
		return coordtest.Poll(d, 50*time.Millisecond, func() bool {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_ = b.Events().Publish(pctx, topic, marker)
			return events.Count(func(e coord.Event) bool { return string(e.Payload) == `"`+marker+`"` }) > 0
		})
	}
	if _, ok := deliver(5*time.Second, "before"); !ok {
		t.Fatal("events not delivered before the failover")
	}
	ld := startLoad(t, b, topic)
	held, err := a.Locker().Acquire(ctx, "fo:held", coord.WithTTL(3*time.Second), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool { return ld.recovered(time.Now().Add(-time.Second)) }, "load running: %v", ld)
	oldMaster := g.Master(t).Addr()
	var failsBefore [numLoadKinds]int64
	for k := range numLoadKinds {
		failsBefore[k] = ld.fail[k].Load()
	}

	foStart := time.Now()
	g.Failover(t)
	foDone := time.Now()
	newMaster := g.Master(t).Addr()
	if newMaster == oldMaster {
		t.Fatalf("master still %s after SENTINEL FAILOVER", oldMaster)
	}
	recoverIn := coordtest.Eventually(t, failoverBound, func() bool { return ld.recovered(time.Now().Add(-100 * time.Millisecond)) },
		"load succeeding again after the failover: %v", ld)
	deliverIn, ok := deliver(failoverBound, "after-failover")
	if !ok {
		t.Fatalf("events not delivered within %v of the failover", failoverBound)
	}
	healthyIn := coordtest.Eventually(t, failoverBound, func() bool {
		return healthIs(a, coord.Healthy)() && healthIs(b, coord.Healthy)()
	}, "both instances healthy after the failover")

	// The lease held across the failover: kept (replicated before the
	// switch) or lost (Done closed). A new holder's fence must be higher.
	leaseKept := !coordtest.IsClosed(held.Done())
	if leaseKept {
		if err := held.Release(ctx); err != nil && !errors.Is(err, coord.ErrNotHeld) {
			t.Errorf("Release of the lease held across the failover: %v", err)
		}
	}
	next, err := b.Locker().Acquire(ctx, "fo:held", coord.WithTTL(time.Second), coord.WithRetry(30, 100*time.Millisecond))
	if err != nil {
		t.Fatalf("Acquire after the failover: %v", err)
	}
	if next.Fence() <= held.Fence() {
		t.Errorf("fence after the failover %d, not above %d: async replication lost fence increments", next.Fence(), held.Fence())
	}
	_ = next.Release(ctx)
	ld.stop()
	var failed [numLoadKinds]int64
	for k := range numLoadKinds {
		failed[k] = ld.fail[k].Load() - failsBefore[k]
	}
	t.Logf("SENTINEL FAILOVER %s -> %s took %v; after it: load recovered in %v, events in %v, healthy in %v",
		oldMaster, newMaster, foDone.Sub(foStart).Round(time.Millisecond), recoverIn.Round(time.Millisecond),
		deliverIn.Round(time.Millisecond), healthyIn.Round(time.Millisecond))
	t.Logf("failed during the failover: lock %d, session %d, publish %d; lease held across it kept: %v; reconnect purges on a: %d; load: %v",
		failed[loadLock], failed[loadSession], failed[loadPublish], leaseKept, invs.Count(isPurge("reconnect")), ld)
	if ld.bad.Load() != 0 {
		t.Errorf("%d errors wrapped no coord sentinel", ld.bad.Load())
	}
}
