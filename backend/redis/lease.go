package redis

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

// lock is one lease.
type lock struct {
	lk        *Locker
	resource  string
	key       string
	token     string
	fence     int64
	keys      []string // {key}, for the scripts
	tokenArg  any      // token, boxed once
	autoRenew bool
	done      chan struct{}

	opMu sync.Mutex // serializes Release, Extend and renewals (held across their round trip)

	mu       sync.Mutex // guards the fields below; never held across a round trip
	ttl      time.Duration
	deadline time.Time
	timer    *time.Timer // closes Done at the deadline; made by the first Done call
	released bool        // released by this Lock
	ended    bool        // Done is closed

	gone  atomic.Bool  // ended, readable without mu
	until atomic.Int64 // the deadline as time since lk.epoch, readable without mu
}

// live reports whether the local deadline is still ahead.
func (l *lock) live() bool { return time.Since(l.lk.epoch) < time.Duration(l.until.Load()) }

// Resource returns the name the lease is on.
func (l *lock) Resource() string { return l.resource }

// Token returns the lease's secret token.
func (l *lock) Token() string { return l.token }

// Fence returns the lease's fencing token.
func (l *lock) Fence() int64 { return l.fence }

// Done returns a channel closed when the lease ends: released, found
// lost, or its local deadline passed without renewal.
func (l *lock) Done() <-chan struct{} {
	l.mu.Lock()
	if l.timer == nil && !l.ended {
		if d := time.Until(l.deadline); d > 0 {
			l.timer = time.AfterFunc(d, l.deadlinePassed)
		} else {
			l.finishLocked()
		}
	}
	l.mu.Unlock()
	return l.done
}

// finish closes Done and takes the lease off the instance's books.
func (l *lock) finish() {
	l.mu.Lock()
	l.finishLocked()
	l.mu.Unlock()
}

func (l *lock) finishLocked() {
	if l.ended {
		return
	}
	l.ended = true
	l.gone.Store(true)
	close(l.done)
	if l.timer != nil {
		l.timer.Stop()
	}
	l.lk.forget(l)
}

// deadlinePassed runs when the local deadline passes without renewal.
func (l *lock) deadlinePassed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ended && !time.Now().Before(l.deadline) {
		l.finishLocked()
	}
}

// setDeadlineLocked moves the local deadline to start + ttl.
func (l *lock) setDeadlineLocked(start time.Time, ttl time.Duration) {
	l.ttl = ttl
	l.deadline = start.Add(ttl)
	l.until.Store(int64(l.deadline.Sub(l.lk.epoch)))
	if !l.ended && l.timer != nil {
		l.timer.Reset(time.Until(l.deadline))
	}
}

func (l *lock) heldErr(op string, code int64) error {
	if code == 0 {
		return fmt.Errorf("%w: coord/redis: %s lease on %q", coord.ErrExpired, op, l.resource)
	}
	return fmt.Errorf("%w: coord/redis: %s lease on %q: another holder has it", coord.ErrNotHeld, op, l.resource)
}

// Release ends the lease and wakes a waiter. May return
// [coord.ErrNotHeld] or [coord.ErrExpired], or, when Redis could not be
// reached (or ctx ended first), [coord.ErrUnavailable] or ctx's error:
// the lease is given up all the same, whatever Release returns. It is no
// longer renewed, Done closes and Held no longer lists it, and the
// watchdog retries the release in the background until it succeeds, the
// lease has expired, or the Backend closes.
func (l *lock) Release(ctx context.Context) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if l.isReleased() {
		return nil
	}
	if w, yield := l.lk.handoffTarget(l.resource); w != nil {
		return l.handOff(ctx, w, yield)
	}
	b := l.lk.b
	ch := b.keys.wakeChannel(l.key)
	n, err := b.batch.run(ctx, b.sc.lockRelease, l.releaseKeys(), l.tokenArg, ch, b.idArg, b.handoffMs, b.sub.ownArg(ch)).Int64()
	if err := b.fail(ctx, "release", err); err != nil {
		l.giveUp()
		return err
	}
	l.mu.Lock()
	l.released = l.released || n == 1
	l.finishLocked()
	l.mu.Unlock()
	if n == 1 {
		l.lk.localWake(l.resource)
		return nil
	}
	return l.heldErr("release", n)
}

// giveUp ends a lease whose release could not be confirmed: it is no
// longer renewed, Done closes and Held no longer lists it, and the
// watchdog releases it in Redis (see orphan). l.opMu is held.
func (l *lock) giveUp() {
	l.mu.Lock()
	l.released = true
	l.finishLocked()
	l.lk.releaseLater(l)
	l.mu.Unlock()
}

func (l *lock) isReleased() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.released
}

// Extend sets the lease to end ttl from now, if it is still held.
func (l *lock) Extend(ctx context.Context, ttl time.Duration) error {
	if err := driver.ValidateTTL("lock TTL", ttl); err != nil {
		return err
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if l.isReleased() {
		return fmt.Errorf("%w: coord/redis: extend lease on %q: released", coord.ErrNotHeld, l.resource)
	}
	b := l.lk.b
	start := time.Now()
	n, err := b.batch.run(ctx, b.sc.lockExtend, l.keys, l.tokenArg, ttl.Milliseconds()).Int64()
	if err := b.fail(ctx, "extend", err); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n == 1 {
		l.setDeadlineLocked(start, ttl)
		return nil
	}
	l.finishLocked()
	return l.heldErr("extend", n)
}

// TTL returns the time left on the lease as Redis sees it.
func (l *lock) TTL(ctx context.Context) (time.Duration, error) {
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return 0, fmt.Errorf("%w: coord/redis: TTL of lease on %q: released", coord.ErrNotHeld, l.resource)
	}
	b := l.lk.b
	res, err := b.sc.lockTTL.Run(ctx, b.client, l.keys, l.tokenArg).Int64Slice()
	if err := b.fail(ctx, "lease TTL", err); err != nil {
		return 0, err
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("%w: coord/redis: lease TTL: unexpected reply %v", coord.ErrUnavailable, res)
	}
	if res[0] != 1 {
		l.finish()
		return 0, l.heldErr("TTL of", res[0])
	}
	return time.Duration(max(res[1], 0)) * time.Millisecond, nil
}

// renew extends an auto-renewed lease for the watchdog. It returns when
// to renew next, and false when the lease is gone for good.
func (l *lock) renew(ctx context.Context) (time.Time, bool) {
	if !l.opMu.TryLock() {
		// A Release or Extend is under way: look again shortly.
		return time.Now().Add(10 * time.Millisecond), true
	}
	defer l.opMu.Unlock()
	ttl, deadline, ok := l.renewable()
	if !ok {
		return time.Time{}, false
	}
	b := l.lk.b
	// A renewal is worth waiting for until the local deadline. l.mu is not
	// held meanwhile, so the deadline closes Done whatever the network does.
	rctx, cancel := context.WithTimeout(ctx, max(time.Until(deadline), 10*time.Millisecond))
	defer cancel()
	start := time.Now()
	n, err := b.sc.lockExtend.Run(rctx, b.client, l.keys, l.tokenArg, ttl.Milliseconds()).Int64()
	return l.renewed(ctx, rctx, start, ttl, n, err)
}

// renewable returns the lease's TTL and local deadline, and false when
// it is not to be renewed: ended, released, or past its local deadline
// (it then counts as lost: another holder may have it).
func (l *lock) renewable() (time.Duration, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended || l.released {
		return 0, time.Time{}, false
	}
	if !l.live() {
		l.finishLocked()
		return 0, time.Time{}, false
	}
	return l.ttl, l.deadline, true
}

// renewed applies the outcome (n, err) of a renewal sent at start with
// rctx, and returns what renew returns.
func (l *lock) renewed(ctx, rctx context.Context, start time.Time, ttl time.Duration, n int64, err error) (time.Time, bool) {
	b := l.lk.b
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended || l.released {
		if err == nil && n == 1 && !l.released {
			// Declared lost while the renewal was on its way, which then
			// succeeded: nobody uses the lease now, so let it go.
			l.lk.addOrphan(l.key, l.token, ttl)
		}
		return time.Time{}, false
	}
	if err != nil {
		if ctx.Err() != nil {
			return time.Time{}, false
		}
		_ = b.fail(rctx, "renew", err)
		b.opts.Logger.Warn("coord/redis: lease renewal failed; retrying", "resource_tag", secret.Redact(l.resource), "err", err)
		return time.Now().Add(max(ttl/10, 10*time.Millisecond)), true
	}
	b.setConnState(coord.Connected)
	if n != 1 {
		b.opts.Logger.Error("coord/redis: auto-renewed lease lost", "resource_tag", secret.Redact(l.resource))
		l.finishLocked()
		return time.Time{}, false
	}
	l.setDeadlineLocked(start, ttl)
	return start.Add(ttl / 3), true
}
