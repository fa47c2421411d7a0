package robustness

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cgn-bot/coord"
)

// driverID is the worker number of the ops the driver records.
const driverID = -1

// streamState reads, after the workers drained the group and stopped,
// what the server holds of the workload's stream: every entry
// (KindPresent), the group's pending and unread entries (KindDrain) and
// the dead letters (KindDeadEntry). The ops are also written to
// history-server.jsonl, so that TestRecheck sees them.
func (h *harness) streamState() []Op {
	t := h.t
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := h.admin.Streams()
	now := Now()
	var ops []Op
	drain := Op{Kind: KindDrain, Key: StreamGroup, Call: now}
	info, err := st.Info(ctx, StreamName)
	if err != nil {
		drain.Err = "Info: " + err.Error()
	} else {
		found := false
		for _, g := range info.Groups {
			if g.Name == StreamGroup {
				found = true
				drain.Num = g.Pending + g.Lag
				if g.Pending != 0 || g.Lag != 0 {
					drain.Err = fmt.Sprintf("pending %d, unread %d", g.Pending, g.Lag)
				}
			}
		}
		if !found {
			drain.Err = "no group " + StreamGroup
		}
		if info.DeadLetters > 0 {
			dead, err := st.DeadLetters(ctx, StreamName, int(min(info.DeadLetters, coord.MaxStreamCount)))
			if err != nil {
				drain.Err += "; DeadLetters: " + err.Error()
			}
			for _, e := range dead {
				ops = append(ops, Op{Kind: KindDeadEntry, Value: e.ID, Num: int64(e.Deliveries), Call: now, Return: now})
			}
		}
	}
	entries, err := st.Range(ctx, StreamName, "-", coord.MaxStreamCount)
	if err != nil {
		drain.Err += "; Range: " + err.Error()
	}
	for _, e := range entries {
		ops = append(ops, Op{Kind: KindPresent, Value: e.ID, Call: now, Return: now})
	}
	drain.Return = Now()
	ops = append(ops, drain)
	rec, err := NewRecorder(filepath.Join(h.dir, "history-server.jsonl"), driverID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ops {
		ops[i].Worker = driverID
		rec.Add(ops[i])
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	return ops
}

// leaseInvariants adds to f the read-write resources, semaphores and
// election still held with every worker stopped (polled for up to 2s).
func (h *harness) leaseInvariants(ctx context.Context, f *Finding) {
	held := func(what string, check func() (string, error)) {
		desc, err := check()
		for i := 0; i < 20 && (err != nil || desc != ""); i++ {
			time.Sleep(100 * time.Millisecond) // polled for up to 2s
			desc, err = check()
		}
		if err != nil || desc != "" {
			f.Count++
			f.Problems = append(f.Problems, fmt.Sprintf("%s still held: %s (err %v) with every worker stopped for over %v", what, desc, err, 2*leaseTTL))
		}
	}
	for _, res := range h.cfg.RWResources {
		held("read-write lock "+res, func() (string, error) {
			s, err := h.admin.RWLocker().State(ctx, res)
			if err == nil && (s.Readers > 0 || s.Writer) {
				return fmt.Sprintf("%+v", s), nil
			}
			return "", err
		})
	}
	for _, res := range h.cfg.Semaphores {
		held("semaphore "+res, func() (string, error) {
			n, err := h.admin.Semaphores().Holders(ctx, res)
			if err == nil && n > 0 {
				return fmt.Sprintf("%d permits", n), nil
			}
			return "", err
		})
	}
	if e := h.cfg.Election; e != "" {
		held("election "+e, func() (string, error) {
			li, err := h.admin.Elector().Leader(ctx, e)
			if errors.Is(err, coord.ErrNotFound) {
				return "", nil
			}
			if err == nil {
				return fmt.Sprintf("leader %s, term %d", li.Identity, li.Term), nil
			}
			return "", err
		})
	}
}

// killWorker kills the worker that leads the election (f.Target when
// none does, or the leader is unknown) with SIGKILL, waits f.Dur and
// starts it again with the same configuration: its history goes on in the
// same file, its stream consumer under the same name.
func (h *harness) killWorker(f Fault) {
	t := h.t
	target := f.Target
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	li, err := h.admin.Elector().Leader(ctx, h.cfg.Election)
	cancel()
	var i int
	if _, serr := fmt.Sscanf(li.Identity, "w%d", &i); err == nil && serr == nil && i >= 0 && i < len(h.workers) {
		target = i
	}
	old := h.workers[target]
	start := time.Now()
	if err := old.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("worker %d did not die within 10s of SIGKILL", target)
	}
	time.Sleep(f.Dur) // the schedule's clock: the worker stays down this long
	nw := startWorker(t, h.bin, h.dir, target, h.wcfgs[target])
	nw.expect(t, "ready", 30*time.Second)
	h.workers[target] = nw
	end := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.killed = append(h.killed, Window{Name: f.Kind, Start: start.UnixNano(), End: end.UnixNano(), Worker: target})
	h.network = append(h.network, Window{Name: f.Kind, Start: start.UnixNano(), End: end.UnixNano(), Worker: target})
	leader := "no leader known"
	if err == nil {
		leader = fmt.Sprintf("leader %s (term %d)", li.Identity, li.Term)
	}
	h.notes = append(h.notes, fmt.Sprintf("kill-worker at %s: killed worker %d (%s), restarted after %v", ts(start.UnixNano()), target, leader, end.Sub(start).Round(time.Millisecond)))
}
