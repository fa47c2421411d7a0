package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// handoffLocker is a prototype, on raw go-redis, of the local handoff
// proposed for backend/redis (docs/BENCHMARKS.md): waiters of one process
// queue FIFO per key, and a release with a local waiter hands the lease
// over in the same round trip (compare-and-set to the waiter's token plus
// the fence INCR), so a handoff costs one round trip instead of two. It is
// not coord; it shows what the proposed fix could reach on this machine.
type handoffLocker struct {
	c        *goredis.Client
	acquire  *goredis.Script
	transfer *goredis.Script
	release  *goredis.Script

	mu     sync.Mutex
	queues map[string]*handoffQueue
}

type handoffQueue struct {
	held    bool // a goroutine of this process holds or is taking the lease
	waiters []*handoffWaiter
}

type handoffWaiter struct {
	tok   string
	grant chan bool // true: the lease was handed over; false: try it yourself
}

func newHandoffLocker(c *goredis.Client) *handoffLocker {
	return &handoffLocker{
		c: c,
		acquire: goredis.NewScript(`if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2]) end
return -2 - redis.call('PTTL', KEYS[1])`),
		transfer: goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return redis.call('INCR', KEYS[2]) end
return -1`),
		release: goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`),
		queues:  map[string]*handoffQueue{},
	}
}

func handoffKeys(key string) []string {
	return []string{"proto:{" + key + "}", "proto:{" + key + "}:fence"}
}

func (h *handoffLocker) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	tok := token()
	h.mu.Lock()
	q := h.queues[key]
	if q == nil {
		q = &handoffQueue{}
		h.queues[key] = q
	}
	if q.held {
		if !wait {
			h.mu.Unlock()
			return nil, errBusy
		}
		w := &handoffWaiter{tok: tok, grant: make(chan bool, 1)}
		q.waiters = append(q.waiters, w)
		h.mu.Unlock()
		select {
		case handed := <-w.grant:
			if handed {
				return h.releaser(key, tok), nil
			}
		case <-ctx.Done():
			h.mu.Lock()
			if i := slices.Index(q.waiters, w); i >= 0 {
				q.waiters = slices.Delete(q.waiters, i, i+1)
				h.mu.Unlock()
				return nil, ctx.Err()
			}
			h.mu.Unlock()
			// The turn came meanwhile: take it and pass it on.
			if <-w.grant {
				_ = h.releaser(key, tok)(context.Background())
			} else {
				h.pass(key, q)
			}
			return nil, ctx.Err()
		}
	} else {
		q.held = true
		h.mu.Unlock()
	}
	// This goroutine has the local turn: take the lease in Redis (another
	// process may hold it: poll).
	keys := handoffKeys(key)
	var t *time.Timer
	for {
		n, err := h.acquire.Run(context.WithoutCancel(ctx), h.c, keys, tok, lockTTL.Milliseconds()).Int64()
		if err != nil {
			h.pass(key, q)
			return nil, err
		}
		if n > 0 {
			return h.releaser(key, tok), nil
		}
		if !wait {
			h.pass(key, q)
			return nil, errBusy
		}
		if t == nil {
			t = time.NewTimer(pollDelay)
			defer t.Stop()
		} else {
			t.Reset(pollDelay)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			h.pass(key, q)
			return nil, ctx.Err()
		}
	}
}

// pass gives the local turn (not the lease) to the next waiter, or frees it.
func (h *handoffLocker) pass(key string, q *handoffQueue) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(q.waiters) == 0 {
		q.held = false
		return
	}
	w := q.waiters[0]
	q.waiters = q.waiters[1:]
	w.grant <- false
}

func (h *handoffLocker) releaser(key, tok string) releaser {
	return func(ctx context.Context) error {
		keys := handoffKeys(key)
		h.mu.Lock()
		q := h.queues[key]
		if len(q.waiters) > 0 {
			w := q.waiters[0]
			q.waiters = q.waiters[1:]
			h.mu.Unlock()
			n, err := h.transfer.Run(ctx, h.c, keys, tok, w.tok, lockTTL.Milliseconds()).Int64()
			if err == nil && n < 0 {
				err = errors.New("handoff: lease lost before its release")
			}
			w.grant <- err == nil
			return err
		}
		h.mu.Unlock()
		err := h.release.Run(ctx, h.c, keys[:1], tok).Err()
		h.pass(key, q)
		return err
	}
}
