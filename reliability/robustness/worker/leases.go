package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/reliability/robustness"
)

// ---- read-write locks, semaphores, elections ----

// hold keeps the lease l for two or three short steps, checking before
// each that it is still live, and returns the last time it was seen live
// (the end of its honoured interval).
func (w *worker) hold(ctx context.Context, l coord.Lock) (live int64) {
	n := 2 + w.rng.IntN(2)
	for i := 0; i < n; i++ {
		select {
		case <-l.Done():
			return live
		case <-ctx.Done():
			return live
		default:
		}
		live = robustness.Now()
		pause(ctx, time.Duration(30+w.rng.IntN(70))*time.Millisecond)
	}
	return live
}

// leaseOnce acquires a lease with acquire (auto-renew, the workload's TTL
// and a wait), holds it, releases it and records an op of kind.
func (w *worker) leaseOnce(ctx context.Context, op robustness.Op, acquire func(ctx context.Context, opts ...coord.LockOption) (coord.Lock, error)) {
	op.Lease = w.leaseName()
	actx, cancel := context.WithTimeout(ctx, 2*w.cfg.LeaseTTL)
	op.Call = robustness.Now()
	l, err := acquire(actx, coord.WithTTL(w.cfg.LeaseTTL), coord.WithAutoRenew(), coord.WithWait(waitDelay))
	op.Return = robustness.Now()
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			op.Err = errString(err)
			w.rec.Add(op)
		}
		pause(ctx, 50*time.Millisecond)
		return
	}
	op.Fence = l.Fence()
	op.Live = w.hold(ctx, l)
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	op.RelCall = robustness.Now()
	rerr := l.Release(rctx)
	op.RelReturn = robustness.Now()
	rcancel()
	op.RelErr = errString(rerr)
	if rerr != nil {
		w.watchEnd(op.Lease, op.Key, l)
	}
	w.rec.Add(op)
	pause(ctx, time.Duration(w.rng.IntN(50))*time.Millisecond)
}

// rwLoop takes read leases (two in three) and write leases on the
// read-write resources.
func (w *worker) rwLoop(ctx context.Context) {
	rw := w.b.RWLocker()
	for ctx.Err() == nil {
		res := pick(w, w.cfg.RWResources)
		if w.rng.IntN(3) == 0 {
			w.leaseOnce(ctx, robustness.Op{Kind: robustness.KindRW, Mode: "write", Key: res}, func(ctx context.Context, opts ...coord.LockOption) (coord.Lock, error) {
				return rw.Lock(ctx, res, opts...)
			})
		} else {
			w.leaseOnce(ctx, robustness.Op{Kind: robustness.KindRW, Mode: "read", Key: res}, func(ctx context.Context, opts ...coord.LockOption) (coord.Lock, error) {
				return rw.RLock(ctx, res, opts...)
			})
		}
	}
}

// semLoop takes permits of the semaphores.
func (w *worker) semLoop(ctx context.Context) {
	sem := w.b.Semaphores()
	for ctx.Err() == nil {
		res := pick(w, w.cfg.Semaphores)
		limit := w.cfg.SemLimit
		w.leaseOnce(ctx, robustness.Op{Kind: robustness.KindPermit, Key: res, Num: int64(limit)}, func(ctx context.Context, opts ...coord.LockOption) (coord.Lock, error) {
			return sem.Acquire(ctx, res, limit, opts...)
		})
	}
}

// electLoop campaigns with coord.RunElected; each leadership is held for
// a few steps (checking it is live before each), recorded, then resigned.
func (w *worker) electLoop(ctx context.Context) {
	identity := fmt.Sprintf("w%d", w.cfg.ID)
	for ctx.Err() == nil {
		err := coord.RunElected(ctx, w.b.Elector(), w.cfg.Election, identity, func(fctx context.Context, l coord.Leadership) error {
			op := robustness.Op{Kind: robustness.KindLeader, Key: w.cfg.Election, Value: l.Identity(), Lease: w.leaseName(), Fence: l.Fence()}
			op.Call = robustness.Now()
			op.Return = op.Call
			n := 3 + w.rng.IntN(5)
		steps:
			for i := 0; i < n; i++ {
				select {
				case <-l.Done():
					break steps
				case <-fctx.Done():
					break steps
				default:
				}
				op.Live = robustness.Now()
				pause(fctx, time.Duration(50+w.rng.IntN(100))*time.Millisecond)
			}
			w.rec.Add(op)
			return nil
		}, coord.WithTTL(w.cfg.LeaseTTL))
		if ctx.Err() != nil {
			return
		}
		w.rec.Add(robustness.Op{Kind: robustness.KindLeader, Key: w.cfg.Election, Value: identity, Call: robustness.Now(), Return: robustness.Now(), Err: "RunElected: " + errString(err)})
		pause(ctx, 100*time.Millisecond)
	}
}

// ---- streams ----

type entryPayload struct {
	W   int   `json:"w"`
	Seq int64 `json:"seq"`
}

// appendLoop appends entries to the stream.
func (w *worker) appendLoop(ctx context.Context) {
	st := w.b.Streams()
	var seq int64
	for ctx.Err() == nil {
		seq++
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		op := robustness.Op{Kind: robustness.KindAppend, Num: seq, Call: robustness.Now()}
		id, err := st.Append(octx, robustness.StreamName, entryPayload{W: w.cfg.ID, Seq: seq})
		op.Return, op.Value, op.Err = robustness.Now(), id, errString(err)
		cancel()
		if ctx.Err() != nil && err != nil {
			break // cancelled by the stop, not by a fault
		}
		w.rec.Add(op)
		pause(ctx, time.Duration(80+w.rng.IntN(40))*time.Millisecond)
	}
}

// consume subscribes to the stream in the group under the worker's
// stable consumer name; each delivery is recorded when its handler
// finishes (it works 20–80ms, so that the consumers are busy about half
// the time and faults find handlers running).
func (w *worker) consume(ctx context.Context) (coord.Subscription, error) {
	return w.b.Streams().Consume(ctx, robustness.StreamName, robustness.StreamGroup, func(fctx context.Context, e coord.StreamEntry) error {
		op := robustness.Op{Kind: robustness.KindDeliver, Value: e.ID, Num: int64(e.Deliveries), Call: robustness.Now()}
		var p entryPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			op.Err = "undecodable entry: " + err.Error()
		}
		pause(context.WithoutCancel(fctx), time.Duration(20+w.rng.IntN(60))*time.Millisecond)
		op.Return = robustness.Now()
		w.rec.Add(op)
		return nil
	}, coord.ConsumerName(fmt.Sprintf("w%d", w.cfg.ID)), coord.ClaimAfter(w.cfg.ClaimAfter))
}

// drain waits, after the appends stopped, for the group to have nothing
// pending or unread (at most DrainTimeout), then ends the subscription.
func (w *worker) drain(sub coord.Subscription) {
	deadline := time.Now().Add(w.cfg.DrainTimeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := w.b.Streams().Info(ctx, robustness.StreamName)
		cancel()
		if err == nil && drained(info) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polled until the deadline
	}
	sub.Unsubscribe()
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
	}
}

// drained reports whether the workload's group has no entry pending or
// unread.
func drained(info coord.StreamInfo) bool {
	for _, g := range info.Groups {
		if g.Name == robustness.StreamGroup {
			return g.Pending == 0 && g.Lag == 0
		}
	}
	return false
}

// observer follows the election with Elector.Observe.
type observer struct {
	sub  coord.Subscription
	mu   sync.Mutex
	last coord.LeaderInfo
}

// observe records every call of the Observe fn.
func (w *worker) observe(ctx context.Context) (*observer, error) {
	o := &observer{}
	sub, err := w.b.Elector().Observe(ctx, w.cfg.Election, func(li coord.LeaderInfo) {
		now := robustness.Now()
		o.mu.Lock()
		o.last = li
		o.mu.Unlock()
		w.rec.Add(robustness.Op{Kind: robustness.KindObserve, Key: w.cfg.Election, Value: li.Identity, Fence: li.Term, Call: now, Return: now})
	})
	if err != nil {
		return nil, err
	}
	o.sub = sub
	return o, nil
}

// settle waits, after the workload stopped (every campaigner resigned or
// let its leadership lapse), for the observer to see no leader, for at
// most two TTLs and a second, and records what it saw last.
func (w *worker) settle(o *observer) {
	call := robustness.Now()
	deadline := time.Now().Add(2*w.cfg.LeaseTTL + time.Second)
	last := func() coord.LeaderInfo {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.last
	}
	for last().InstanceID != "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polled until the deadline
	}
	li := last()
	op := robustness.Op{Kind: robustness.KindObserveTo, Key: w.cfg.Election, Value: li.Identity, Fence: li.Term, Call: call, Return: robustness.Now()}
	if li.InstanceID != "" {
		op.Err = fmt.Sprintf("still sees leader %s (term %d) %v after the workload stopped", li.Identity, li.Term, time.Duration(op.Return-call).Round(time.Millisecond))
	}
	w.rec.Add(op)
}
