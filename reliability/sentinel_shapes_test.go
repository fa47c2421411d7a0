package reliability

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// replicaPause is how long the replica is stopped (SIGSTOP) while a
// lease is taken with LockReplicas: a call that returns before it is
// resumed was acknowledged by no replica.
const replicaPause = 300 * time.Millisecond

// shape is one kind of lease taken through a Backend, and where its
// value and fence counter are in Redis (docs/WIRE.md).
type shape struct {
	name string
	// take takes a lease on res.
	take func(ctx context.Context, n *node, res string, opts ...coord.LockOption) (coord.Lock, error)
	// onServer reports whether s has the lease (its value) and the fence
	// counter at least at its fence, reading s alone.
	onServer func(ctx context.Context, n *node, s *redistest.Server, res string, l coord.Lock) error
	// anyHeld reports whether anything is held on res on s (readers,
	// permits, a writer, a writer's intent, a leader).
	anyHeld func(ctx context.Context, n *node, s *redistest.Server, res string) (string, error)
}

// counterAtLeast checks the fence counter key on s against fence.
func counterAtLeast(ctx context.Context, s *redistest.Server, key string, fence int64) error {
	v, err := s.DoContext(ctx, "GET", key)
	f, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	if err != nil || f < fence {
		return fmt.Errorf("fence counter %s is %v (%v), want at least %d", key, v, err, fence)
	}
	return nil
}

// zMember checks that token is a member of the ZSET key on s.
func zMember(ctx context.Context, s *redistest.Server, key, token string) error {
	if v, err := s.DoContext(ctx, "ZSCORE", key, token); err != nil || v == nil {
		return fmt.Errorf("%s has no member for the lease (%v, %v)", key, v, err)
	}
	return nil
}

// held returns a description of what is held under the keys on s, or "".
func held(ctx context.Context, s *redistest.Server, zsets, strs []string) (string, error) {
	var out []string
	for _, k := range zsets {
		v, err := s.DoContext(ctx, "ZCARD", k)
		if err != nil {
			return "", err
		}
		if n, _ := v.(int64); n != 0 {
			out = append(out, fmt.Sprintf("%s has %d members", k, n))
		}
	}
	for _, k := range strs {
		v, err := s.DoContext(ctx, "EXISTS", k)
		if err != nil {
			return "", err
		}
		if n, _ := v.(int64); n != 0 {
			out = append(out, k+" exists")
		}
	}
	return strings.Join(out, "; "), nil
}

func leaseShapes() []shape {
	rw := func(n *node, res, suffix string) string { return n.prefixed("rw:{" + res + "}" + suffix) }
	sem := func(n *node, res, suffix string) string { return n.prefixed("sem:{" + res + "}" + suffix) }
	el := func(n *node, res, suffix string) string { return n.prefixed("elect:{" + res + "}" + suffix) }
	rwHeld := func(ctx context.Context, n *node, s *redistest.Server, res string) (string, error) {
		return held(ctx, s, []string{rw(n, res, ":r"), rw(n, res, ":q")}, []string{rw(n, res, ":w")})
	}
	return []shape{{
		name: "read",
		take: func(ctx context.Context, n *node, res string, opts ...coord.LockOption) (coord.Lock, error) {
			return n.RWLocker().RLock(ctx, res, opts...)
		},
		onServer: func(ctx context.Context, n *node, s *redistest.Server, res string, l coord.Lock) error {
			return errors.Join(zMember(ctx, s, rw(n, res, ":r"), l.Token()), counterAtLeast(ctx, s, rw(n, res, ":fence"), l.Fence()))
		},
		anyHeld: rwHeld,
	}, {
		name: "write",
		take: func(ctx context.Context, n *node, res string, opts ...coord.LockOption) (coord.Lock, error) {
			return n.RWLocker().Lock(ctx, res, opts...)
		},
		onServer: func(ctx context.Context, n *node, s *redistest.Server, res string, l coord.Lock) error {
			var errs []error
			if v, err := s.DoContext(ctx, "GET", rw(n, res, ":w")); err != nil || v != l.Token() {
				errs = append(errs, fmt.Errorf("writer key holds %v (%v), not the lease's value", v, err))
			}
			return errors.Join(append(errs, counterAtLeast(ctx, s, rw(n, res, ":fence"), l.Fence()))...)
		},
		anyHeld: rwHeld,
	}, {
		name: "permit",
		take: func(ctx context.Context, n *node, res string, opts ...coord.LockOption) (coord.Lock, error) {
			return n.Semaphores().Acquire(ctx, res, 2, opts...)
		},
		onServer: func(ctx context.Context, n *node, s *redistest.Server, res string, l coord.Lock) error {
			return errors.Join(zMember(ctx, s, sem(n, res, ""), l.Token()), counterAtLeast(ctx, s, sem(n, res, ":fence"), l.Fence()))
		},
		anyHeld: func(ctx context.Context, n *node, s *redistest.Server, res string) (string, error) {
			return held(ctx, s, []string{sem(n, res, "")}, nil)
		},
	}, {
		name: "leader",
		take: func(ctx context.Context, n *node, res string, opts ...coord.LockOption) (coord.Lock, error) {
			return n.Elector().Campaign(ctx, res, "id-"+res, opts...)
		},
		onServer: func(ctx context.Context, n *node, s *redistest.Server, res string, l coord.Lock) error {
			var errs []error
			if v, err := s.DoContext(ctx, "HGET", el(n, res, ""), "v"); err != nil || v != l.Token() {
				errs = append(errs, fmt.Errorf("leadership hash holds %q (%v), not the lease's value", v, err))
			}
			v, err := s.DoContext(ctx, "HGET", el(n, res, ""), "t")
			if t, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64); err != nil || t != l.Fence() {
				errs = append(errs, fmt.Errorf("leadership term %v (%v), want %d", v, err, l.Fence()))
			}
			return errors.Join(append(errs, counterAtLeast(ctx, s, el(n, res, ":fence"), l.Fence()))...)
		},
		anyHeld: func(ctx context.Context, n *node, s *redistest.Server, res string) (string, error) {
			return held(ctx, s, nil, []string{el(n, res, "")})
		},
	}}
}

// replicaOf returns the data node of g that is not master.
func replicaOf(g *redistest.Sentinel, master *redistest.Server) *redistest.Server {
	for _, s := range g.DataNodes() {
		if s != master {
			return s
		}
	}
	return nil
}

// TestSentinelShapes checks Options.LockReplicas on every shape of lease
// (read, write, permit, leadership) in one Sentinel group: on a healthy
// group a call returns only once the replica has the lease, and with the
// replication link cut every call is refused with ErrUnavailable and
// leaves nothing held (the cut is last: it leaves the group broken).
func TestSentinelShapes(t *testing.T) {
	g := redistest.StartSentinel(t)
	t.Run("Replicated", func(t *testing.T) { testShapesReplicated(t, g) })
	t.Run("JobReplicated", func(t *testing.T) { testJobReplicated(t, g) })
	t.Run("ReplicationCut", func(t *testing.T) { testShapesReplicationCut(t, g) })
}

// testShapesReplicated: with LockReplicas 1 on a healthy group, each
// shape's call, made while the replica is stopped, returns only after it
// was resumed, and at once the replica holds the lease's value and a
// fence counter at least the lease's fence. Without the WAIT the call
// returns while the replica is stopped.
func testShapesReplicated(t *testing.T, g *redistest.Sentinel) {
	prefix := uniq("sr") + ":"
	n := sentinelNodeWith(t, g, prefix, false, func(o *coordredis.Options) {
		o.LockReplicas = 1
		o.LockReplicaTimeout = 10 * time.Second
	})
	ctx := t.Context()
	master := g.Master(t)
	replica := replicaOf(g, master)
	for _, sh := range leaseShapes() {
		t.Run(sh.name, func(t *testing.T) {
			res := "sr-" + sh.name
			// Scripts cached and connections made: the call below is the
			// acquire alone.
			warm, err := sh.take(ctx, n, res+"-warm", coord.WithTTL(10*time.Second))
			if err != nil {
				t.Fatalf("%s with LockReplicas 1 on a healthy group: %v", sh.name, err)
			}
			_ = warm.Release(ctx)

			var l coord.Lock
			r := whileStopped(t, replica, func() error {
				var err error
				l, err = sh.take(ctx, n, res, coord.WithTTL(10*time.Second))
				return err
			})
			if r.err != nil {
				t.Fatalf("%s with LockReplicas 1: %v", sh.name, r.err)
			}
			defer func() { _ = l.Release(ctx) }()
			if r.paused {
				t.Errorf("%s returned after %v while the replica was stopped: no replica acknowledged the lease", sh.name, r.took)
			}
			// Read on the replica at once, no polling.
			if err := sh.onServer(ctx, n, replica, res, l); err != nil {
				t.Errorf("right after %s returned, on the replica: %v", sh.name, err)
			}
			t.Logf("%s: returned %v after the call, the replica stopped for %v", sh.name, r.took.Round(time.Millisecond), replicaPause)
		})
	}
}

// testJobReplicated: with LockReplicas 1, Jobs.Complete returns only
// once the (stopped, then resumed) replica has the job's record done, so
// a failover right then does not let the job run again in the period.
func testJobReplicated(t *testing.T, g *redistest.Sentinel) {
	prefix := uniq("sj") + ":"
	n := sentinelNodeWith(t, g, prefix, false, func(o *coordredis.Options) {
		o.LockReplicas = 1
		o.LockReplicaTimeout = 10 * time.Second
	})
	ctx := t.Context()
	replica := replicaOf(g, g.Master(t))
	slot, err := n.Jobs().Due(ctx, "report", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Jobs().Fail(ctx, "report", slot); err != nil { // the record exists, the script is cached
		t.Fatal(err)
	}
	r := whileStopped(t, replica, func() error { return n.Jobs().Complete(ctx, "report", slot) })
	if r.err != nil {
		t.Fatalf("Complete with LockReplicas 1: %v", r.err)
	}
	if r.paused {
		t.Error("Complete returned while the replica was stopped: no replica acknowledged the record")
	}
	key := n.prefixed("job:{report}")
	if v, err := replica.DoContext(ctx, "HGET", key, "d"); err != nil || v != "1" {
		t.Errorf("right after Complete, the replica's record %s has d = %v (%v), want 1", key, v, err)
	}
}

// stoppedCall is what whileStopped saw of a call.
type stoppedCall struct {
	err    error
	paused bool // it returned while the replica was stopped
	took   time.Duration
}

// whileStopped stops replica, makes call, and resumes the replica after
// replicaPause, or as soon as call returns (a broken mechanism: no need
// to wait longer); it returns call's error, whether it returned while the
// replica was stopped, and how long it took.
func whileStopped(t *testing.T, replica *redistest.Server, call func() error) stoppedCall {
	t.Helper()
	var resumed atomic.Bool
	out := make(chan stoppedCall, 1)
	replica.Pause(t)
	start := time.Now()
	go func() {
		err := call()
		out <- stoppedCall{err: err, paused: !resumed.Load(), took: time.Since(start)}
	}()
	var r stoppedCall
	got := false
	select {
	case r = <-out:
		got = true
	case <-time.After(replicaPause):
	}
	resumed.Store(true)
	replica.Resume(t)
	if !got {
		r = <-out
	}
	return r
}

// cmdCalls returns the number of cmd commands s has run.
func cmdCalls(ctx context.Context, s *redistest.Server, cmd string) (int64, error) {
	v, err := s.DoContext(ctx, "INFO", "commandstats")
	if err != nil {
		return 0, err
	}
	str, _ := v.(string)
	for line := range strings.SplitSeq(str, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
			num, _, _ := strings.Cut(rest, ",")
			return strconv.ParseInt(num, 10, 64)
		}
	}
	return 0, nil
}

// testShapesReplicationCut cuts the replication link as
// testAsyncReplicationLoss does (the master refuses PSYNC, and its
// replica connections are killed); then, with LockReplicas 1, each
// shape's call is refused with ErrUnavailable after the WAIT timeout,
// with and without a wait, and leaves nothing held on the master; a
// permit freed by a Release on the same instance is not handed to its
// waiter (no WAIT would cover that), whose own try is refused.
func testShapesReplicationCut(t *testing.T, g *redistest.Sentinel) {
	const timeout = 200 * time.Millisecond
	prefix := uniq("sc") + ":"
	w := sentinelNodeWith(t, g, prefix, true, func(o *coordredis.Options) {
		o.LockReplicas = 1
		o.LockReplicaTimeout = timeout
	})
	ctx := t.Context()
	master := g.Master(t)
	replica := replicaOf(g, master)
	shapes := leaseShapes()
	// Warm: the scripts cached on the master, while the link is up.
	for _, sh := range shapes {
		l, err := sh.take(ctx, w, "sc-warm-"+sh.name, coord.WithTTL(10*time.Second))
		if err != nil {
			t.Fatalf("%s on a healthy group: %v", sh.name, err)
		}
		_ = l.Release(ctx)
	}

	// A permit held, and a waiter for it on the same instance, asleep
	// between tries (its two tries, the first and the one right after it
	// subscribed, have run: two EVALSHA of the acquire script, each with
	// its WAIT).
	const handRes = "sc-handoff"
	p1, err := w.Semaphores().Acquire(ctx, handRes, 1, coord.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	base, err := cmdCalls(ctx, master, "evalsha")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   coord.Lock
		err error
	}
	waiter := make(chan result, 1)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	go func() {
		l, err := w.Semaphores().Acquire(wctx, handRes, 1, coord.WithTTL(10*time.Second), coord.WithWait(30*time.Second))
		waiter <- result{l, err}
	}()
	coordtest.Eventually(t, 5*time.Second, func() bool {
		n, err := cmdCalls(ctx, master, "evalsha")
		return err == nil && n >= base+2
	}, "the permit waiter's two tries ran")

	master.Do(t, "ACL", "SETUSER", "default", "-psync", "-sync")
	master.Do(t, "CLIENT", "KILL", "TYPE", "replica")
	coordtest.Eventually(t, 5*time.Second, func() bool {
		v, err := replica.DoContext(ctx, "INFO", "replication")
		str, _ := v.(string)
		return err == nil && strings.Contains(str, "master_link_status:down")
	}, "the replication link down")

	t.Run("permit handoff", func(t *testing.T) {
		start := time.Now()
		if err := p1.Release(ctx); err != nil {
			t.Fatal(err)
		}
		var r result
		select {
		case r = <-waiter:
		case <-time.After(10 * time.Second):
			t.Fatal("the permit waiter neither got the permit nor was refused within 10s of the release")
		}
		if r.l != nil {
			_ = r.l.Release(ctx)
		}
		if !errors.Is(r.err, coord.ErrUnavailable) {
			t.Errorf("the waiter on the same instance as the release got a permit: %v, error %v; want ErrUnavailable (a handoff is covered by no WAIT)", r.l != nil, r.err)
		}
		if n, err := w.Semaphores().Holders(ctx, handRes); err != nil || n != 0 {
			t.Errorf("after the refusal: Holders = %d, %v; want 0", n, err)
		}
		t.Logf("permit released to a local waiter with the replica cut off: waiter refused %v after the release", time.Since(start).Round(time.Millisecond))
	})

	t.Run("job", func(t *testing.T) {
		slot, err := w.Jobs().Due(ctx, "sc-job", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Jobs().Complete(ctx, "sc-job", slot); !errors.Is(err, coord.ErrUnavailable) {
			t.Errorf("Complete with LockReplicas 1 and the replica cut off = %v, want ErrUnavailable (the record may be lost)", err)
		}
	})

	for _, sh := range shapes {
		for _, wait := range []bool{false, true} {
			name := sh.name
			opts := []coord.LockOption{coord.WithTTL(30 * time.Second), coord.WithRetry(0, 0)}
			if wait {
				name += "/wait"
				// A wait far longer than the test: only the refusal ends it.
				opts = []coord.LockOption{coord.WithTTL(30 * time.Second), coord.WithWait(30 * time.Second)}
			}
			t.Run(name, func(t *testing.T) {
				res := "sc-" + strings.ReplaceAll(name, "/", "-")
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				start := time.Now()
				l, err := sh.take(cctx, w, res, opts...)
				took := time.Since(start)
				if l != nil {
					_ = l.Release(ctx)
				}
				if !errors.Is(err, coord.ErrUnavailable) {
					t.Fatalf("%s with LockReplicas 1 and the replica cut off: got a lease: %v, error %v; want ErrUnavailable", name, l != nil, err)
				}
				if took < timeout {
					t.Errorf("%s refused after %v, before the WAIT timeout %v", name, took, timeout)
				}
				if took > 10*time.Second {
					t.Errorf("%s refused only after %v; the WAIT timeout is %v", name, took, timeout)
				}
				what, herr := sh.anyHeld(ctx, w, master, res)
				if herr != nil {
					t.Fatal(herr)
				}
				if what != "" {
					t.Errorf("after the refused %s, on the master: %s; want nothing held", name, what)
				}
				t.Logf("%s refused after %v (WAIT timeout %v): %v", name, took.Round(time.Millisecond), timeout, err)
			})
		}
	}
}
