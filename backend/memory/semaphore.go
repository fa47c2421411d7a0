package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

// Semaphores is a [Backend]'s [coord.Semaphores]. The permits of one
// resource are its one set of leases (no counter beside it): an expired
// permit leaves the set at its deadline. Waiters queue first come, first
// served across the hub's nodes; each freed permit goes at once to the
// head of the queue when the head's limit admits it.
//
// A Semaphores is safe for concurrent use by multiple goroutines.
type Semaphores struct{ n *Backend }

var _ coord.Semaphores = (*Semaphores)(nil)

// semRes is the hub's state of one semaphore.
type semRes struct {
	h       *Hub
	name    string
	holders []*lock
	waiters []*waiter // FIFO across all nodes
	// first is the holders' first backing array: a semaphore of up to
	// len(first) permits needs no allocation beside its state.
	first [4]*lock
}

func (r *semRes) resName() string { return r.name }

func (r *semRes) dropLocked(l *lock) { r.holders = removeLease(r.holders, l) }

func (r *semRes) expireLocked(h *Hub, now time.Time) {
	if expireAll(h, r.holders, now) {
		r.promoteLocked(h, now)
	}
}

func (r *semRes) promoteLocked(h *Hub, now time.Time) {
	for len(r.waiters) > 0 && len(r.holders) < r.waiters[0].limit {
		w := r.waiters[0]
		r.waiters = slices.Delete(r.waiters, 0, 1)
		r.holders = append(r.holders, h.grantWaiterLocked(r, w, now))
	}
	r.dropIdleLocked(h)
}

func (r *semRes) dropIdleLocked(h *Hub) {
	if len(r.holders) == 0 && len(r.waiters) == 0 && h.shapes.sems[r.name] == r {
		delete(h.shapes.sems, r.name)
	}
}

func (r *semRes) removeWaiter(w *waiter) {
	if i := slices.Index(r.waiters, w); i >= 0 {
		r.waiters = slices.Delete(r.waiters, i, i+1)
		// The next waiter may ask for a higher limit.
		r.promoteLocked(r.h, time.Now())
	}
}

func (r *semRes) nextExpiry() time.Time { return earliest(r.holders) }

func (r *semRes) notHeldLocked(*lock) error {
	return fmt.Errorf("%w: coord/memory: permit on %q ended", coord.ErrExpired, r.name)
}

func (r *semRes) endAllLocked(h *Hub, now time.Time) int {
	n := len(r.holders)
	for len(r.holders) > 0 {
		h.endLocked(r.holders[0], lockLost)
	}
	r.promoteLocked(h, now)
	return n
}

// semResLocked returns the live state of name, or nil when it has none.
func (h *Hub) semResLocked(name string, now time.Time) *semRes {
	r := h.shapes.sems[name]
	if r != nil {
		r.expireLocked(h, now)
		r = h.shapes.sems[name]
	}
	return r
}

// Acquire takes a permit on resource when fewer than limit are held,
// waiting behind the earlier waiters otherwise. It may return
// [coord.ErrNotAcquired] (joined with ctx.Err() when ctx ended the wait),
// [coord.ErrInvalid] (limit below 1 among others) or [coord.ErrClosed].
func (s *Semaphores) Acquire(ctx context.Context, resource string, limit int, opts ...coord.LockOption) (coord.Lock, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w: coord/memory: semaphore limit %d is below 1", coord.ErrInvalid, limit)
	}
	n := s.n
	o, err := n.leaseArgs(ctx, "Semaphores.Acquire", "resource", resource, opts)
	if err != nil {
		return nil, err
	}
	h := n.hub
	token := secret.LockToken()
	h.lmu.Lock()
	if n.closed.Load() {
		h.lmu.Unlock()
		return nil, errClosed("Semaphores.Acquire")
	}
	now := time.Now()
	r := h.semResLocked(resource, now)
	if r == nil {
		if h.shapes.sems == nil {
			h.shapes.sems = make(map[string]*semRes)
		}
		r = &semRes{h: h, name: resource}
		r.holders = r.first[:0]
		h.shapes.sems[resource] = r
	}
	if len(r.waiters) == 0 && len(r.holders) < limit {
		l := h.newLeaseLocked(r, n, o, now, token)
		r.holders = append(r.holders, l)
		h.lmu.Unlock()
		return l, nil
	}
	if o.Retries == 0 {
		h.lmu.Unlock()
		return nil, fmt.Errorf("%w: coord/memory: %d permits of %q are held", coord.ErrNotAcquired, limit, resource)
	}
	w := &waiter{node: n, res: r, opts: o, wake: make(chan struct{}, 1), limit: limit}
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

// Holders returns the number of live permits on resource.
func (s *Semaphores) Holders(ctx context.Context, resource string) (int, error) {
	if err := driver.ValidateName("resource", resource); err != nil {
		return 0, err
	}
	if s.n.closed.Load() {
		return 0, errClosed("Holders")
	}
	h := s.n.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	r := h.semResLocked(resource, time.Now())
	if r == nil {
		return 0, nil
	}
	return len(r.holders), nil
}

// ForceRelease ends every permit on resource, closes their holders' Done
// at once and hands the freed permits to the waiters. It returns how many
// permits it ended.
func (s *Semaphores) ForceRelease(ctx context.Context, resource string) (int, error) {
	if err := driver.ValidateName("resource", resource); err != nil {
		return 0, err
	}
	if s.n.closed.Load() {
		return 0, errClosed("ForceRelease")
	}
	h := s.n.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	now := time.Now()
	r := h.semResLocked(resource, now)
	if r == nil {
		return 0, nil
	}
	return r.endAllLocked(h, now), nil
}
