package robustness

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Names of the checkers of read-write locks, semaphores and elections.
const (
	CheckRWExclusion = "rw-exclusion" // a write lease overlapped another read or write lease
	CheckRWFence     = "rw-fence"     // read and write fences not strictly increasing per resource (porcupine)
	CheckPermits     = "sem-limit"    // more honoured permits at once than the semaphore's limit
	CheckPermitFence = "sem-fence"    // permit fences not strictly increasing per semaphore (porcupine)
	CheckLeader      = "leader"       // two leaders at once
	CheckTerm        = "term"         // a later leader's term not above an earlier one's
)

// honoured returns, per Key, the ops of kind that were acquired and whose
// holder saw the lease live: their honoured interval is [Return, Live],
// as the lease exclusion checker defines it.
func honoured(ops []Op, kind string) map[string][]Op {
	per := map[string][]Op{}
	for _, op := range byKind(ops, kind) {
		if op.Err == "" && op.Live > 0 {
			per[op.Key] = append(per[op.Key], op)
		}
	}
	for _, ls := range per {
		sort.Slice(ls, func(i, j int) bool { return ls[i].Return < ls[j].Return })
	}
	return per
}

// excused reports whether the honoured interval of op is left to the
// fence checks: its holder was stopped while it held it (see
// checkExclusion), or the server forgot it, which a restart from an older
// snapshot does to a lease taken after the snapshot: until its holder's
// next renewal finds it gone, another may take it (docs/FAILURES.md,
// "Redis comes back from an older snapshot"; the fence covers it).
func excused(cfg CheckConfig, op Op) bool {
	if stopped(cfg.Paused, op.Worker, op.Return, op.Live) > 0 {
		return true
	}
	for _, w := range cfg.Lossy {
		if op.Return >= w.Start && op.Return <= w.End && op.Live >= w.End {
			return true
		}
	}
	return false
}

// overlapping calls fn for each pair of honoured leases a, b of one key
// (a acquired first) that overlap by more than the slack, leaving out the
// excused ones.
func overlapping(ls []Op, cfg CheckConfig, fn func(a, b Op)) {
	slack := cfg.ExclusionSlack.Nanoseconds()
	for i, a := range ls {
		if excused(cfg, a) {
			continue
		}
		for _, b := range ls[i+1:] {
			if b.Return >= a.Live {
				break
			}
			if a.Live-b.Return > slack {
				fn(a, b)
			}
		}
	}
}

// checkRWExclusion: on the honoured intervals, no write lease overlaps
// any other lease of its resource, read or write.
func checkRWExclusion(ops []Op, cfg CheckConfig) Finding {
	c := collector{f: Finding{Checker: CheckRWExclusion}}
	per := honoured(ops, KindRW)
	for _, res := range sortedKeys(per) {
		overlapping(per[res], cfg, func(a, b Op) {
			if a.Mode != "write" && b.Mode != "write" {
				return // readers share
			}
			c.add("%s: %s lease %s (fence %d) honoured from %s to %s, %s lease %s (fence %d) honoured from %s: overlap %v",
				res, a.Mode, a.Lease, a.Fence, ts(a.Return), ts(a.Live), b.Mode, b.Lease, b.Fence, ts(b.Return), time.Duration(a.Live-b.Return))
		})
	}
	return c.f
}

// checkFencesOf checks with porcupine that the fences of the acquired ops
// of kind strictly increase per Key in real-time order.
func checkFencesOf(ops []Op, cfg CheckConfig, kind, checker string) Finding {
	c := collector{f: Finding{Checker: checker}}
	per := map[string][]porcupine.Operation{}
	for _, op := range byKind(ops, kind) {
		if op.Err != "" || op.Fence == 0 {
			continue
		}
		per[op.Key] = append(per[op.Key], porcupine.Operation{ClientId: op.Worker, Call: op.Call, Return: op.Return, Output: op.Fence, Metadata: op.Mode + " " + op.Lease})
	}
	for _, res := range sortedKeys(per) {
		hist := per[res]
		result, info := porcupine.CheckOperationsVerbose(fenceModel, hist, cfg.Timeout)
		if result == porcupine.Ok {
			continue
		}
		c.add("%s: fences of %d acquires are not strictly increasing in real-time order (%s)%s", res, len(hist), result, fenceRepeats(hist))
		if c.f.Visualization == "" {
			c.f.Visualization = visualize(cfg.Dir, checker+"-"+res, fenceModel, info)
		}
	}
	return c.f
}

// checkPermits: at no moment do more permits of a semaphore stand
// honoured than its limit (Num). An interval counts from Return to Live
// less the slack; the excused ones are left out.
func checkPermits(ops []Op, cfg CheckConfig) Finding {
	c := collector{f: Finding{Checker: CheckPermits}}
	slack := cfg.ExclusionSlack.Nanoseconds()
	per := honoured(ops, KindPermit)
	for _, res := range sortedKeys(per) {
		type edge struct {
			at    int64
			start bool
			op    int
		}
		ls := per[res]
		var edges []edge
		limit := int64(0)
		for i, op := range ls {
			limit = max(limit, op.Num)
			end := op.Live - slack
			if end <= op.Return || excused(cfg, op) {
				continue
			}
			edges = append(edges, edge{op.Return, true, i}, edge{end, false, i})
		}
		sort.Slice(edges, func(i, j int) bool {
			if edges[i].at != edges[j].at {
				return edges[i].at < edges[j].at
			}
			return !edges[i].start && edges[j].start // ends first
		})
		held := map[int]bool{}
		for _, e := range edges {
			if !e.start {
				delete(held, e.op)
				continue
			}
			held[e.op] = true
			if int64(len(held)) > limit {
				idx := make([]int, 0, len(held))
				for i := range held {
					idx = append(idx, i)
				}
				sort.Ints(idx)
				desc := ""
				for _, i := range idx {
					desc += fmt.Sprintf(" %s(w%d, fence %d, %s-%s)", ls[i].Lease, ls[i].Worker, ls[i].Fence, ts(ls[i].Return), ts(ls[i].Live))
				}
				c.add("%s: %d permits honoured at %s, limit %d:%s", res, len(held), ts(e.at), limit, desc)
			}
		}
	}
	return c.f
}

// checkLeader: on the honoured intervals (from fn's start to the last
// moment the leader saw its leadership live), at most one leader per
// election.
func checkLeader(ops []Op, cfg CheckConfig) Finding {
	c := collector{f: Finding{Checker: CheckLeader}}
	per := honoured(ops, KindLeader)
	for _, e := range sortedKeys(per) {
		overlapping(per[e], cfg, func(a, b Op) {
			c.add("%s: %s (term %d) led from %s to %s, %s (term %d) led from %s: overlap %v",
				e, a.Value, a.Fence, ts(a.Return), ts(a.Live), b.Value, b.Fence, ts(b.Return), time.Duration(a.Live-b.Return))
		})
	}
	return c.f
}

// checkTerms: terms are never handed out twice, and a leader that began
// after an earlier one was last seen leading has the higher term (its
// campaign won after the earlier leadership ended).
func checkTerms(ops []Op) Finding {
	c := collector{f: Finding{Checker: CheckTerm}}
	per := map[string][]Op{}
	for _, op := range byKind(ops, KindLeader) {
		if op.Err == "" && op.Fence != 0 {
			per[op.Key] = append(per[op.Key], op)
		}
	}
	for _, e := range sortedKeys(per) {
		ls := per[e]
		sort.Slice(ls, func(i, j int) bool { return ls[i].Return < ls[j].Return })
		seen := map[int64]Op{}
		for _, op := range ls {
			if prev, ok := seen[op.Fence]; ok {
				c.add("%s: term %d given to %s (leading at %s) and to %s (leading at %s)", e, op.Fence, prev.Value, ts(prev.Return), op.Value, ts(op.Return))
			}
			seen[op.Fence] = op
		}
		for i, a := range ls {
			if a.Live == 0 {
				continue
			}
			for _, b := range ls[i+1:] {
				if a.Live < b.Return && b.Fence <= a.Fence {
					c.add("%s: %s led with term %d until %s, %s led from %s with term %d", e, a.Value, a.Fence, ts(a.Live), b.Value, ts(b.Return), b.Fence)
				}
			}
		}
	}
	return c.f
}

// LeaseSummary counts the read-write leases, permits and leaderships of
// ops that were acquired, and the observed changes of leader, for the
// run's log.
func LeaseSummary(ops []Op) string {
	var reads, writes, permits, leaders, failed, observed int
	for _, op := range ops {
		switch {
		case op.Kind == KindObserve:
			observed++
		case op.Kind != KindRW && op.Kind != KindPermit && op.Kind != KindLeader:
		case op.Err != "":
			failed++
		case op.Kind == KindRW && op.Mode == "write":
			writes++
		case op.Kind == KindRW:
			reads++
		case op.Kind == KindPermit:
			permits++
		default:
			leaders++
		}
	}
	return fmt.Sprintf("read leases %d, write leases %d, permits %d, leaderships %d, failed acquires or campaigns %d, leaders observed %d", reads, writes, permits, leaders, failed, observed)
}

// CheckObserve names the checker of Elector.Observe.
const CheckObserve = "observe" // an observer saw terms go back, or never saw the last leader go

// checkObserve: each worker's observer sees the leaders' terms in
// increasing order (a repeat is allowed: a fresh read after a gap), except
// across a restore, which may bring back an older leadership; and after
// the workload stopped every observer came to see no leader.
func checkObserve(ops []Op, cfg CheckConfig) Finding {
	c := collector{f: Finding{Checker: CheckObserve}}
	last := map[int]Op{}
	for _, op := range byKind(ops, KindObserveTo) {
		if op.Err != "" {
			c.add("worker %d: %s", op.Worker, op.Err)
		}
	}
	for _, op := range byKind(ops, KindObserve) { // in each worker's order
		if op.Fence == 0 {
			continue // no leader
		}
		prev, ok := last[op.Worker]
		last[op.Worker] = op
		if !ok || op.Fence >= prev.Fence {
			continue
		}
		restored := false
		for _, t := range cfg.DataLoss {
			if t >= prev.Call && t <= op.Call {
				restored = true
			}
		}
		if !restored {
			c.add("worker %d saw leader %s (term %d) at %s, then leader %s (term %d) at %s", op.Worker, prev.Value, prev.Fence, ts(prev.Call), op.Value, op.Fence, ts(op.Call))
		}
	}
	return c.f
}
