package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// RWLocker is the Backend's [coord.RWLocker]. Each resource has, in one
// hash slot: the writer key (a string holding the write lease's value,
// with PX expiry), a ZSET of read lease values scored by their expiry in
// server milliseconds, a ZSET of waiting writers' intents scored likewise,
// one fence counter for readers and writers (take() in lua/lock_lib.lua),
// and a wake channel. Every script reads the clock with TIME on the
// server and prunes expired entries first, so a crashed reader's hold
// ends alone at its TTL.
//
// Writer preference: a writer refused (readers or a writer hold the
// resource) records an intent that lasts [WriterIntent] for its
// RetryDelay, and renews it at each retry; while an intent is live, new
// readers are refused. A waiting writer that crashes stops holding readers
// back within that bound; one whose Lock ends without the lease (ctx,
// retries, Close) withdraws its intent at once (best effort) and wakes the
// readers. A writer leaving wakes the readers and one writer of every
// instance; the last reader leaving wakes one writer. Waiters sleep until
// such a wake-up, the wait hint of their last try (the writer's expiry, the
// earliest intent's or reader's), or RetryDelay, whichever is first.
//
// Read and write leases are full leases of the Backend's lease engine
// (see [Locker]) without the local handoff of exclusive leases; with
// [Options].LockReplicas, each is granted only once that many replicas
// acknowledged it, as an exclusive lease is.
//
// A RWLocker is safe for concurrent use by multiple goroutines.
type RWLocker struct {
	lk          *Locker
	read, write *leaseKind
	// The wake payloads of this instance, boxed once for the scripts'
	// arguments.
	readerLeft, writerLeft any
	// The read release's arguments after the token (lua/rw_runlock.lua):
	// the same for every read lease, never changed.
	readRelArgs []any
}

var _ coord.RWLocker = (*RWLocker)(nil)

// WriterIntent returns how long a refused writer's intent holds new
// readers back unless the writer renews it: twice its RetryDelay, and at
// least 20 ms so a loaded machine's scheduling delays do not let readers
// in between a writer's retries.
func WriterIntent(retryDelay time.Duration) time.Duration {
	return max(2*retryDelay, 20*time.Millisecond)
}

func newRWLocker(lk *Locker) *RWLocker {
	b := lk.b
	rw := &RWLocker{lk: lk, readerLeft: lk.leases.payload(wakeReaderLeft), writerLeft: lk.leases.payload(wakeWriterLeft)}
	rw.readRelArgs = []any{rw.readerLeft}
	rw.read = &leaseKind{
		// The read release has a script of its own (lua/rw_runlock.lua:
		// no library prepended); extend and TTL are the permits'.
		name: "read lease", release: goredis.NewScript(mustLua("rw_runlock")), extend: b.sc.zExtend, ttl: b.sc.zTTL,
		woken: func(resource string) {
			if !lk.leases.empty() {
				lk.leases.wake(rw.channel(resource), wakeReaderLeft)
			}
		},
	}
	rw.write = &leaseKind{
		name: "write lease", release: b.sc.sRelease, extend: b.sc.sExtend, ttl: b.sc.sTTL,
		woken: func(resource string) {
			if !lk.leases.empty() {
				lk.leases.wake(rw.channel(resource), wakeWriterLeft)
			}
		},
	}
	return rw
}

// empty reports whether this instance waits on no wake channel at all, so
// that a release has nobody here to wake (and need not name the channel).
func (lw *leaseWaits) empty() bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return len(lw.chans) == 0
}

func (rw *RWLocker) channel(resource string) string {
	_, ch := rw.lk.b.keys.rwKeys(resource)
	return ch
}

// As forwards to [Backend.As].
func (rw *RWLocker) As(target any) bool { return rw.lk.b.As(target) }

// options checks the common arguments and returns the lock options.
func (lk *Locker) leaseOptions(what, name string, opts []coord.LockOption) (coord.LockOptions, error) {
	b := lk.b
	if err := b.checkOpen(); err != nil {
		return coord.LockOptions{}, err
	}
	if err := driver.ValidateName(what, name); err != nil {
		return coord.LockOptions{}, err
	}
	if d := b.opts.LockDefaults; len(d) > 0 {
		opts = append(d[:len(d):len(d)], opts...)
	}
	return driver.NewLockOptions(opts...)
}

// RLock takes a read lease on resource. May return [coord.ErrNotAcquired]
// (joined with ctx.Err() when ctx ended the wait), [coord.ErrInvalid],
// [coord.ErrClosed] or [coord.ErrUnavailable].
func (rw *RWLocker) RLock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	o, err := rw.lk.leaseOptions("resource", resource, opts)
	if err != nil {
		return nil, err
	}
	b := rw.lk.b
	keys, ch := b.keys.rwKeys(resource)
	return rw.lk.acquireLease(ctx, &leaseTry{
		kind: rw.read, resource: resource, script: b.sc.rwRLock, keys: keys,
		leaseKeys: keys[2:4], relArgs: rw.readRelArgs,
		channel: ch, role: roleRead,
	}, o)
}

// Lock takes the write lease on resource. Errors as for RLock.
func (rw *RWLocker) Lock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	o, err := rw.lk.leaseOptions("resource", resource, opts)
	if err != nil {
		return nil, err
	}
	b := rw.lk.b
	keys, ch := b.keys.rwKeys(resource)
	return rw.lk.acquireLease(ctx, &leaseTry{
		kind: rw.write, resource: resource, script: b.sc.rwLock, keys: keys,
		leaseKeys: keys[0:1], relArgs: []any{ch, rw.writerLeft},
		extra:   []any{WriterIntent(o.RetryDelay).Milliseconds()},
		channel: ch, role: roleWrite,
		cancel: func(token string) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = b.sc.rwCancel.Run(ctx, b.client, keys[3:4], token, ch, rw.lk.leases.payload(wakeWriterLeft)).Err()
			rw.lk.leases.wake(ch, wakeWriterLeft)
		},
	}, o)
}

// State reports the holders of resource now.
func (rw *RWLocker) State(ctx context.Context, resource string) (coord.RWState, error) {
	b := rw.lk.b
	if err := b.checkOpen(); err != nil {
		return coord.RWState{}, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return coord.RWState{}, err
	}
	keys, _ := b.keys.rwKeys(resource)
	res, err := b.sc.rwState.Run(ctx, b.client, []string{keys[0], keys[2], keys[3]}).Int64Slice()
	if err := b.fail(ctx, "read-write state", err); err != nil {
		return coord.RWState{}, err
	}
	if len(res) != 3 {
		return coord.RWState{}, fmt.Errorf("%w: coord/redis: read-write state: unexpected reply %v", coord.ErrUnavailable, res)
	}
	return coord.RWState{Readers: int(res[0]), Writer: res[1] == 1, WritersWaiting: int(res[2])}, nil
}

// ForceRelease ends every read and write lease on resource and wakes the
// waiters; it reports whether there was one.
func (rw *RWLocker) ForceRelease(ctx context.Context, resource string) (bool, error) {
	b := rw.lk.b
	if err := b.checkOpen(); err != nil {
		return false, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return false, err
	}
	keys, ch := b.keys.rwKeys(resource)
	n, err := b.sc.rwForce.Run(ctx, b.client, []string{keys[0], keys[2]}, ch, rw.lk.leases.payload(wakeWriterLeft)).Int64()
	if err := b.fail(ctx, "force release", err); err != nil {
		return false, err
	}
	if n == 1 {
		rw.lk.leases.wake(ch, wakeWriterLeft)
	}
	return n == 1, nil
}
