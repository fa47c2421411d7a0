package robustness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Names of the checkers, as reported in a [Finding].
const (
	CheckFence      = "fence"          // fences strictly increasing in real-time order (porcupine)
	CheckStoreFence = "store-fence"    // the checking store got one fence from two leases
	CheckExclusion  = "exclusion"      // two honoured leases overlapped
	CheckSession    = "session"        // session fields are linearizable registers (porcupine)
	CheckStale      = "stale-read"     // a near-cache read older than the staleness bound
	CheckEvents     = "event-order"    // events from one publisher out of order or repeated
	CheckImmortal   = "lease-immortal" // a released lease never ended
	CheckHeld       = "lease-held"     // leases still held after the workload stopped
	CheckRelease    = "release-failed" // a Release failed though the server answered
	CheckLockKeys   = "lock-keys"      // lock keys left after the workers stopped and a TTL passed
	CheckIndex      = "session-index"  // a user's session index disagrees with the sessions
	CheckWorker     = "worker"         // a worker failed or its history is unusable
	CheckProgress   = "progress"       // the workload did too little to check anything
)

// Finding is one checker's verdict of a violation.
type Finding struct {
	Checker  string
	Problems []string // the first few violations, described
	Count    int      // how many violations in all
	// Visualization is the path of porcupine's HTML visualization, for
	// the porcupine checkers.
	Visualization string
}

// String renders the finding on several lines: the checker, the count,
// the first problems and the visualization's path.
func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d violation(s)", f.Checker, f.Count)
	for _, p := range f.Problems {
		fmt.Fprintf(&b, "\n    %s", p)
	}
	if f.Visualization != "" {
		fmt.Fprintf(&b, "\n    porcupine visualization: %s", f.Visualization)
	}
	return b.String()
}

// Window is an interval of a fault, in Op time (Unix ns).
type Window struct {
	Name       string
	Start, End int64
	Worker     int // the worker it stopped, for a worker pause
}

// CheckConfig parameterizes [Check].
type CheckConfig struct {
	// Staleness is how long after an invalidation was sent a near cache
	// may still serve the older value.
	Staleness time.Duration
	// ExclusionSlack is how much two honoured leases may overlap before
	// it counts (timer latency after a process resumes).
	ExclusionSlack time.Duration
	// DataLoss are the times the server came back with an older data set:
	// session registers are checked per epoch between them.
	DataLoss []int64
	// Network are the windows of faults that may fail any command (server
	// down or paused, connections killed, writes paused, a worker
	// paused); a Release outside them (plus Grace) must succeed.
	Network []Window
	Grace   time.Duration
	// Paused are the windows in which a worker process was stopped
	// (SIGSTOP): a near cache's staleness counts the reader's running
	// time only, since a stopped process handles no invalidation, and a
	// lease whose holder was stopped is left to the fence checks.
	Paused []Window
	// Lossy are the windows in which a write the server acknowledged may
	// be lost: from a snapshot to the kill that restarts the server from
	// it (or the writes a lagging replica never got). Stream entries
	// appended in them may be gone, like session writes.
	Lossy []Window
	// Killed are the windows from a worker's SIGKILL to its restart
	// (kill-worker): its entries in flight are redelivered.
	Killed []Window
	// ClaimAfter is the stream consumers' claim time: a consumer stopped
	// for two thirds of it may have its entries redelivered.
	ClaimAfter time.Duration
	// Dir receives porcupine visualizations.
	Dir string
	// Timeout bounds each porcupine check.
	Timeout time.Duration
}

const maxProblems = 5

// MaxCommandLife bounds how long after its client gave up on it a command
// may still be run by the server: the longest fault that holds commands
// (a paused server, paused writes) is a few seconds, and a killed server
// or connection drops them. Unbounded, every failed put would stay
// concurrent with the rest of the history and porcupine's search would
// explode.
const MaxCommandLife = 10 * time.Second

type collector struct {
	f Finding
}

func (c *collector) add(format string, args ...any) {
	c.f.Count++
	if len(c.f.Problems) < maxProblems {
		c.f.Problems = append(c.f.Problems, fmt.Sprintf(format, args...))
	}
}

// Check runs every history checker over ops and returns the findings.
func Check(ops []Op, cfg CheckConfig) []Finding {
	var out []Finding
	keep := func(f Finding) {
		if f.Count > 0 {
			out = append(out, f)
		}
	}
	keep(checkFences(ops, cfg))
	keep(checkExclusion(ops, cfg))
	keep(checkSessions(ops, cfg))
	keep(checkStale(ops, cfg))
	keep(checkEvents(ops))
	keep(checkImmortal(ops))
	keep(checkRelease(ops, cfg))
	keep(checkRWExclusion(ops, cfg))
	keep(checkFencesOf(ops, cfg, KindRW, CheckRWFence))
	keep(checkPermits(ops, cfg))
	keep(checkFencesOf(ops, cfg, KindPermit, CheckPermitFence))
	keep(checkLeader(ops, cfg))
	keep(checkTerms(ops))
	keep(checkObserve(ops, cfg))
	keep(checkErrorClass(ops))
	fs, _ := checkStreams(ops, cfg)
	out = append(out, fs...)
	return out
}

func byKind(ops []Op, kind string) []Op {
	var out []Op
	for _, op := range ops {
		if op.Kind == kind {
			out = append(out, op)
		}
	}
	return out
}

func ts(ns int64) string { return time.Unix(0, ns).UTC().Format("15:04:05.000") }

// ---- fences ----

// fenceModel accepts a history of acquires whose fences can be put in an
// order that respects real time and strictly increases.
var fenceModel = porcupine.Model{
	Init: func() any { return int64(0) },
	Step: func(state, _, output any) (bool, any) {
		f := output.(int64)
		return f > state.(int64), f
	},
	DescribeOperation: func(_, output any) string { return fmt.Sprintf("acquire -> fence %d", output) },
	DescribeState:     func(state any) string { return fmt.Sprintf("last fence %d", state) },
}

func checkFences(ops []Op, cfg CheckConfig) Finding {
	c := collector{f: Finding{Checker: CheckFence}}
	per := map[string][]porcupine.Operation{}
	for _, op := range byKind(ops, KindLease) {
		if op.Err != "" || op.Fence == 0 {
			continue
		}
		per[op.Key] = append(per[op.Key], porcupine.Operation{ClientId: op.Worker, Call: op.Call, Return: op.Return, Output: op.Fence, Metadata: op.Lease})
	}
	for _, res := range sortedKeys(per) {
		hist := per[res]
		result, info := porcupine.CheckOperationsVerbose(fenceModel, hist, cfg.Timeout)
		if result == porcupine.Ok {
			continue
		}
		c.add("%s: fences of %d acquires are not strictly increasing in real-time order (%s)%s", res, len(hist), result, fenceRepeats(hist))
		if c.f.Visualization == "" {
			c.f.Visualization = visualize(cfg.Dir, "fence-"+res, fenceModel, info)
		}
	}
	return c.f
}

// fenceRepeats describes the first fence handed out twice, or an acquire
// that got a lower fence than one that completed before it started.
func fenceRepeats(hist []porcupine.Operation) string {
	seen := map[int64]porcupine.Operation{}
	for _, op := range hist {
		f := op.Output.(int64)
		if prev, ok := seen[f]; ok {
			return fmt.Sprintf(": fence %d given to lease %v (acquired %s) and to lease %v (acquired %s)", f, prev.Metadata, ts(prev.Return), op.Metadata, ts(op.Return))
		}
		seen[f] = op
	}
	for _, a := range hist {
		for _, b := range hist {
			if a.Return < b.Call && b.Output.(int64) <= a.Output.(int64) {
				return fmt.Sprintf(": lease %v got fence %d at %s, later lease %v got fence %d at %s", a.Metadata, a.Output, ts(a.Return), b.Metadata, b.Output, ts(b.Return))
			}
		}
	}
	return ""
}

// ---- exclusion ----

func checkExclusion(ops []Op, cfg CheckConfig) Finding {
	c := collector{f: Finding{Checker: CheckExclusion}}
	per := map[string][]Op{}
	for _, op := range byKind(ops, KindLease) {
		if op.Err == "" && op.Live > 0 {
			per[op.Key] = append(per[op.Key], op)
		}
	}
	slack := cfg.ExclusionSlack.Nanoseconds()
	for _, res := range sortedKeys(per) {
		ls := per[res]
		sort.Slice(ls, func(i, j int) bool { return ls[i].Return < ls[j].Return })
		for i, a := range ls {
			for _, b := range ls[i+1:] {
				if b.Return >= a.Live {
					break
				}
				// A holder that was stopped while it held the lease may
				// see Done open for a moment after it resumes, before the
				// deadline's timer has run: the contract covers a holder's
				// own stall with the fence, which the fence checkers and
				// the store check (docs/FAILURES.md, "Lease lost mid-work").
				if stopped(cfg.Paused, a.Worker, a.Return, a.Live) > 0 {
					continue
				}
				if a.Live-b.Return > slack {
					c.add("%s: lease %s (fence %d) honoured from %s to %s, lease %s (fence %d) honoured from %s: overlap %v",
						res, a.Lease, a.Fence, ts(a.Return), ts(a.Live), b.Lease, b.Fence, ts(b.Return), time.Duration(a.Live-b.Return))
				}
			}
		}
	}
	return c.f
}

// ---- sessions ----

type regInput struct {
	Put   bool
	Value string
}

type regState struct {
	Known bool
	Value string
}

// noSession is the value a Get reports when the session was not found: no
// register ever holds it, so it is always a violation (shared sessions
// are never deleted).
const noSession = "\x00no session"

var registerModel = porcupine.Model{
	Init: func() any { return regState{Known: true} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(regState), input.(regInput)
		if in.Put {
			return true, regState{Known: true, Value: in.Value}
		}
		got := output.(string)
		if got == noSession {
			return false, st
		}
		if !st.Known {
			return true, regState{Known: true, Value: got}
		}
		return got == st.Value, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.Put {
			if in.Value == "" {
				return "delete field"
			}
			return "put " + in.Value
		}
		if output.(string) == noSession {
			return "get -> session not found"
		}
		return fmt.Sprintf("get -> %q", output)
	},
	DescribeState: func(state any) string {
		st := state.(regState)
		if !st.Known {
			return "unknown (after data loss)"
		}
		return fmt.Sprintf("%q", st.Value)
	},
}

// unknownModel is registerModel starting from an unknown value: the
// first register state of an epoch after a data loss.
var unknownModel = func() porcupine.Model {
	m := registerModel
	m.Init = func() any { return regState{} }
	return m
}()

func checkSessions(ops []Op, cfg CheckConfig) Finding {
	c := collector{f: Finding{Checker: CheckSession}}
	loss := append([]int64(nil), cfg.DataLoss...)
	sort.Slice(loss, func(i, j int) bool { return loss[i] < loss[j] })
	epoch := func(t int64) int { return sort.Search(len(loss), func(i int) bool { return loss[i] > t }) }
	type part struct {
		key   string
		epoch int
	}
	per := map[part][]porcupine.Operation{}
	// A put invoked (KindSessCall) that never returned, its worker killed
	// or stopped first, may have taken effect: a put of unknown outcome.
	type invocation struct {
		worker int
		call   int64
	}
	returned := map[invocation]bool{}
	for _, op := range byKind(ops, KindSessPut) {
		returned[invocation{op.Worker, op.Call}] = true
	}
	for _, op := range byKind(ops, KindSessCall) {
		if !returned[invocation{op.Worker, op.Call}] {
			op.Kind, op.Err, op.Return = KindSessPut, "no response", op.Call
			ops = append(ops[:len(ops):len(ops)], op)
		}
	}
	for _, op := range ops {
		if op.Kind != KindSessGet && op.Kind != KindSessPut {
			continue
		}
		e := epoch(op.Call)
		p := part{op.Key + "." + op.Field, e}
		pop := porcupine.Operation{ClientId: op.Worker, Call: op.Call, Return: op.Return}
		switch {
		case op.Kind == KindSessPut:
			pop.Input, pop.Output = regInput{Put: true, Value: op.Value}, ""
			if op.Err != "" {
				// The outcome is unknown: the put may take effect until
				// the server has run every command sent before (see
				// MaxCommandLife).
				pop.Return = op.Return + MaxCommandLife.Nanoseconds()
			} else if epoch(op.Return) != e {
				continue
			}
		case op.Err != "":
			continue
		default:
			if epoch(op.Return) != e {
				continue
			}
			out := op.Value
			if !op.Found {
				out = noSession
			}
			pop.Input, pop.Output = regInput{}, out
		}
		per[p] = append(per[p], pop)
	}
	parts := make([]part, 0, len(per))
	for p := range per {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].key != parts[j].key {
			return parts[i].key < parts[j].key
		}
		return parts[i].epoch < parts[j].epoch
	})
	for _, p := range parts {
		m := registerModel
		if p.epoch > 0 {
			m = unknownModel
		}
		result, info := porcupine.CheckOperationsVerbose(m, per[p], cfg.Timeout)
		if result == porcupine.Ok {
			continue
		}
		c.add("session field %s (epoch %d, %d ops): not linearizable (%s)", p.key, p.epoch, len(per[p]), result)
		if c.f.Visualization == "" {
			c.f.Visualization = visualize(cfg.Dir, "session-"+p.key, m, info)
		}
	}
	return c.f
}

// ---- near cache ----

func checkStale(ops []Op, cfg CheckConfig) Finding {
	c := collector{f: Finding{Checker: CheckStale}}
	writes := map[string][]Op{}
	for _, op := range byKind(ops, KindSource) {
		if op.Err == "" && op.Num > 0 {
			writes[op.Key] = append(writes[op.Key], op)
		}
	}
	for _, ws := range writes {
		sort.Slice(ws, func(i, j int) bool { return ws[i].Return < ws[j].Return })
	}
	bound := cfg.Staleness.Nanoseconds()
	var worst time.Duration
	for _, r := range byKind(ops, KindRead) {
		if r.Err != "" {
			continue
		}
		// The oldest write newer than what was read, whose invalidation
		// was sent before the read started.
		for _, w := range writes[r.Key] {
			if w.Return > r.Call {
				break
			}
			if w.Num > r.Num {
				age := time.Duration(r.Call-w.Return) - stopped(cfg.Paused, r.Worker, w.Return, r.Call)
				if age.Nanoseconds() > bound {
					worst = max(worst, age)
					c.add("worker %d read %s = version %d at %s, but version %d was invalidated at %s (%v before; bound %v)",
						r.Worker, r.Key, r.Num, ts(r.Call), w.Num, ts(w.Return), age.Round(time.Millisecond), cfg.Staleness)
				}
				break
			}
		}
	}
	if c.f.Count > 0 {
		c.f.Problems = append(c.f.Problems, fmt.Sprintf("stalest read: %v after the invalidation of a newer version", worst.Round(time.Millisecond)))
	}
	return c.f
}

// stopped returns how much of [from, to] worker spent stopped.
func stopped(paused []Window, worker int, from, to int64) time.Duration {
	var d int64
	for _, p := range paused {
		if p.Worker == worker {
			d += max(0, min(to, p.End)-max(from, p.Start))
		}
	}
	return time.Duration(d)
}

// ---- events ----

func checkEvents(ops []Op) Finding {
	c := collector{f: Finding{Checker: CheckEvents}}
	type pair struct {
		to   int
		from string
	}
	last := map[pair]int64{}
	for _, op := range byKind(ops, KindEvent) { // in each worker's order
		if op.Err != "" {
			c.add("worker %d: %s", op.Worker, op.Err)
			continue
		}
		p := pair{op.Worker, op.Key}
		// A repeat of the last event is not counted: a PUBLISH that timed
		// out is retried by the client and may have been delivered.
		if prev, ok := last[p]; ok && op.Num < prev {
			c.add("worker %d got event %d from worker %s after event %d", op.Worker, op.Num, op.Key, prev)
		}
		last[p] = max(last[p], op.Num)
	}
	return c.f
}

// EventRepeats counts the events a worker received twice in a row from
// one publisher (at-least-once delivery after a retried PUBLISH).
func EventRepeats(ops []Op) int {
	type pair struct {
		to   int
		from string
	}
	last := map[pair]int64{}
	n := 0
	for _, op := range byKind(ops, KindEvent) {
		p := pair{op.Worker, op.Key}
		if prev, ok := last[p]; ok && op.Num == prev {
			n++
		}
		last[p] = op.Num
	}
	return n
}

// ---- leases that do not end ----

func checkImmortal(ops []Op) Finding {
	c := collector{f: Finding{Checker: CheckImmortal}}
	for _, op := range ops {
		switch op.Kind {
		case KindImmortal:
			c.add("worker %d: lease %s on %s (fence %d), Release failed at %s: %s", op.Worker, op.Lease, op.Key, op.Fence, ts(op.Call), op.Err)
		case KindHeld:
			if op.Num > 0 {
				c.add("worker %d: %d lease(s) still held %v after the workload stopped (every one had been released)", op.Worker, op.Num, time.Duration(op.Return-op.Call).Round(time.Millisecond))
			}
		}
	}
	return c.f
}

// ---- releases ----

// lostLease reports whether a Release error says the lease had already
// ended, which a fault elsewhere (a long GC pause, data loss) may cause.
func lostLease(err string) bool {
	return strings.Contains(err, "another holder") || strings.Contains(err, "expired") || strings.Contains(err, "not held")
}

func checkRelease(ops []Op, cfg CheckConfig) Finding {
	c := collector{f: Finding{Checker: CheckRelease}}
	grace := cfg.Grace.Nanoseconds()
	for _, op := range ops {
		if op.Kind != KindLease && op.Kind != KindRW && op.Kind != KindPermit {
			continue
		}
		if op.RelErr == "" || lostLease(op.RelErr) || op.RelCall == 0 {
			continue
		}
		faulted := false
		for _, w := range cfg.Network {
			if op.RelCall <= w.End+grace && op.RelReturn >= w.Start-grace {
				faulted = true
				break
			}
		}
		if !faulted {
			c.add("worker %d: release of lease %s on %s at %s failed with no network fault running: %s", op.Worker, op.Lease, op.Key, ts(op.RelCall), op.RelErr)
		}
	}
	return c.f
}

// ---- helpers ----

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// visualize writes porcupine's visualization of info to dir and returns
// its path, or a note of why not.
func visualize(dir, name string, m porcupine.Model, info porcupine.LinearizationInfo) string {
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(name)+".html")
	if err := porcupine.VisualizePath(m, info, path); err != nil {
		return fmt.Sprintf("(no visualization: %v)", err)
	}
	return path
}
