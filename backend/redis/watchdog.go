package redis

import (
	"context"
	"time"

	"github.com/cgn-bot/coord/internal/secret"
)

// orphan is a lease this instance may hold without a Lock for it: an
// acquire whose reply was lost (a timeout while the server was stalled
// may still run the script later), or a lease whose Release failed. The
// watchdog releases it: it retries the compare-and-delete until it
// releases the lease, or, for an acquire, until a TTL has passed since
// the server first answered one of its tries; for a lease that was held,
// any answer ends it (the token cannot hold the lease again), and so does
// the time by which the lease has expired in Redis.
type orphan struct {
	kind     *leaseKind
	keys     []string // the kind's script keys
	relArgs  []any    // the release script's arguments after the token
	token    string
	resource string    // set for a lease that was held: its local waiters are woken
	until    time.Time // for a lease that was held: it has expired in Redis by then
	ttl      time.Duration
	next     time.Time     // when to try next
	backoff  time.Duration // between tries
	answered time.Time     // when the server first answered; zero before
}

// addOrphan records an acquire of an exclusive lease of unknown outcome
// for the watchdog.
func (lk *Locker) addOrphan(key, token string, ttl time.Duration) {
	lk.addOrphanOf(&orphan{kind: lk.excl, keys: []string{key}, relArgs: lk.exclRelArgs(key), token: token, ttl: ttl})
}

// addLeaseOrphan records an acquire of unknown outcome of a lease of kind
// for the watchdog.
func (lk *Locker) addLeaseOrphan(kind *leaseKind, keys []string, relArgs []any, token string, ttl time.Duration) {
	lk.addOrphanOf(&orphan{kind: kind, keys: keys, relArgs: relArgs, token: token, ttl: ttl})
}

// releaseLater records a held lease whose Release failed, for the
// watchdog to release. l.mu is held.
func (lk *Locker) releaseLater(l *lock) {
	// A renewal sent before the local deadline moved the expiry in Redis
	// at most a TTL past it.
	until := l.deadline.Add(l.ttl)
	lk.addOrphanOf(&orphan{kind: l.kind, keys: l.keys, relArgs: l.releaseArgs(), token: l.token, resource: l.resource, ttl: l.ttl, until: until})
}

func (lk *Locker) addOrphanOf(o *orphan) {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if lk.stopped {
		return
	}
	o.next, o.backoff = time.Now(), 20*time.Millisecond
	lk.orphans[o.token] = o
	lk.startWatchdogLocked()
	select {
	case lk.reapKick <- struct{}{}:
	default:
	}
}

// reap tries to release an orphan; it reports whether to keep it.
func (lk *Locker) reap(ctx context.Context, o *orphan) bool {
	b := lk.b
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n, err := o.kind.release.Run(rctx, b.client, o.keys, append([]any{o.token}, o.relArgs...)...).Int64()
	now := time.Now()
	switch {
	case err != nil:
		if !o.until.IsZero() && now.After(o.until) {
			return false // the lease has expired in Redis
		}
	case n == 1 && o.resource != "":
		b.opts.Logger.Info("coord/redis: released a lease whose Release had failed", "resource_tag", secret.Redact(o.resource))
		o.kind.woken(o.resource)
		return false
	case n == 1:
		b.opts.Logger.Info("coord/redis: released a lease whose acquire reply was lost")
		return false
	case o.resource != "":
		return false // expired, or someone else holds it: not ours any more
	case o.answered.IsZero():
		o.answered = now
	case now.Sub(o.answered) > o.ttl:
		return false
	}
	o.next = now.Add(o.backoff)
	o.backoff = min(2*o.backoff, 500*time.Millisecond)
	return true
}

// startWatchdogLocked starts the watchdog of the Locker. lk.mu is held.
func (lk *Locker) startWatchdogLocked() {
	if lk.wdRunning {
		return
	}
	lk.wdRunning = true
	ctx, cancel := context.WithCancel(context.Background())
	lk.wdCancel = cancel
	lk.wdDone = make(chan struct{})
	go lk.watchdog(ctx)
}

// watchdog renews every auto-renewed lease at a third of its TTL, one
// goroutine for all of them, beside a goroutine that releases orphans,
// so that tries of orphans on a stalled server never delay a renewal.
func (lk *Locker) watchdog(ctx context.Context) {
	defer close(lk.wdDone)
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		lk.reaper(ctx)
	}()
	defer func() { <-reaped }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, next := lk.dueRenewals(time.Now())
		if len(due) > 0 {
			if !lk.renewAll(ctx, due) {
				return
			}
			continue
		}
		if !sleepUntil(ctx, timer, next, lk.kick) {
			return
		}
	}
}

// reaper releases orphans until ctx ends.
func (lk *Locker) reaper(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, next := lk.dueOrphans(time.Now())
		if len(due) > 0 {
			if !lk.reapAll(ctx, due) {
				return
			}
			continue
		}
		if !sleepUntil(ctx, timer, next, lk.reapKick) {
			return
		}
	}
}

// dueRenewals returns the leases to renew by now, and when the next of
// the others is due (within the hour).
func (lk *Locker) dueRenewals(now time.Time) (due []*lock, next time.Time) {
	next = now.Add(time.Hour)
	lk.mu.Lock()
	defer lk.mu.Unlock()
	for l, at := range lk.renew {
		if !at.After(now) {
			due = append(due, l)
		} else if at.Before(next) {
			next = at
		}
	}
	return due, next
}

// dueOrphans returns the orphans to try by now, and when the next of the
// others is due (within the hour).
func (lk *Locker) dueOrphans(now time.Time) (due []*orphan, next time.Time) {
	next = now.Add(time.Hour)
	lk.mu.Lock()
	defer lk.mu.Unlock()
	for _, o := range lk.orphans {
		if !o.next.After(now) {
			due = append(due, o)
		} else if o.next.Before(next) {
			next = o.next
		}
	}
	return due, next
}

// reapAll tries each orphan once, forgetting those done with; false when
// ctx ended.
func (lk *Locker) reapAll(ctx context.Context, orphans []*orphan) bool {
	for _, o := range orphans {
		if ctx.Err() != nil {
			return false
		}
		if !lk.reap(ctx, o) {
			lk.mu.Lock()
			delete(lk.orphans, o.token)
			lk.mu.Unlock()
		}
	}
	return true
}

// renewAll renews each lease once and books its next renewal, unless it
// is gone or left the renewal list meanwhile; false when ctx ended.
func (lk *Locker) renewAll(ctx context.Context, due []*lock) bool {
	for _, l := range due {
		if ctx.Err() != nil {
			return false
		}
		at, keep := l.renew(ctx)
		lk.mu.Lock()
		if _, ok := lk.renew[l]; ok && keep {
			lk.renew[l] = at
		} else {
			delete(lk.renew, l)
		}
		lk.mu.Unlock()
	}
	return true
}

// sleepUntil waits for next or a kick; false when ctx ended.
func sleepUntil(ctx context.Context, timer *time.Timer, next time.Time, kick <-chan struct{}) bool {
	timer.Reset(time.Until(next))
	select {
	case <-timer.C:
	case <-kick:
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	case <-ctx.Done():
		return false
	}
	return true
}
