package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

// leaseKind is what sets one kind of lease apart: an exclusive lock, a
// read or write lease, a permit, a leadership. Every kind shares the rest
// of the engine: Token, Fence, TTL, Extend, Release (and its giving up and
// retrying in the background), the watchdog's renewals and Done.
//
// Each script takes the lease's keys (lock.keys) and, as ARGV[1], its
// value (the token):
//   - release: ARGV[2...] are lock.relArgs; returns 1 released, 0 nobody
//     holds it (expired), -1 someone else holds it.
//   - extend: ARGV[2] the new TTL in milliseconds; returns as release.
//   - ttl: returns {1, pttl} held, {0, 0} expired, {-1, 0} held by another.
type leaseKind struct {
	name                 string // "lock", "read lease", ...
	exclusive            bool   // the Locker's lease: local handoffs, listed by Held
	release, extend, ttl *goredis.Script
	// woken wakes this instance's waiters after it released a lease of
	// this kind on resource.
	woken func(resource string)
	// handoff, when set, may release l by handing it to a local waiter;
	// ok is false when it did not try (Release then releases as usual).
	// n is the release script's code: 1 (handed over, or released), 0
	// expired. l.opMu is held.
	handoff func(ctx context.Context, l *lock) (n int64, ok bool, err error)
}

// runAcquire runs a lease's acquire script once: through the shared
// pipelines, or, with [Options].LockReplicas, with WAIT on the lease's
// master (evalAndWait). acked is how many replicas acknowledged the
// script's writes, -1 without WAIT.
func (b *Backend) runAcquire(ctx context.Context, script *goredis.Script, keys []string, args ...any) (res, acked int64, err error) {
	if b.opts.LockReplicas <= 0 {
		res, err = b.batch.run(ctx, script, keys, args...).Int64()
		return res, -1, err
	}
	cmd, acked, err := b.evalAndWait(ctx, script, keys, args...)
	if err != nil {
		return 0, 0, err
	}
	res, err = cmd.Int64()
	return res, acked, err
}

// evalAndWait runs script and WAIT (for [Options].LockReplicas replicas,
// up to LockReplicaTimeout) in one pipeline on one connection (in a
// Cluster, the master of keys[0]'s slot), so that WAIT covers the
// script's writes. A server that has not cached the script (NOSCRIPT) is
// sent the script itself. It returns the script's reply and how many
// replicas acknowledged.
func (b *Backend) evalAndWait(ctx context.Context, script *goredis.Script, keys []string, args ...any) (*goredis.Cmd, int64, error) {
	var node goredis.Cmdable = b.client
	if cc, ok := b.client.(*goredis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, 0, err
		}
		node = m
	}
	timeout := b.opts.LockReplicaTimeout
	for _, full := range []bool{false, true} {
		var ec, wc *goredis.Cmd
		_, err := node.Pipelined(ctx, func(p goredis.Pipeliner) error {
			if full {
				ec = script.Eval(ctx, p, keys, args...)
			} else {
				ec = script.EvalSha(ctx, p, keys, args...)
			}
			wc = p.Do(ctx, "wait", b.opts.LockReplicas, timeout.Milliseconds())
			return nil
		})
		if !full && goredis.HasErrorPrefix(ec.Err(), "NOSCRIPT") {
			continue // not cached on this server: send the script itself
		}
		if err != nil {
			return nil, 0, err
		}
		if err := ec.Err(); err != nil {
			return nil, 0, err
		}
		acked, err := wc.Int64()
		if err != nil {
			return nil, 0, err
		}
		return ec, acked, nil
	}
	return nil, 0, errors.New("coord/redis: script not accepted")
}

// replicaShort returns the error of a lease of kind on resource that
// acked replicas acknowledged (-1: no WAIT), when that is fewer than
// [Options].LockReplicas, else nil. The caller gives the lease up.
func (b *Backend) replicaShort(kind, resource string, acked int64) error {
	if acked < 0 || acked >= int64(b.opts.LockReplicas) {
		return nil
	}
	// A failover now could lose the lease and its fence: give it up.
	return fmt.Errorf("%w: coord/redis: acquire %s on %q: %d of %d replicas acknowledged it within %v; given up",
		coord.ErrUnavailable, kind, resource, acked, b.opts.LockReplicas, b.opts.LockReplicaTimeout)
}

// newToken returns a new lease value: a secret part of 128 bits from
// crypto/rand (22 characters of unpadded base64url, never a '.'), a '.'
// and the instance ID of this Backend, so tools can show the holder
// (holderOf) without a second key and without the secret. Scripts compare
// the whole value.
func (b *Backend) newToken() string { return secret.LockToken() + b.holderSuffix() }

// holderSuffix is what newToken appends to the secret part.
func (b *Backend) holderSuffix() string { return b.holder }

// holderOf returns the instance ID recorded in a lease value, up to a
// newline (after which a leadership's value carries its identity); empty
// for a value that records none (an older or foreign writer's).
func holderOf(v string) string {
	_, rest, ok := strings.Cut(v, ".")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "\n")
	return id
}

// lock is one lease of any kind.
type lock struct {
	lk        *Locker
	kind      *leaseKind
	relArgs   []any // the release script's arguments after the token (nil: see releaseArgs)
	resource  string
	key       string
	token     string
	fence     int64
	keys      []string // the kind's script keys; key is the first
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
		return fmt.Errorf("%w: coord/redis: %s %s on %q", coord.ErrExpired, op, l.kind.name, l.resource)
	}
	return fmt.Errorf("%w: coord/redis: %s %s on %q: another holder has it", coord.ErrNotHeld, op, l.kind.name, l.resource)
}

// releasedErr is the error of op on a lease this Lock released: as the
// memory backend says, [coord.ErrNotHeld] when another holder has it now,
// else [coord.ErrExpired] (the kind's TTL script tells, reading only; a
// release still being retried in the background counts as done).
func (l *lock) releasedErr(ctx context.Context, op string) error {
	b := l.lk.b
	res, err := l.kind.ttl.Run(ctx, b.client, l.ownKeys(), l.tokenArg).Int64Slice()
	if err == nil && len(res) == 2 && res[0] == -1 {
		return fmt.Errorf("%w: coord/redis: %s %s on %q: released; another holder has it", coord.ErrNotHeld, op, l.kind.name, l.resource)
	}
	return fmt.Errorf("%w: coord/redis: %s %s on %q: released", coord.ErrExpired, op, l.kind.name, l.resource)
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
	b := l.lk.b
	var n int64
	var err error
	if l.kind.exclusive {
		if w, yield := l.lk.handoffTarget(l.resource); w != nil {
			return l.handOff(ctx, w, yield)
		}
		n, err = b.batch.run(ctx, b.sc.lockRelease, l.releaseKeys(), l.exclReleaseArgs()...).Int64()
	} else {
		handed := false
		if l.kind.handoff != nil {
			n, handed, err = l.kind.handoff(ctx, l)
		}
		if !handed {
			n, err = b.batch.run(ctx, l.kind.release, l.keys, append([]any{l.tokenArg}, l.relArgs...)...).Int64()
		} else if err == nil && n == 1 {
			l.mu.Lock()
			l.released = true
			l.finishLocked()
			l.mu.Unlock()
			return nil // handed over: no waiter to wake
		}
	}
	if err := b.fail(ctx, "release", err); err != nil {
		l.giveUp()
		return err
	}
	l.mu.Lock()
	l.released = l.released || n == 1
	l.finishLocked()
	l.mu.Unlock()
	if n == 1 {
		l.kind.woken(l.resource)
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

// ownKeys returns the keys of the lease's extend and TTL scripts: the key
// that holds the lease, alone. Those scripts read nothing else, and a key
// they were given without reading it (a read lease's writer intents, which
// its release needs) makes them multi-key: while its slot migrates on a
// Cluster, a multi-key script that finds one of its keys missing on the
// master it reaches is refused with TRYAGAIN, so every renewal of a read
// lease failed for the length of a migration when no writer waited.
func (l *lock) ownKeys() []string { return l.keys[:1] }

// Extend sets the lease to end ttl from now, if it is still held.
func (l *lock) Extend(ctx context.Context, ttl time.Duration) error {
	if err := driver.ValidateTTL("lock TTL", ttl); err != nil {
		return err
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if l.isReleased() {
		return l.releasedErr(ctx, "extend")
	}
	b := l.lk.b
	start := time.Now()
	n, err := b.batch.run(ctx, l.kind.extend, l.ownKeys(), l.tokenArg, ttl.Milliseconds()).Int64()
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
		return 0, l.releasedErr(ctx, "TTL of")
	}
	b := l.lk.b
	res, err := l.kind.ttl.Run(ctx, b.client, l.ownKeys(), l.tokenArg).Int64Slice()
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
	n, err := l.kind.extend.Run(rctx, b.client, l.ownKeys(), l.tokenArg, ttl.Milliseconds()).Int64()
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
			l.lk.addOrphanOf(&orphan{kind: l.kind, keys: l.keys, relArgs: l.releaseArgs(), token: l.token, ttl: ttl})
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
