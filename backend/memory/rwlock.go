package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

// shapes holds the hub's read-write resources, semaphores and elections,
// each only while it has holders, waiters or observers, so the hub's
// memory does not grow with the number of names ever used. The maps are
// made on first use. Guarded by hub.lmu.
type shapes struct {
	rw    map[string]*rwRes
	sems  map[string]*semRes
	elect map[string]*electRes
}

// restartLocked ends every lease of every shape, as a restart without
// persistence loses them.
func (s *shapes) restartLocked(h *Hub, now time.Time) {
	for _, r := range s.rw {
		r.endAllLocked(h, now)
	}
	for _, r := range s.sems {
		r.endAllLocked(h, now)
	}
	for _, r := range s.elect {
		if r.leader != nil {
			h.endLocked(r.leader, lockLost)
			r.promoteLocked(h, now)
		}
	}
}

// removeLease removes l from a slice of leases.
func removeLease(ls []*lock, l *lock) []*lock {
	if i := slices.Index(ls, l); i >= 0 {
		return slices.Delete(ls, i, i+1)
	}
	return ls
}

// earliest returns the earliest deadline of ls (zero when ls is empty).
func earliest(ls []*lock) time.Time {
	var at time.Time
	for _, l := range ls {
		if at.IsZero() || l.deadline.Before(at) {
			at = l.deadline
		}
	}
	return at
}

// expireAll ends the leases of ls whose deadline passed by now and
// reports whether it ended any. ls may shrink meanwhile (endLocked drops
// each from its resource).
func expireAll(h *Hub, ls []*lock, now time.Time) bool {
	var due []*lock
	for _, l := range ls {
		if !now.Before(l.deadline) {
			due = append(due, l)
		}
	}
	for _, l := range due {
		h.endLocked(l, lockLost)
	}
	return len(due) > 0
}

// grantWaiterLocked gives w, the head of its queue, a new lease on r and
// wakes it; the caller adds the lease to r's holders.
func (h *Hub) grantWaiterLocked(r leaseRes, w *waiter, now time.Time) *lock {
	delete(w.node.waiters, w)
	l := h.newLeaseLocked(r, w.node, w.opts, now, secret.LockToken())
	w.granted = l
	w.signal()
	return l
}

// RWLocker is a [Backend]'s [coord.RWLocker]. Readers and writers of one
// resource queue together, first come first served across the hub's
// nodes: a writer waits for the leases held before it, and every reader
// that comes after a waiting writer waits behind it (writer preference:
// overlapping readers cannot starve a writer). A release hands the
// resource at once to the head of the queue: one writer, or every reader
// up to the next writer. A waiting writer that gives up (its ctx ends, its
// node closes) leaves the queue at once and lets the readers behind it
// in.
//
// A RWLocker is safe for concurrent use by multiple goroutines.
type RWLocker struct{ n *Backend }

var _ coord.RWLocker = (*RWLocker)(nil)

// rwRes is the hub's state of one read-write resource.
type rwRes struct {
	h       *Hub
	name    string
	writer  *lock
	readers []*lock
	waiters []*waiter // FIFO, readers and writers, across all nodes
	// first is the readers' first backing array: a few readers need no
	// allocation beside the state.
	first [2]*lock
}

func (r *rwRes) resName() string { return r.name }

func (r *rwRes) dropLocked(l *lock) {
	if r.writer == l {
		r.writer = nil
		return
	}
	r.readers = removeLease(r.readers, l)
}

func (r *rwRes) expireLocked(h *Hub, now time.Time) {
	ended := false
	if r.writer != nil && !now.Before(r.writer.deadline) {
		h.endLocked(r.writer, lockLost)
		ended = true
	}
	if expireAll(h, r.readers, now) || ended {
		r.promoteLocked(h, now)
	}
}

func (r *rwRes) promoteLocked(h *Hub, now time.Time) {
	for len(r.waiters) > 0 && r.writer == nil {
		w := r.waiters[0]
		if w.write && len(r.readers) > 0 {
			break
		}
		r.waiters = slices.Delete(r.waiters, 0, 1)
		l := h.grantWaiterLocked(r, w, now)
		if w.write {
			l.write = true
			r.writer = l
			break
		}
		r.readers = append(r.readers, l)
	}
	r.dropIdleLocked(h)
}

func (r *rwRes) dropIdleLocked(h *Hub) {
	if r.writer == nil && len(r.readers) == 0 && len(r.waiters) == 0 && h.shapes.rw[r.name] == r {
		delete(h.shapes.rw, r.name)
	}
}

func (r *rwRes) removeWaiter(w *waiter) {
	if i := slices.Index(r.waiters, w); i >= 0 {
		r.waiters = slices.Delete(r.waiters, i, i+1)
		// A writer that leaves may have held readers back.
		r.promoteLocked(r.h, time.Now())
	}
}

func (r *rwRes) nextExpiry() time.Time {
	if r.writer != nil {
		return r.writer.deadline
	}
	return earliest(r.readers)
}

func (r *rwRes) notHeldLocked(l *lock) error {
	if cur := r.h.shapes.rw[r.name]; l.write && cur != nil && cur.writer != nil {
		return fmt.Errorf("%w: coord/memory: %q has another writer", coord.ErrNotHeld, r.name)
	}
	return fmt.Errorf("%w: coord/memory: lease on %q ended", coord.ErrExpired, r.name)
}

func (r *rwRes) endAllLocked(h *Hub, now time.Time) int {
	n := 0
	if r.writer != nil {
		h.endLocked(r.writer, lockLost)
		n++
	}
	for len(r.readers) > 0 {
		h.endLocked(r.readers[0], lockLost)
		n++
	}
	r.promoteLocked(h, now)
	return n
}

// writersWaiting counts the writers in the queue.
func (r *rwRes) writersWaiting() int {
	n := 0
	for _, w := range r.waiters {
		if w.write {
			n++
		}
	}
	return n
}

// rwResLocked returns the live state of name, or nil when it has none.
func (h *Hub) rwResLocked(name string, now time.Time) *rwRes {
	r := h.shapes.rw[name]
	if r != nil {
		r.expireLocked(h, now)
		r = h.shapes.rw[name] // dropped when the expiry left it idle
	}
	return r
}

// RLock takes a shared lease on resource, waiting while a writer holds
// it or waits for it. It may return [coord.ErrNotAcquired] (joined with
// ctx.Err() when ctx ended the wait), [coord.ErrInvalid] or
// [coord.ErrClosed].
func (rw *RWLocker) RLock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	return rw.acquire(ctx, "RLock", resource, false, opts)
}

// Lock takes the exclusive lease on resource, waiting for the leases
// held and queued before it. Errors as for RLock.
func (rw *RWLocker) Lock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	return rw.acquire(ctx, "Lock", resource, true, opts)
}

// leaseArgs validates a name and resolves lease options with the node's
// lock defaults.
func (n *Backend) leaseArgs(ctx context.Context, op, what, name string, opts []coord.LockOption) (coord.LockOptions, error) {
	if err := driver.ValidateName(what, name); err != nil {
		return coord.LockOptions{}, err
	}
	if d := n.lockDefaults; len(d) > 0 {
		opts = append(d, opts...)
	}
	o, err := driver.NewLockOptions(opts...)
	if err != nil {
		return o, err
	}
	if n.closed.Load() {
		return o, errClosed(op)
	}
	if err := ctx.Err(); err != nil {
		return o, errors.Join(coord.ErrNotAcquired, err)
	}
	return o, nil
}

func (rw *RWLocker) acquire(ctx context.Context, op, name string, write bool, opts []coord.LockOption) (coord.Lock, error) {
	n := rw.n
	o, err := n.leaseArgs(ctx, op, "resource", name, opts)
	if err != nil {
		return nil, err
	}
	h := n.hub
	token := secret.LockToken()
	h.lmu.Lock()
	if n.closed.Load() {
		h.lmu.Unlock()
		return nil, errClosed(op)
	}
	now := time.Now()
	r := h.rwResLocked(name, now)
	if r == nil {
		if h.shapes.rw == nil {
			h.shapes.rw = make(map[string]*rwRes)
		}
		r = &rwRes{h: h, name: name}
		r.readers = r.first[:0]
		h.shapes.rw[name] = r
	}
	if r.writer == nil && len(r.waiters) == 0 && (!write || len(r.readers) == 0) {
		l := h.newLeaseLocked(r, n, o, now, token)
		if write {
			l.write = true
			r.writer = l
		} else {
			r.readers = append(r.readers, l)
		}
		h.lmu.Unlock()
		return l, nil
	}
	if o.Retries == 0 {
		r.dropIdleLocked(h)
		h.lmu.Unlock()
		return nil, fmt.Errorf("%w: coord/memory: %q is held", coord.ErrNotAcquired, name)
	}
	w := &waiter{node: n, res: r, opts: o, wake: make(chan struct{}, 1), write: write}
	r.waiters = append(r.waiters, w)
	n.waiters[w] = struct{}{}
	delay := waitDelay(o, r, now)
	h.lmu.Unlock()
	l, err := h.wait(ctx, w, delay)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// State reports the holders of resource and the writers waiting for it.
func (rw *RWLocker) State(ctx context.Context, resource string) (coord.RWState, error) {
	if err := driver.ValidateName("resource", resource); err != nil {
		return coord.RWState{}, err
	}
	if rw.n.closed.Load() {
		return coord.RWState{}, errClosed("State")
	}
	h := rw.n.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	r := h.rwResLocked(resource, time.Now())
	if r == nil {
		return coord.RWState{}, nil
	}
	return coord.RWState{Readers: len(r.readers), Writer: r.writer != nil, WritersWaiting: r.writersWaiting()}, nil
}

// ForceRelease ends every read and write lease on resource, closes their
// holders' Done at once and hands the resource to the waiters. It reports
// whether there was a lease.
func (rw *RWLocker) ForceRelease(ctx context.Context, resource string) (bool, error) {
	if err := driver.ValidateName("resource", resource); err != nil {
		return false, err
	}
	if rw.n.closed.Load() {
		return false, errClosed("ForceRelease")
	}
	h := rw.n.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	now := time.Now()
	r := h.rwResLocked(resource, now)
	if r == nil {
		return false, nil
	}
	return r.endAllLocked(h, now) > 0, nil
}
