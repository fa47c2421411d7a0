package robustness

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Fault kinds the scheduler draws from.
const (
	// FaultRestore takes a snapshot (SAVE), lets the workload run for Dur,
	// then kills redis-server with SIGKILL and restarts it on the same
	// data dir: it comes back with the older data set.
	FaultRestore = "restore"
	// FaultPauseServer stops redis-server with SIGSTOP for Dur.
	FaultPauseServer = "pause-server"
	// FaultStallServer stops redis-server with SIGSTOP for Dur, longer
	// than a lease TTL: every lease lapses on the holders' clocks before
	// the server can expire it.
	FaultStallServer = "stall-server"
	// FaultPauseWorker stops worker Target with SIGSTOP for Dur, longer
	// than a lease TTL.
	FaultPauseWorker = "pause-worker"
	// FaultKillNormal runs CLIENT KILL TYPE normal.
	FaultKillNormal = "kill-normal"
	// FaultKillPubSub runs CLIENT KILL TYPE pubsub.
	FaultKillPubSub = "kill-pubsub"
	// FaultPauseWrites runs CLIENT PAUSE Dur WRITE.
	FaultPauseWrites = "pause-writes"
	// FaultOOM sets maxmemory to the memory in use, under noeviction, for
	// Dur.
	FaultOOM = "oom"
	// FaultBlackhole makes worker Target's proxy stop forwarding its
	// subscriber connection (no RST) for Dur, then resume.
	FaultBlackhole = "blackhole"
	// FaultMigrateSlot (Cluster only) moves the hash slot of one lease
	// shape's keys to another master: an exclusive lock's, a read-write
	// lock's, the semaphore's, the election's or the stream's, the one
	// Target picks among the harness's migration targets. The slot is
	// marked MIGRATING and IMPORTING with no key moved for a tenth of Dur
	// (a script that finds some of its keys missing meets TRYAGAIN), then
	// the keys it held when marked are moved with MIGRATE one at a time,
	// the fence counter last, over half of Dur (a script whose keys are
	// split between the two masters meets TRYAGAIN), then the rest, and
	// for the remaining 0.4 of Dur every key is on the new master while
	// the slot is still migrating (commands meet ASK, and TRYAGAIN when a
	// key is missing there too); then the slot is given to the new master.
	FaultMigrateSlot = "migrate-slot"
	// FaultFailoverLagging (Sentinel only) stops the replica with SIGSTOP
	// for Dur while the master takes writes, kills the master with
	// SIGKILL, resumes the replica and lets the sentinels promote it: the
	// new master lacks the writes of those Dur seconds. The old master is
	// restarted empty and becomes a replica.
	FaultFailoverLagging = "failover-lagging"
	// FaultKillWorker kills the worker that leads the workload's election
	// (worker Target when none does) with SIGKILL, and starts it again
	// with the same configuration Dur later: its leadership, leases and
	// stream entries in flight are left to lapse, and it takes its
	// consumer's pending entries back under its stable name. It is drawn
	// only when asked for (-robustness.faults), so that the CI schedule
	// stays as it is.
	FaultKillWorker = "kill-worker"
)

// OptInFaults lists the fault kinds drawn only when named in
// -robustness.faults.
var OptInFaults = []string{FaultKillWorker}

// AllFaults lists every fault kind of a single server or a Cluster.
var AllFaults = []string{FaultRestore, FaultPauseServer, FaultPauseWorker, FaultKillNormal,
	FaultKillPubSub, FaultPauseWrites, FaultOOM, FaultBlackhole, FaultStallServer}

// ClusterFaults lists the fault kinds of a Cluster.
var ClusterFaults = append(append([]string(nil), AllFaults...), FaultMigrateSlot)

// SentinelFaults lists the fault kinds of a Sentinel group. A restore or a
// long pause of the master would make the sentinels fail over at a moment
// the driver does not know, losing writes unseen by the checkers' epochs;
// FaultFailoverLagging loses them on purpose.
var SentinelFaults = []string{FaultFailoverLagging, FaultPauseWorker, FaultKillNormal,
	FaultKillPubSub, FaultPauseWrites, FaultOOM, FaultBlackhole}

// Fault is one scheduled fault: Kind starts At after the workload starts
// and lasts Dur; Target is a worker index and Node a server index, where
// the kind has one.
type Fault struct {
	Kind   string
	At     time.Duration
	Dur    time.Duration
	Target int
	Node   int
}

// String renders the fault on one line of a schedule.
func (f Fault) String() string {
	s := fmt.Sprintf("%6.1fs %-12s for %.1fs", f.At.Seconds(), f.Kind, f.Dur.Seconds())
	switch f.Kind {
	case FaultPauseWorker, FaultBlackhole:
		s += fmt.Sprintf(" on worker %d", f.Target)
	case FaultKillWorker:
		s += fmt.Sprintf(" on the leader (else worker %d)", f.Target)
	case FaultRestore, FaultPauseServer, FaultStallServer:
		s += fmt.Sprintf(" on node %d", f.Node)
	case FaultMigrateSlot:
		s += fmt.Sprintf(" of target %d to node +%d", f.Target, f.Node)
	}
	return s
}

// Timing is the schedule's time base.
type Timing struct {
	LeaseTTL  time.Duration
	Staleness time.Duration
	Workers   int
	Nodes     int // servers in the deployment (1, or a Cluster's masters)
	// MigrateTargets is the number of slots a migrate-slot may move (see
	// [FaultMigrateSlot]); its Target is drawn below it instead of below
	// Workers. Zero keeps the worker draw.
	MigrateTargets int
}

// duration returns the length of a fault of kind, drawn from r.
func (tm Timing) duration(r *rand.Rand, kind string) time.Duration {
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	switch kind {
	case FaultRestore:
		return between(2*time.Second, 4*time.Second)
	case FaultPauseServer:
		// Longer than the clients' 1s read timeout, shorter than a TTL:
		// releases fail while renewals succeed after it.
		return between(1500*time.Millisecond, tm.LeaseTTL*3/4)
	case FaultPauseWorker, FaultStallServer:
		return between(tm.LeaseTTL+500*time.Millisecond, tm.LeaseTTL+1500*time.Millisecond)
	case FaultPauseWrites:
		return between(1500*time.Millisecond, tm.LeaseTTL*3/4)
	case FaultOOM:
		return between(2*time.Second, 3*time.Second)
	case FaultKillWorker:
		return between(time.Second, 2*time.Second)
	case FaultFailoverLagging, FaultMigrateSlot:
		return between(2*time.Second, 3*time.Second)
	case FaultBlackhole:
		// Long enough that a subscriber outage noticed late leaves reads
		// staler than the bound, whatever the moment of the first missed
		// invalidation.
		return between(tm.Staleness+4*time.Second, tm.Staleness+6*time.Second)
	}
	return 0
}

// Schedule draws a fault schedule from seed: each of kinds once in a
// random order, then random kinds until total is reached, with a quiet
// gap of 2 to 3.5s after each fault.
func Schedule(seed int64, tm Timing, kinds []string, total time.Duration) []Fault {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	var out []Fault
	at := time.Second
	add := func(kind string) {
		f := Fault{Kind: kind, At: at, Dur: tm.duration(r, kind)}
		switch {
		case kind == FaultMigrateSlot && tm.MigrateTargets > 0:
			// One draw, as for a worker: the rest of the schedule
			// stays as the seed made it.
			f.Target = r.IntN(tm.MigrateTargets)
		case tm.Workers > 0:
			f.Target = r.IntN(tm.Workers)
		}
		if tm.Nodes > 1 {
			f.Node = r.IntN(tm.Nodes)
		}
		out = append(out, f)
		at += f.Dur + 2*time.Second + time.Duration(r.Int64N(int64(1500*time.Millisecond)))
	}
	order := append([]string(nil), kinds...)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, k := range order {
		add(k)
	}
	for at < total && len(kinds) > 0 {
		add(kinds[r.IntN(len(kinds))])
	}
	return out
}

// FormatSchedule renders a schedule one fault a line.
func FormatSchedule(s []Fault) string {
	var b strings.Builder
	for _, f := range s {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	return b.String()
}
