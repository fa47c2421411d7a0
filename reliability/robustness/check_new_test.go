package robustness

import (
	"strings"
	"testing"
	"time"
)

// The checkers of read-write locks, semaphores, elections and streams on
// small made-up histories: each must fire on a violation and stay quiet on
// a correct history that differs from it in one point.

func rwLease(w int, mode, name, res string, fence, call, ret, live int64) Op {
	op := lease(w, name, res, fence, call, ret, live)
	op.Kind, op.Mode = KindRW, mode
	return op
}

func permit(w int, name string, fence, call, ret, live int64) Op {
	op := lease(w, name, "s", fence, call, ret, live)
	op.Kind, op.Num = KindPermit, 2
	return op
}

func leader(w int, term, ret, live int64) Op {
	return Op{Worker: w, Kind: KindLeader, Key: "lead", Value: "w" + string(rune('0'+w)), Fence: term, Call: ret * ms, Return: ret * ms, Live: live * ms}
}

func TestCheckRWExclusion(t *testing.T) {
	ok := []Op{
		rwLease(0, "read", "a", "r", 10, 0, 10, 500),
		rwLease(1, "read", "b", "r", 11, 5, 20, 400), // readers share
		rwLease(0, "write", "c", "r", 12, 100, 550, 900),
		rwLease(1, "read", "d", "other", 13, 100, 110, 900), // another resource
	}
	if fs := Check(ok, testConfig(t)); len(fs) != 0 {
		t.Fatalf("findings on a correct history: %v", fs)
	}
	bad := append(ok[:3:3], rwLease(1, "read", "e", "r", 14, 600, 700, 800)) // a reader inside the writer
	f := fired(Check(bad, testConfig(t)), CheckRWExclusion)
	if f == nil {
		t.Fatal("a reader overlapping a writer was not caught")
	}
	if !strings.Contains(f.Problems[0], "write lease c") || !strings.Contains(f.Problems[0], "read lease e") {
		t.Errorf("problem %q does not name both leases", f.Problems[0])
	}
	twoWriters := append(ok[:3:3], rwLease(1, "write", "e", "r", 14, 600, 700, 800))
	if fired(Check(twoWriters, testConfig(t)), CheckRWExclusion) == nil {
		t.Fatal("two writers at once were not caught")
	}
	// The writer's holder was stopped while holding it: left to the fences.
	cfg := testConfig(t)
	cfg.Paused = []Window{{Start: 560 * ms, End: 580 * ms, Worker: 0}}
	if f := fired(Check(bad, cfg), CheckRWExclusion); f != nil {
		t.Fatalf("a stopped writer's overlap was counted: %v", f)
	}
	// The writer was taken after a snapshot the server restarted from.
	cfg = testConfig(t)
	cfg.Lossy = []Window{{Start: 500 * ms, End: 650 * ms}}
	if f := fired(Check(bad, cfg), CheckRWExclusion); f != nil {
		t.Fatalf("a writer the server forgot was counted: %v", f)
	}
	// A read fence lower than a write fence handed out before it.
	lower := append(ok[:3:3], rwLease(1, "read", "e", "r", 11, 950, 960, 970))
	if fired(Check(lower, testConfig(t)), CheckRWFence) == nil {
		t.Fatal("a read fence below an earlier write's was not caught")
	}
}

func TestCheckPermits(t *testing.T) {
	ok := []Op{
		permit(0, "a", 10, 0, 10, 500),
		permit(1, "b", 11, 0, 20, 400),
		permit(0, "c", 12, 300, 450, 900), // the third once one ended (within the slack)
	}
	if fs := Check(ok, testConfig(t)); len(fs) != 0 {
		t.Fatalf("findings on a correct history: %v", fs)
	}
	bad := append(ok[:2:2], permit(0, "c", 12, 200, 250, 900))
	f := fired(Check(bad, testConfig(t)), CheckPermits)
	if f == nil {
		t.Fatal("three permits of a limit of 2 were not caught")
	}
	if !strings.Contains(f.Problems[0], "3 permits") || !strings.Contains(f.Problems[0], "limit 2") {
		t.Errorf("problem %q does not give the count and the limit", f.Problems[0])
	}
	cfg := testConfig(t)
	cfg.Paused = []Window{{Start: 100 * ms, End: 200 * ms, Worker: 1}}
	if f := fired(Check(bad, cfg), CheckPermits); f != nil {
		t.Fatalf("a stopped holder's permit was counted: %v", f)
	}
	repeated := append(ok[:2:2], permit(0, "c", 11, 450, 460, 900))
	if fired(Check(repeated, testConfig(t)), CheckPermitFence) == nil {
		t.Fatal("a permit fence given twice was not caught")
	}
}

func TestCheckLeaderAndTerms(t *testing.T) {
	ok := []Op{
		leader(0, 100, 0, 400),
		leader(1, 200, 450, 800),
		leader(0, 300, 850, 900),
		{Worker: 1, Kind: KindLeader, Key: "lead", Err: "RunElected: closed"}, // not a leadership
	}
	if fs := Check(ok, testConfig(t)); len(fs) != 0 {
		t.Fatalf("findings on a correct history: %v", fs)
	}
	two := []Op{ok[0], leader(1, 200, 200, 800)}
	f := fired(Check(two, testConfig(t)), CheckLeader)
	if f == nil {
		t.Fatal("two leaders at once were not caught")
	}
	if !strings.Contains(f.Problems[0], "term 100") || !strings.Contains(f.Problems[0], "term 200") {
		t.Errorf("problem %q does not name both terms", f.Problems[0])
	}
	lower := []Op{ok[0], leader(1, 50, 450, 800)}
	if fired(Check(lower, testConfig(t)), CheckTerm) == nil {
		t.Fatal("a later leader with a lower term was not caught")
	}
	again := []Op{ok[0], leader(1, 100, 450, 800)}
	f = fired(Check(again, testConfig(t)), CheckTerm)
	if f == nil || !strings.Contains(f.Problems[0], "term 100 given to w0") {
		t.Fatalf("a term given twice was not caught: %v", f)
	}
}

func appendOp(w int, id string, ret int64) Op {
	return Op{Worker: w, Kind: KindAppend, Value: id, Call: (ret - 5) * ms, Return: ret * ms}
}

func deliver(w int, id string, n, call, ret int64) Op {
	return Op{Worker: w, Kind: KindDeliver, Value: id, Num: n, Call: call * ms, Return: ret * ms}
}

func present(id string) Op { return Op{Worker: driverID, Kind: KindPresent, Value: id} }

func drainOp(left int64) Op { return Op{Worker: driverID, Kind: KindDrain, Num: left} }

func streamConfig(t *testing.T) CheckConfig {
	cfg := testConfig(t)
	cfg.ClaimAfter = 2 * time.Second
	return cfg
}

func TestCheckStreams(t *testing.T) {
	ok := []Op{
		appendOp(0, "1-0", 10), appendOp(1, "2-0", 20),
		{Worker: 1, Kind: KindAppend, Err: "timeout", Call: 25 * ms, Return: 1025 * ms}, // unknown outcome: not owed
		deliver(0, "1-0", 1, 30, 40), deliver(1, "2-0", 1, 30, 45),
		present("1-0"), present("2-0"), drainOp(0),
	}
	fs, st := checkStreams(ok, streamConfig(t))
	if len(fs) != 0 {
		t.Fatalf("findings on a correct history: %v", fs)
	}
	if st.Appended != 2 || st.Delivered != 2 || len(st.Duplicates) != 0 {
		t.Errorf("stats %+v, want 2 appended, 2 delivered, no duplicates", st)
	}

	// An entry the server holds but the group never delivered.
	undelivered := append(append([]Op(nil), ok[:4]...), present("1-0"), present("2-0"), drainOp(0))
	f := fired(Check(undelivered, streamConfig(t)), CheckStreamLost)
	if f == nil || !strings.Contains(f.Problems[0], "2-0") {
		t.Fatalf("an undelivered entry was not caught: %v", f)
	}
	// Gone from the stream with no restore: lost.
	gone := append(append([]Op(nil), ok[:4]...), present("1-0"), drainOp(0))
	if fired(Check(gone, streamConfig(t)), CheckStreamLost) == nil {
		t.Fatal("an entry lost with no restore was not caught")
	}
	// Gone, appended after the snapshot the server restarted from: counted.
	cfg := streamConfig(t)
	cfg.Lossy = []Window{{Start: 15 * ms, End: 100 * ms}}
	fs, st = checkStreams(gone, cfg)
	if len(fs) != 0 || st.LostToRestore != 1 {
		t.Fatalf("an entry lost to a restore: findings %v, stats %+v", fs, st)
	}

	// A redelivery with nothing to explain it.
	dup := append(append([]Op(nil), ok...), deliver(1, "1-0", 2, 3000, 3010))
	f = fired(Check(dup, streamConfig(t)), CheckStreamDup)
	if f == nil || !strings.Contains(f.Problems[0], "1-0") {
		t.Fatalf("an unexplained redelivery was not caught: %v", f)
	}
	cfg = streamConfig(t)
	cfg.Paused = []Window{{Start: 35 * ms, End: 2500 * ms, Worker: 0}}
	fs, st = checkStreams(dup, cfg)
	if len(fs) != 0 || st.Duplicates["paused"] != 1 {
		t.Fatalf("a redelivery after the consumer was stopped: findings %v, stats %+v", fs, st)
	}
	cfg = streamConfig(t)
	cfg.Paused = []Window{{Start: 35 * ms, End: 235 * ms, Worker: 0}} // shorter than 2/3 of the claim time
	if fs, _ := checkStreams(dup, cfg); fired(fs, CheckStreamDup) == nil {
		t.Fatal("a redelivery after a short stop was excused")
	}
	cfg = streamConfig(t)
	cfg.Network = []Window{{Name: FaultKillNormal, Start: 1000 * ms, End: 1000 * ms}}
	if fs, st := checkStreams(dup, cfg); len(fs) != 0 || st.Duplicates["fault"] != 1 {
		t.Fatalf("a redelivery after a fault: findings %v, stats %+v", fs, st)
	}

	// Two handlers of one entry at once.
	overlap := append(append([]Op(nil), ok...), deliver(1, "1-0", 2, 35, 50))
	cfg = streamConfig(t)
	cfg.Network = []Window{{Start: 2000 * ms, End: 2100 * ms}} // explains the duplicate, not the overlap
	cfg.Grace = 0
	f = fired(Check(overlap, cfg), CheckStreamOverlap)
	if f == nil || !strings.Contains(f.Problems[0], "entry 1-0 run by worker 0") {
		t.Fatalf("two handlers at once were not caught: %v", f)
	}

	// Left pending, and dead-lettered.
	pending := append(append([]Op(nil), ok[:7]...), drainOp(3))
	if fired(Check(pending, streamConfig(t)), CheckStreamDrain) == nil {
		t.Fatal("entries left pending were not caught")
	}
	dead := append(append([]Op(nil), ok...), Op{Worker: driverID, Kind: KindDeadEntry, Value: "1-0", Num: 10})
	if fired(Check(dead, streamConfig(t)), CheckStreamDrain) == nil {
		t.Fatal("a dead-lettered entry was not caught")
	}
}

func TestCheckSessionsKilledPut(t *testing.T) {
	cfg := testConfig(t)
	// Worker 0 invoked a put of "x" and was killed before it returned;
	// worker 1 then reads "x".
	call := Op{Worker: 0, Kind: KindSessCall, Key: "s0", Field: "a", Value: "x", Call: 0}
	read := get(1, "x", 20, 30)
	if fired(Check([]Op{read}, cfg), CheckSession) == nil {
		t.Fatal("a read of a value never put was not caught")
	}
	if fs := Check([]Op{call, read}, cfg); len(fs) != 0 {
		t.Fatalf("findings with a put invoked and never returned: %v", fs)
	}
}

func TestCheckStreamsCrashed(t *testing.T) {
	ops := []Op{appendOp(0, "1-0", 10), deliver(0, "1-0", 1, 30, 40), deliver(0, "1-0", 2, 3000, 3010), present("1-0"), drainOp(0)}
	if fired(Check(ops, streamConfig(t)), CheckStreamDup) == nil {
		t.Fatal("an unexplained redelivery was not caught")
	}
	cfg := streamConfig(t)
	cfg.Killed = []Window{{Start: 45 * ms, End: 1500 * ms, Worker: 0}}
	fs, st := checkStreams(ops, cfg)
	if len(fs) != 0 || st.Duplicates["crashed"] != 1 {
		t.Fatalf("a redelivery after the consumer was killed: findings %v, stats %+v", fs, st)
	}
}

func TestCheckObserve(t *testing.T) {
	seen := func(w int, id string, term, at int64) Op {
		return Op{Worker: w, Kind: KindObserve, Key: "lead", Value: id, Fence: term, Call: at * ms, Return: at * ms}
	}
	ok := []Op{
		seen(0, "w0", 100, 10), seen(0, "", 0, 20), seen(0, "w1", 200, 30), seen(0, "w1", 200, 40), // a fresh read repeats
		seen(1, "w1", 200, 35),
		{Worker: 0, Kind: KindObserveTo, Key: "lead", Call: 50 * ms, Return: 60 * ms},
	}
	if fs := Check(ok, testConfig(t)); len(fs) != 0 {
		t.Fatalf("findings on a correct history: %v", fs)
	}
	back := append(append([]Op(nil), ok...), seen(0, "w0", 100, 45))
	f := fired(Check(back, testConfig(t)), CheckObserve)
	if f == nil || !strings.Contains(f.Problems[0], "term 200") {
		t.Fatalf("a term going back was not caught: %v", f)
	}
	cfg := testConfig(t)
	cfg.DataLoss = []int64{42 * ms}
	if f := fired(Check(back, cfg), CheckObserve); f != nil {
		t.Fatalf("a term going back across a restore was counted: %v", f)
	}
	stuck := append(append([]Op(nil), ok...), Op{Worker: 1, Kind: KindObserveTo, Key: "lead", Value: "w1", Fence: 200, Err: "still sees leader w1 (term 200) 7s after the workload stopped"})
	if fired(Check(stuck, testConfig(t)), CheckObserve) == nil {
		t.Fatal("an observer that never saw the leader go was not caught")
	}
}
