package reliability

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// migrationShape is one lease shape whose hash slot TestClusterMigration
// holds half-migrated: its keys (docs/WIRE.md, backend/redis's package
// documentation), in the order they are moved, and how to take, contend
// for and check one of its leases.
type migrationShape struct {
	name string
	// keys returns the shape's keys under prefix for the resource.
	keys func(prefix, res string) []string
	// hold takes the lease that stays held through the migration.
	hold func(ctx context.Context, b coord.Backend, res string) (coord.Lock, error)
	// contend tries (no wait) what the held lease excludes; it must not
	// succeed.
	contend func(ctx context.Context, b coord.Backend, res string) (coord.Lock, error)
	// busy reads the shape's state: whether it stands held.
	busy func(ctx context.Context, b coord.Backend, res string) (bool, error)
}

var migrationShapes = []migrationShape{
	{
		name: "lock",
		keys: func(p, r string) []string {
			return []string{p + "lock:{" + r + "}", p + "lock:{" + r + "}:q", p + "lock:{" + r + "}:fence"}
		},
		hold: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.Locker().Acquire(ctx, r, coord.WithTTL(migrationTTL))
		},
		contend: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.Locker().Acquire(ctx, r, coord.WithTTL(migrationTTL))
		},
		busy: func(ctx context.Context, b coord.Backend, r string) (bool, error) { return b.Locker().Locked(ctx, r) },
	},
	{
		name: "rw-write",
		keys: func(p, r string) []string {
			return []string{p + "rw:{" + r + "}:w", p + "rw:{" + r + "}:r", p + "rw:{" + r + "}:q", p + "rw:{" + r + "}:fence"}
		},
		hold: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.RWLocker().Lock(ctx, r, coord.WithTTL(migrationTTL))
		},
		contend: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.RWLocker().RLock(ctx, r, coord.WithTTL(migrationTTL))
		},
		busy: func(ctx context.Context, b coord.Backend, r string) (bool, error) {
			s, err := b.RWLocker().State(ctx, r)
			return s.Writer || s.Readers > 0, err
		},
	},
	{
		name: "rw-read",
		keys: func(p, r string) []string {
			return []string{p + "rw:{" + r + "}:r", p + "rw:{" + r + "}:fence", p + "rw:{" + r + "}:w", p + "rw:{" + r + "}:q"}
		},
		hold: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.RWLocker().RLock(ctx, r, coord.WithTTL(migrationTTL))
		},
		contend: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.RWLocker().Lock(ctx, r, coord.WithTTL(migrationTTL))
		},
		busy: func(ctx context.Context, b coord.Backend, r string) (bool, error) {
			s, err := b.RWLocker().State(ctx, r)
			return s.Writer || s.Readers > 0, err
		},
	},
	{
		name: "permit",
		keys: func(p, r string) []string { return []string{p + "sem:{" + r + "}", p + "sem:{" + r + "}:fence"} },
		hold: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.Semaphores().Acquire(ctx, r, 1, coord.WithTTL(migrationTTL))
		},
		contend: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.Semaphores().Acquire(ctx, r, 1, coord.WithTTL(migrationTTL))
		},
		busy: func(ctx context.Context, b coord.Backend, r string) (bool, error) {
			n, err := b.Semaphores().Holders(ctx, r)
			return n > 0, err
		},
	},
	{
		name: "leadership",
		keys: func(p, r string) []string { return []string{p + "elect:{" + r + "}", p + "elect:{" + r + "}:fence"} },
		hold: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.Elector().Campaign(ctx, r, "a", coord.WithTTL(migrationTTL))
		},
		contend: func(ctx context.Context, b coord.Backend, r string) (coord.Lock, error) {
			return b.Elector().Campaign(ctx, r, "b", coord.WithTTL(migrationTTL))
		},
		busy: func(ctx context.Context, b coord.Backend, r string) (bool, error) {
			li, err := b.Elector().Leader(ctx, r)
			if errors.Is(err, coord.ErrNotFound) {
				return false, nil // no leader
			}
			return li.Identity != "", err
		},
	},
}

// migrationTTL is the TTL of the leases TestClusterMigration takes: long
// enough that the held one lives through every step without a renewal.
const migrationTTL = 30 * time.Second

// migrationOutcome is what one operation returned during a migration.
func migrationOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, coord.ErrInvalid):
		return "ErrInvalid"
	case errors.Is(err, coord.ErrNotAcquired):
		return "ErrNotAcquired"
	case errors.Is(err, coord.ErrNotHeld), errors.Is(err, coord.ErrLeaseLost), errors.Is(err, coord.ErrExpired):
		return "lost"
	case errors.Is(err, coord.ErrUnavailable):
		return "ErrUnavailable"
	}
	return "raw"
}

// TestClusterMigration holds the hash slot of each lease shape
// half-migrated (CLUSTER SETSLOT IMPORTING / MIGRATING) and moves its keys
// one at a time, so that its multi-key scripts meet ASK (every key gone
// from the source) and TRYAGAIN (keys split between the two masters, or
// missing on both). At each step, one instance holds a lease of the shape
// and another contends for it: the contender never gets what the lease
// excludes (it is refused, or fails with an error wrapping
// coord.ErrUnavailable: never ErrInvalid or a raw Redis error), the
// holder's Extend succeeds (it touches the lease's own key only), and the
// shape's state answers right or fails with ErrUnavailable; once the slot
// belongs to the new master, the holder releases, the contender gets the
// lease with a higher fence and nothing is left held.
func TestClusterMigration(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	for _, sh := range migrationShapes {
		t.Run(sh.name, func(t *testing.T) { testClusterMigration(t, cl, sh) })
	}
}

func testClusterMigration(t *testing.T, cl *redistest.Cluster, sh migrationShape) {
	prefix := uniq("mig") + ":"
	a := clusterNode(t, cl, prefix, nil)
	b := clusterNode(t, cl, prefix, nil)
	res := uniq("res")
	ctx := t.Context()
	op := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 5*time.Second) }

	octx, cancel := op()
	held, err := sh.hold(octx, a, res)
	cancel()
	if err != nil {
		t.Fatalf("hold: %v", err)
	}
	fence := held.Fence()
	keys := sh.keys(prefix, res)
	// Leases on other resources of the slot, one released at each step.
	var extra []coord.Lock
	var extraRes []string
	for _, r := range sameSlot(t, cl, res, len(keys)+3) {
		octx, cancel := op()
		l, err := sh.hold(octx, a, r)
		cancel()
		if err != nil {
			t.Fatalf("hold %s: %v", r, err)
		}
		extra, extraRes = append(extra, l), append(extraRes, r)
	}
	m := startMigration(t, cl, keys[0])

	outcomes := map[string]map[string]int{} // operation -> outcome -> count
	record := func(step, name string, err error) {
		o := migrationOutcome(err)
		if testing.Verbose() {
			t.Logf("%s, %s: %s %v", step, name, o, err)
		}
		if outcomes[name] == nil {
			outcomes[name] = map[string]int{}
		}
		outcomes[name][o]++
		if o == "raw" || o == "ErrInvalid" {
			t.Errorf("%s, %s: %v (%s), want a success or an error wrapping ErrUnavailable", step, name, err, o)
		}
	}
	probe := func(step string) {
		if len(extra) > 0 {
			// A failed release is given up and retried by the watchdog:
			// checked below, once the slot has moved.
			octx, cancel := op()
			err := extra[0].Release(octx)
			cancel()
			extra = extra[1:]
			record(step, "release", err)
			if o := migrationOutcome(err); o != "ok" && o != "ErrUnavailable" {
				t.Errorf("%s: release: %v (%s), want success or ErrUnavailable", step, err, o)
			}
		}
		for range 3 {
			octx, cancel := op()
			l, err := sh.contend(octx, b, res)
			cancel()
			record(step, "contend", err)
			if err == nil {
				t.Errorf("%s: the contender got a lease (fence %d) while %s (fence %d) stands", step, l.Fence(), sh.name, fence)
				rctx, rcancel := op()
				_ = l.Release(rctx)
				rcancel()
			} else if o := migrationOutcome(err); o != "ErrNotAcquired" && o != "ErrUnavailable" {
				t.Errorf("%s: contend: %v (%s), want ErrNotAcquired or ErrUnavailable", step, err, o)
			}
			octx, cancel = op()
			err = held.Extend(octx, migrationTTL)
			cancel()
			record(step, "extend", err)
			if err != nil {
				// A renewal touches the lease's own key alone, which is
				// whole on one master or the other at every step: the
				// cluster serves it (ASK), so a migration longer than a
				// TTL does not cost an auto-renewed lease.
				t.Errorf("%s: the holder's Extend: %v (%s), want success", step, err, migrationOutcome(err))
			}
			octx, cancel = op()
			busy, err := sh.busy(octx, b, res)
			cancel()
			record(step, "state", err)
			if err == nil && !busy {
				t.Errorf("%s: the state reads free while the lease stands", step)
			}
			select {
			case <-held.Done():
				t.Fatalf("%s: the held lease's Done closed", step)
			default:
			}
		}
	}

	probe("slot marked, no key moved")
	for i, k := range keys {
		if m.move(t, k) {
			probe(fmt.Sprintf("after moving %s (%d of %d)", strings.TrimPrefix(k, prefix), i+1, len(keys)))
		}
	}
	m.moveRest(t)
	probe("every key moved, slot still migrating")
	m.finish(t)
	probe("slot given to the new master")
	t.Logf("%s: slot %d from node %d to node %d; outcomes: %v", sh.name, m.slot, m.src, m.dst, outcomes)

	octx, cancel = op()
	err = held.Release(octx)
	cancel()
	if err != nil {
		t.Fatalf("release after the migration: %v", err)
	}
	for _, l := range extra { // not released during the migration
		octx, cancel := op()
		err := l.Release(octx)
		cancel()
		if err != nil {
			t.Errorf("release of %s after the migration: %v", l.Resource(), err)
		}
	}
	var freed time.Duration
	for _, r := range extraRes {
		// No lease is left behind: a release that failed during the
		// migration is done by the watchdog once the slot has moved,
		// well before the TTL (30s).
		freed = max(freed, coordtest.Eventually(t, 10*time.Second, func() bool {
			octx, cancel := op()
			defer cancel()
			busy, err := sh.busy(octx, a, r)
			return err == nil && !busy
		}, "%s %s released after the migration", sh.name, r))
	}
	t.Logf("%s: every lease of the slot free %v after the last release", sh.name, freed.Round(time.Millisecond))
	octx, cancel = op()
	next, err := sh.hold(octx, b, res)
	cancel()
	if err != nil {
		t.Fatalf("acquire after the migration: %v", err)
	}
	if next.Fence() <= fence {
		t.Errorf("fence after the migration %d, not above %d", next.Fence(), fence)
	}
	octx, cancel = op()
	err = next.Release(octx)
	cancel()
	if err != nil {
		t.Fatalf("release of the next lease: %v", err)
	}
	octx, cancel = op()
	busy, err := sh.busy(octx, a, res)
	cancel()
	if err != nil || busy {
		t.Errorf("after both releases: held %v (err %v), want free", busy, err)
	}
}

// sameSlot returns n names other than res whose keys (tagged with the
// name) hash to res's slot.
func sameSlot(t *testing.T, cl *redistest.Cluster, res string, n int) []string {
	t.Helper()
	c := cl.Nodes()[0].Client(t)
	ctx := t.Context()
	want, err := c.ClusterKeySlot(ctx, res).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for batch := 0; len(out) < n; batch++ {
		if batch == 10 {
			t.Fatalf("fewer than %d names in slot %d", n, want)
		}
		cmds := make([]*goredis.IntCmd, 20000)
		names := make([]string, len(cmds))
		_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range cmds {
				names[i] = fmt.Sprintf("%s-%d", res, batch*len(cmds)+i)
				cmds[i] = p.ClusterKeySlot(ctx, names[i])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cmds {
			if c.Val() == want && len(out) < n {
				out = append(out, names[i])
			}
		}
	}
	return out
}

// slotMigration is one slot held half-migrated between two masters.
type slotMigration struct {
	nodes    []*redistest.Server
	ids      []string
	slot     int64
	src, dst int
}

// startMigration marks the slot of key IMPORTING on the next master and
// MIGRATING on its own.
func startMigration(t *testing.T, cl *redistest.Cluster, key string) *slotMigration {
	t.Helper()
	m := &slotMigration{nodes: cl.Nodes(), src: -1}
	for _, n := range m.nodes {
		id, _ := n.Do(t, "CLUSTER", "MYID").(string)
		m.ids = append(m.ids, id)
	}
	m.slot, _ = m.nodes[0].Do(t, "CLUSTER", "KEYSLOT", key).(int64)
	for i, n := range m.nodes {
		if c, _ := n.Do(t, "CLUSTER", "COUNTKEYSINSLOT", m.slot).(int64); c > 0 {
			m.src = i
		}
	}
	if m.src < 0 {
		t.Fatalf("slot %d of %s holds no key", m.slot, key)
	}
	m.dst = (m.src + 1) % len(m.nodes)
	m.nodes[m.dst].Do(t, "CLUSTER", "SETSLOT", m.slot, "IMPORTING", m.ids[m.src])
	m.nodes[m.src].Do(t, "CLUSTER", "SETSLOT", m.slot, "MIGRATING", m.ids[m.dst])
	return m
}

// move migrates key to the new master and reports whether it existed.
func (m *slotMigration) move(t *testing.T, key string) bool {
	t.Helper()
	r := m.nodes[m.src].Do(t, "MIGRATE", "127.0.0.1", m.nodes[m.dst].Port(), key, 0, 5000)
	return r == "OK"
}

// moveRest migrates the keys left in the slot.
func (m *slotMigration) moveRest(t *testing.T) {
	t.Helper()
	for {
		keys, _ := m.nodes[m.src].Do(t, "CLUSTER", "GETKEYSINSLOT", m.slot, 100).([]any)
		if len(keys) == 0 {
			return
		}
		args := []any{"MIGRATE", "127.0.0.1", m.nodes[m.dst].Port(), "", 0, 5000, "KEYS"}
		m.nodes[m.src].Do(t, append(args, keys...)...)
	}
}

// finish gives the slot to the new master on every master.
func (m *slotMigration) finish(t *testing.T) {
	t.Helper()
	m.nodes[m.dst].Do(t, "CLUSTER", "SETSLOT", m.slot, "NODE", m.ids[m.dst])
	m.nodes[m.src].Do(t, "CLUSTER", "SETSLOT", m.slot, "NODE", m.ids[m.dst])
	for i, n := range m.nodes {
		if i != m.src && i != m.dst {
			n.Do(t, "CLUSTER", "SETSLOT", m.slot, "NODE", m.ids[m.dst])
		}
	}
}
