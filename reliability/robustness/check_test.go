package robustness

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The checkers on small made-up histories: each must fire on a violation
// and stay quiet on a correct history that differs from it in one point.

const ms = int64(time.Millisecond)

func testConfig(t *testing.T) CheckConfig {
	return CheckConfig{Staleness: 3 * time.Second, ExclusionSlack: 100 * time.Millisecond, Grace: time.Second, Dir: t.TempDir(), Timeout: 10 * time.Second}
}

func fired(fs []Finding, checker string) *Finding {
	for i := range fs {
		if fs[i].Checker == checker {
			return &fs[i]
		}
	}
	return nil
}

func lease(w int, name, res string, fence, call, ret, live int64) Op {
	return Op{Worker: w, Kind: KindLease, Key: res, Lease: name, Fence: fence, Call: call * ms, Return: ret * ms, Live: live * ms}
}

func TestCheckFences(t *testing.T) {
	ok := []Op{
		lease(0, "a", "r", 10, 0, 10, 20),
		lease(1, "b", "r", 11, 30, 40, 50),
		// Concurrent acquires may get their fences in either order.
		lease(0, "c", "r", 13, 60, 70, 0),
		lease(1, "d", "r", 12, 61, 75, 0),
	}
	if fs := Check(ok, testConfig(t)); len(fs) != 0 {
		t.Fatalf("findings on a correct history: %v", fs)
	}
	repeated := append(ok[:2:2], lease(2, "e", "r", 11, 80, 90, 95))
	f := fired(Check(repeated, testConfig(t)), CheckFence)
	if f == nil {
		t.Fatal("a repeated fence was not caught")
	}
	if !strings.Contains(f.Problems[0], "fence 11 given to lease b") {
		t.Errorf("problem %q does not name the repeat", f.Problems[0])
	}
	if _, err := os.Stat(f.Visualization); err != nil {
		t.Errorf("visualization %q: %v", f.Visualization, err)
	}
	lower := append(ok[:2:2], lease(2, "e", "r", 9, 80, 90, 95))
	if fired(Check(lower, testConfig(t)), CheckFence) == nil {
		t.Fatal("a fence lower than an earlier acquire's was not caught")
	}
}

func TestCheckExclusion(t *testing.T) {
	a := lease(0, "a", "r", 1, 0, 10, 500)
	overlap := lease(1, "b", "r", 2, 100, 200, 300) // honoured from 200, a until 500
	if f := fired(Check([]Op{a, overlap}, testConfig(t)), CheckExclusion); f == nil || f.Count != 1 {
		t.Fatalf("an overlap of 300ms was not caught: %v", f)
	}
	within := lease(1, "b", "r", 2, 100, 450, 600) // 50ms overlap, under the slack
	if fs := Check([]Op{a, within}, testConfig(t)); len(fs) != 0 {
		t.Fatalf("an overlap within the slack counted: %v", fs)
	}
	// A holder stopped during its lease is left to the fence checks.
	cfg := testConfig(t)
	cfg.Paused = []Window{{Start: 50 * ms, End: 150 * ms, Worker: 0}}
	if fs := Check([]Op{a, overlap}, cfg); len(fs) != 0 {
		t.Fatalf("an overlap after the holder was stopped counted: %v", fs)
	}
	cfg.Paused[0].Worker = 1
	if fired(Check([]Op{a, overlap}, cfg), CheckExclusion) == nil {
		t.Fatal("an overlap was exempted by another worker's pause")
	}
	other := lease(1, "b", "q", 2, 100, 200, 300)
	if fs := Check([]Op{a, other}, testConfig(t)); len(fs) != 0 {
		t.Fatalf("leases on two resources counted: %v", fs)
	}
}

func put(w int, v string, call, ret int64, err string) Op {
	return Op{Worker: w, Kind: KindSessPut, Key: "s0", Field: "a", Value: v, Call: call * ms, Return: ret * ms, Err: err}
}

func get(w int, v string, call, ret int64) Op {
	return Op{Worker: w, Kind: KindSessGet, Key: "s0", Field: "a", Value: v, Found: true, Call: call * ms, Return: ret * ms}
}

func TestCheckSessions(t *testing.T) {
	cfg := testConfig(t)
	good := []Op{put(0, "x", 0, 10, ""), get(1, "x", 20, 30), put(1, "", 40, 50, ""), get(0, "", 60, 70)}
	if fs := Check(good, cfg); len(fs) != 0 {
		t.Fatalf("findings on a linearizable history: %v", fs)
	}
	lost := []Op{put(0, "x", 0, 10, ""), get(1, "", 20, 30)}
	f := fired(Check(lost, cfg), CheckSession)
	if f == nil {
		t.Fatal("a lost update was not caught")
	}
	if _, err := os.Stat(f.Visualization); err != nil {
		t.Errorf("visualization %q: %v", f.Visualization, err)
	}
	// A put that failed may still take effect, later.
	unknown := []Op{put(0, "x", 0, 10, "timeout"), get(1, "", 20, 30), get(1, "x", 40, 50)}
	if fs := Check(unknown, cfg); len(fs) != 0 {
		t.Fatalf("findings with a put of unknown outcome: %v", fs)
	}
	// After a data loss the register starts from any value.
	cfg.DataLoss = []int64{15 * ms}
	if fs := Check(lost, cfg); len(fs) != 0 {
		t.Fatalf("a read after a data loss counted: %v", fs)
	}
	cfg.DataLoss = nil
	gone := get(1, "", 20, 30)
	gone.Found = false
	if fired(Check([]Op{gone}, cfg), CheckSession) == nil {
		t.Fatal("a shared session not found was not caught")
	}
}

func TestCheckStale(t *testing.T) {
	write := Op{Worker: 0, Kind: KindSource, Key: "k", Num: 2, Call: 0, Return: 100 * ms}
	read := func(v, at int64) Op {
		return Op{Worker: 1, Kind: KindRead, Key: "k", Num: v, Call: at * ms, Return: at*ms + ms}
	}
	if fs := Check([]Op{write, read(1, 3000), read(2, 3500)}, testConfig(t)); len(fs) != 0 {
		t.Fatalf("a read within the bound counted: %v", fs)
	}
	if f := fired(Check([]Op{write, read(1, 3200)}, testConfig(t)), CheckStale); f == nil || f.Count != 1 {
		t.Fatalf("a read 3.1s after the invalidation was not caught: %v", f)
	}
	// Time the reader was stopped does not count; another worker's does.
	cfg := testConfig(t)
	cfg.Paused = []Window{{Start: 1000 * ms, End: 2000 * ms, Worker: 1}, {Start: 0, End: 4000 * ms, Worker: 0}}
	if fs := Check([]Op{write, read(1, 4000)}, cfg); len(fs) != 0 {
		t.Fatalf("a read 3.9s after the invalidation, 1s of it stopped, counted: %v", fs)
	}
	if fired(Check([]Op{write, read(1, 4200)}, cfg), CheckStale) == nil {
		t.Fatal("a read 3.1s of running time after the invalidation was not caught")
	}
}

func TestCheckEvents(t *testing.T) {
	ev := func(to int, from string, n int64) Op { return Op{Worker: to, Kind: KindEvent, Key: from, Num: n} }
	ok := []Op{ev(0, "1", 1), ev(0, "1", 2), ev(0, "1", 2), ev(0, "2", 1), ev(0, "1", 5)}
	if fs := Check(ok, testConfig(t)); len(fs) != 0 {
		t.Fatalf("gaps or a repeat counted: %v", fs)
	}
	if n := EventRepeats(ok); n != 1 {
		t.Errorf("EventRepeats = %d, want 1", n)
	}
	if fired(Check(append(ok, ev(0, "1", 4)), testConfig(t)), CheckEvents) == nil {
		t.Fatal("an event out of order was not caught")
	}
}

func TestCheckLeaseEnds(t *testing.T) {
	held := Op{Worker: 0, Kind: KindHeld, Num: 0}
	if fs := Check([]Op{held}, testConfig(t)); len(fs) != 0 {
		t.Fatalf("no lease held counted: %v", fs)
	}
	held.Num = 1
	if fired(Check([]Op{held}, testConfig(t)), CheckImmortal) == nil {
		t.Fatal("a lease held after the workload stopped was not caught")
	}
	imm := Op{Worker: 0, Kind: KindImmortal, Key: "r", Lease: "a"}
	if fired(Check([]Op{imm}, testConfig(t)), CheckImmortal) == nil {
		t.Fatal("an immortal lease was not caught")
	}
}

func TestCheckRelease(t *testing.T) {
	cfg := testConfig(t)
	cfg.Network = []Window{{Name: FaultPauseServer, Start: 1000 * ms, End: 2000 * ms}}
	rel := func(at int64, err string) Op {
		op := lease(0, "a", "r", at, at-30, at-20, at-10) // one lease each
		op.RelCall, op.RelReturn, op.RelErr = at*ms, at*ms+ms, err
		return op
	}
	quiet := []Op{rel(1500, "timeout"), rel(2900, "timeout"), rel(5000, "coord/redis: release lease on \"r\": another holder has it: coord: lock not held"), rel(6000, "")}
	if fs := Check(quiet, cfg); len(fs) != 0 {
		t.Fatalf("releases in a fault window, lost ones or successful ones counted: %v", fs)
	}
	if f := fired(Check([]Op{rel(3100, "OOM command not allowed")}, cfg), CheckRelease); f == nil {
		t.Fatal("a release failing with no fault running was not caught")
	}
}

func TestSchedule(t *testing.T) {
	tm := Timing{LeaseTTL: 3 * time.Second, Staleness: 3 * time.Second, Workers: 3}
	a := Schedule(7, tm, AllFaults, 0)
	if b := Schedule(7, tm, AllFaults, 0); !reflect.DeepEqual(a, b) {
		t.Fatalf("one seed, two schedules:\n%s\n%s", FormatSchedule(a), FormatSchedule(b))
	}
	seen := map[string]bool{}
	for i, f := range a {
		seen[f.Kind] = true
		if i > 0 && f.At < a[i-1].At+a[i-1].Dur+2*time.Second {
			t.Errorf("fault %d starts %v after the previous ended; want at least 2s", i, f.At-a[i-1].At-a[i-1].Dur)
		}
		if f.Kind == FaultPauseWorker && f.Dur <= tm.LeaseTTL {
			t.Errorf("a worker pause of %v does not outlast the lease TTL", f.Dur)
		}
	}
	if len(seen) != len(AllFaults) {
		t.Errorf("schedule has %d kinds, want all %d:\n%s", len(seen), len(AllFaults), FormatSchedule(a))
	}
	if long := Schedule(7, tm, AllFaults, 2*time.Minute); long[len(long)-1].At < 2*time.Minute-30*time.Second {
		t.Errorf("a 2-minute schedule ends at %v", long[len(long)-1].At)
	}
}
