package redis

import (
	"context"
	"strings"
	"time"

	"github.com/cgn-bot/coord"
)

// The waiter queue in Redis (lua/lock_queue.lua): one entry per instance
// waiting for a lease, in the order the instances first found it held,
// each renewed by its instance's tries and dropped at its expiry. A
// release with waiters queued reserves the lease for the oldest entry and
// wakes only that instance (the payload wakeTo + its ID).

// wakeTo starts the payload of a wake-up addressed to one instance: the
// rest is its ID. A payload without it is the releasing instance's ID,
// and wakes every other instance's waiter.
const wakeTo = "\x00>"

// lockQueueKey returns the waiter queue key of a lease key (same hash
// slot).
func (k keyspace) lockQueueKey(lockKey string) string { return lockKey + ":q" }

// queueKeys returns the waiter queue key of a lease key (lockQueueKey)
// and the key of the flag that says the queue may hold entries, both in
// the lease's hash slot, in one allocation (the queue key is a prefix of
// the flag's).
func queueKeys(lockKey string) (q, flag string) {
	flag = lockKey + ":qf"
	return flag[:len(flag)-1], flag
}

// queueOn reports whether the waiter queue is in use: it is unless
// [Options].HandoffWindow is negative.
func (lk *Locker) queueOn() bool { return lk.b.opts.HandoffWindow > 0 }

// beat is how often the head waiter of an instance tries at least while
// it waits, renewing its queue entry: its retry delay, at most
// [Options].HandoffWindow.
func (lk *Locker) beat(o coord.LockOptions) time.Duration {
	return min(max(o.RetryDelay, minWait), lk.b.opts.HandoffWindow)
}

// placeLife is how long an instance's queue entry lasts past its last
// try, in milliseconds: a beat plus four [Options].HandoffWindow, so an
// entry a live waiter renews does not lapse while its renewal is late by
// less than that (a loaded machine), and a dead waiter holds the queue up
// for at most five HandoffWindows (250ms by default).
func (lk *Locker) placeLife(o coord.LockOptions) int64 {
	return (lk.beat(o) + 4*lk.b.opts.HandoffWindow).Milliseconds()
}

// acquireArgs returns the keys and arguments of lock_acquire.lua for a
// try: by a waiter, by a newcomer that will wait (it queues when
// refused), or by a try-once newcomer (o.Retries 0: it never queues).
func (lk *Locker) acquireArgs(key, fenceKey string, tokenArg any, o coord.LockOptions, waiter bool) ([]string, []any) {
	b := lk.b
	ttl := o.TTL.Milliseconds()
	if !waiter && o.Retries == 0 {
		return []string{key, fenceKey}, []any{tokenArg, ttl, "0"}
	}
	who, life := "2", int64(0)
	if waiter {
		who = "1"
	}
	if lk.queueOn() {
		life = lk.placeLife(o)
	}
	q, qf := queueKeys(key)
	return []string{key, fenceKey, q, qf},
		[]any{tokenArg, ttl, who, b.idArg, life, b.keys.wakeChannel(key)}
}

// releaseKeys returns the keys of lock_release.lua for l: with the queue
// keys, the release serves the queue; without them, it wakes every
// waiter.
func (l *lock) releaseKeys() []string {
	if !l.lk.queueOn() {
		return l.keys
	}
	q, qf := queueKeys(l.key)
	return []string{l.key, q, qf}
}

// leave drops this instance's queue entry for resource after its last
// waiter stopped waiting without the lease, passing a reservation made
// for it to the next entry (lua/lock_leave.lua). Best effort: an entry
// left behind lapses within its lifetime.
func (lk *Locker) leave(resource string) {
	b := lk.b
	if !lk.queueOn() || b.checkOpen() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	key := b.keys.lockKey(resource)
	_ = b.sc.lockLeave.Run(ctx, b.client, []string{key, b.keys.lockQueueKey(key)}, b.idArg, b.keys.wakeChannel(key)).Err()
}

// addressedWake handles a wake-up payload addressed to one instance
// (wakeTo + ID). It reports false when payload is not one.
func (lk *Locker) addressedWake(channel, payload string) bool {
	id, ok := strings.CutPrefix(payload, wakeTo)
	if !ok {
		return false
	}
	if id == lk.b.opts.InstanceID {
		lk.mu.Lock()
		if q := lk.byChannel[channel]; q != nil && len(q.waiters) > 0 {
			wakeOne(q.waiters[0])
		}
		lk.mu.Unlock()
	}
	return true
}
