package robustness

import (
	"os"
	"testing"
	"time"
)

// clusterMigrateSeed is the fixed seed of TestClusterMigrations.
const clusterMigrateSeed = 1313

// migrateOrder is the order in which TestClusterMigrations moves the
// shapes' slots: one migrate-slot each.
var migrateOrder = []string{migrateRW, migrateSem, migrateElect, migrateStream, migrateLock}

// TestClusterMigrations runs the workload on a three-master Cluster under
// migrate-slot alone, once for each lease shape (a read-write lock, the
// semaphore, the election, the stream, an exclusive lock, in that order;
// which resource of a shape, the durations and the new master from a
// fixed seed, or -robustness.seed), each slot held with no key moved for
// half the fault and then with its keys split between the two masters,
// and fails on any checker's finding. It is the Cluster part of the CI
// run; COORD_ROBUSTNESS=off skips it.
func TestClusterMigrations(t *testing.T) {
	if os.Getenv("COORD_ROBUSTNESS") == "off" {
		t.Skip("COORD_ROBUSTNESS=off")
	}
	seed := int64(clusterMigrateSeed)
	if *flagSeed != 0 {
		seed = *flagSeed
	}
	h := newHarness(t, seed, deployCluster)
	sched := migrationSchedule(seed, h.timing(), h.migrations)
	findings := h.run(sched)
	if len(findings) > 0 {
		t.Errorf("robustness: %d checker(s) fired; seed %d (replay: go test ./reliability/robustness/ -run TestClusterMigrations -robustness.seed=%d)\nschedule:\n%s%s",
			len(findings), seed, seed, FormatSchedule(sched), formatFindings(findings))
	}
}

// migrationSchedule draws from seed one migrate-slot per shape of
// migrateOrder that ms holds: its timing and new master as [Schedule]
// draws them, its Target a slot of that shape (the drawn one among the
// shape's slots).
func migrationSchedule(seed int64, tm Timing, ms []migration) []Fault {
	drawn := Schedule(seed, tm, []string{FaultMigrateSlot}, 40*time.Second)
	var out []Fault
	for _, shape := range migrateOrder {
		var idx []int
		for i, m := range ms {
			if m.shape == shape {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 || len(out) == len(drawn) {
			continue
		}
		f := drawn[len(out)]
		f.Target = idx[f.Target%len(idx)]
		out = append(out, f)
	}
	return out
}

// TestMigrationSchedule checks that the CI Cluster schedule moves each
// shape's slot once, in migrateOrder, and that a seed reproduces it.
func TestMigrationSchedule(t *testing.T) {
	cfg := WorkerConfig{Prefix: "p:", Resources: []string{"r0", "r1"}, RWResources: []string{"rw0", "rw1"},
		Semaphores: []string{"s0"}, Election: "lead", Streams: true}
	ms := migrations(t, cfg)
	if len(ms) != 7 || ms[0].key != "p:lock:{r0}:fence" || ms[6].key != "p:st:{robust}" {
		t.Fatalf("migrations = %v", ms)
	}
	tm := Timing{LeaseTTL: 3 * time.Second, Staleness: 3 * time.Second, Workers: 3, Nodes: 3, MigrateTargets: len(ms)}
	a, b := migrationSchedule(7, tm, ms), migrationSchedule(7, tm, ms)
	if len(a) != len(migrateOrder) {
		t.Fatalf("%d faults, want %d:\n%s", len(a), len(migrateOrder), FormatSchedule(a))
	}
	for i, f := range a {
		if f != b[i] {
			t.Errorf("fault %d: %v, then %v from the same seed", i, f, b[i])
		}
		if f.Kind != FaultMigrateSlot || ms[f.Target].shape != migrateOrder[i] {
			t.Errorf("fault %d: %v moves %v, want a %s slot", i, f, ms[f.Target], migrateOrder[i])
		}
		if i > 0 && f.At <= a[i-1].At+a[i-1].Dur {
			t.Errorf("fault %d starts at %v, before fault %d ends", i, f.At, i-1)
		}
	}
	// The draw below MigrateTargets leaves the rest of a schedule as the
	// seed made it with the worker draw.
	old := tm
	old.MigrateTargets = 0
	kinds := append([]string(nil), ClusterFaults...)
	x, y := Schedule(1590, tm, kinds, 0), Schedule(1590, old, kinds, 0)
	if len(x) != len(y) {
		t.Fatalf("%d faults with migration targets, %d without", len(x), len(y))
	}
	for i := range x {
		if x[i].Kind != y[i].Kind || x[i].At != y[i].At || x[i].Dur != y[i].Dur || x[i].Node != y[i].Node {
			t.Errorf("fault %d: %v with migration targets, %v without", i, x[i], y[i])
		}
	}
}
