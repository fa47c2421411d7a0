package robustness

import (
	"fmt"
	"sort"
	"strings"
)

// Names of the stream checkers.
const (
	CheckStreamLost    = "stream-lost"      // an appended entry never delivered to the group, and not lost with a snapshot
	CheckStreamDup     = "stream-duplicate" // an entry delivered again with no crash, pause or fault to explain it
	CheckStreamOverlap = "stream-overlap"   // two handlers ran one entry at once with no stall to explain it
	CheckStreamDrain   = "stream-drain"     // entries left pending or unread, or dead-lettered, after the drain
)

// StreamGroup is the one consumer group of the workload's stream.
const (
	StreamName  = "robust"
	StreamGroup = "g"
)

// StreamStats sums up the stream workload of a history.
type StreamStats struct {
	Appended  int // Appends that returned an ID
	Delivered int // distinct entries delivered
	// Duplicates counts the deliveries after an entry's first, by cause:
	// "crashed" (the previous consumer's process was killed), "paused"
	// (the previous consumer was stopped past the claim time),
	// "fault" (a fault that may fail the acknowledgement ran), "restore"
	// (the server came back with an older data set) and "unexplained".
	Duplicates map[string]int
	// Unrecorded counts the entries first seen in a redelivery: an
	// earlier delivery's handler never finished (its worker was killed),
	// or its reply never reached the consumer (a fault).
	Unrecorded int
	// LostToRestore counts the appended entries the server lost with a
	// restart from an older snapshot (documented data loss).
	LostToRestore int
}

// String renders the stats on one line.
func (s StreamStats) String() string {
	causes := make([]string, 0, len(s.Duplicates))
	for k, n := range s.Duplicates {
		causes = append(causes, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(causes)
	return fmt.Sprintf("stream: %d entries appended, %d delivered, redeliveries [%s], %d first seen in a redelivery, %d lost to a restore", s.Appended, s.Delivered, strings.Join(causes, ", "), s.Unrecorded, s.LostToRestore)
}

// in reports whether t falls in one of ws, widened by grace.
func in(ws []Window, t, grace int64) bool {
	for _, w := range ws {
		if t >= w.Start-grace && t <= w.End+grace {
			return true
		}
	}
	return false
}

// overlaps reports whether [from, to] meets one of ws, widened by grace.
func overlaps(ws []Window, from, to, grace int64) bool {
	for _, w := range ws {
		if from <= w.End+grace && to >= w.Start-grace {
			return true
		}
	}
	return false
}

// checkStreams checks the stream workload: every appended entry was
// delivered to the group (unless the server lost it with a snapshot),
// every redelivery has a cause (a consumer stopped past the claim time, a
// fault that may have failed the acknowledgement, or a restore), no two
// handlers ran one entry at once unless a stall allows it, and the group
// was drained at the end. It returns the findings and the stats.
func checkStreams(ops []Op, cfg CheckConfig) ([]Finding, StreamStats) {
	st := StreamStats{Duplicates: map[string]int{}}
	lost := collector{f: Finding{Checker: CheckStreamLost}}
	dup := collector{f: Finding{Checker: CheckStreamDup}}
	over := collector{f: Finding{Checker: CheckStreamOverlap}}
	drain := collector{f: Finding{Checker: CheckStreamDrain}}
	grace := cfg.Grace.Nanoseconds()

	deliveries := map[string][]Op{}
	for _, op := range byKind(ops, KindDeliver) {
		deliveries[op.Value] = append(deliveries[op.Value], op)
	}
	present := map[string]bool{}
	checkedPresent := false
	for _, op := range ops {
		switch op.Kind {
		case KindPresent:
			present[op.Value], checkedPresent = true, true
		case KindDrain:
			checkedPresent = true
			if op.Err != "" || op.Num != 0 {
				drain.add("group %s after the drain: %d entries pending or unread (%s)", StreamGroup, op.Num, op.Err)
			}
		case KindDeadEntry:
			drain.add("entry %s dead-lettered after %d deliveries (handlers never fail)", op.Value, op.Num)
		}
	}
	for _, op := range byKind(ops, KindAppend) {
		if op.Err != "" || op.Value == "" {
			continue
		}
		st.Appended++
		if len(deliveries[op.Value]) > 0 {
			continue
		}
		switch {
		case !present[op.Value] && in(cfg.Lossy, op.Return, 0):
			st.LostToRestore++
		case present[op.Value]:
			lost.add("entry %s (appended by worker %d at %s) is in the stream but was never delivered", op.Value, op.Worker, ts(op.Return))
		case checkedPresent:
			lost.add("entry %s (appended by worker %d at %s) was never delivered and is gone from the stream, with no restore after it", op.Value, op.Worker, ts(op.Return))
		default:
			lost.add("entry %s (appended by worker %d at %s) was never delivered", op.Value, op.Worker, ts(op.Return))
		}
	}
	claimStall := (cfg.ClaimAfter * 2 / 3).Nanoseconds()
	ids := sortedKeys(deliveries)
	for _, id := range ids {
		ds := deliveries[id]
		st.Delivered++
		sort.Slice(ds, func(i, j int) bool { return ds[i].Call < ds[j].Call })
		if ds[0].Num > 1 {
			st.Unrecorded++
		}
		for i := 1; i < len(ds); i++ {
			prev, d := ds[i-1], ds[i]
			switch {
			case stopped(cfg.Killed, prev.Worker, prev.Call, d.Call) > 0:
				st.Duplicates["crashed"]++
			case stopped(cfg.Paused, prev.Worker, prev.Call, d.Call).Nanoseconds() > max(claimStall-1, 0):
				st.Duplicates["paused"]++
			case overlaps(cfg.Network, prev.Call, d.Call, grace):
				st.Duplicates["fault"]++
			case func() bool {
				for _, t := range cfg.DataLoss {
					if t >= prev.Call-grace && t <= d.Call {
						return true
					}
				}
				return false
			}():
				st.Duplicates["restore"]++
			default:
				st.Duplicates["unexplained"]++
				dup.add("entry %s delivered to worker %d at %s (delivery %d) and again to worker %d at %s (delivery %d), with no stop, fault or restore between",
					id, prev.Worker, ts(prev.Call), prev.Num, d.Worker, ts(d.Call), d.Num)
			}
		}
		for i, a := range ds {
			for _, b := range ds[i+1:] {
				if b.Call >= a.Return {
					break
				}
				// A consumer stopped, or a server stalled, for two thirds
				// of the claim time may lose its entry to a sibling while
				// its handler still runs (docs/STREAMS.md).
				if stopped(cfg.Paused, a.Worker, a.Call, a.Return) > 0 || overlaps(cfg.Network, a.Call, a.Return, grace) {
					continue
				}
				over.add("entry %s run by worker %d from %s to %s and by worker %d from %s", id, a.Worker, ts(a.Call), ts(a.Return), b.Worker, ts(b.Call))
			}
		}
	}
	var out []Finding
	for _, c := range []collector{lost, dup, over, drain} {
		if c.f.Count > 0 {
			out = append(out, c.f)
		}
	}
	return out, st
}

// StreamSummary returns the stream stats of ops, for the run's log.
func StreamSummary(ops []Op, cfg CheckConfig) StreamStats {
	_, st := checkStreams(ops, cfg)
	return st
}
