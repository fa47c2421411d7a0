package memory

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord"
)

// TestShapePairAllocations: an uncontended read pair, permit pair and
// campaign pair allocate no more than the Locker's pair (the lease, its
// token, its options and the name's state, made with its first holder and
// dropped with its last): the readers' and permits' first slots live in
// the state, and a leadership comes in one allocation with its lease.
func TestShapePairAllocations(t *testing.T) {
	n := NewHub(nil).New(nil)
	defer func() { _ = n.Close(context.Background()) }()
	ctx := context.Background()
	rw, s, e, lk := n.RWLocker(), n.Semaphores(), n.Elector(), n.Locker()
	pair := func(take func() (coord.Lock, error)) func() {
		return func() {
			l, err := take()
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := testing.AllocsPerRun(200, pair(func() (coord.Lock, error) { return lk.Acquire(ctx, "res") }))
	for name, take := range map[string]func() (coord.Lock, error){
		"read":     func() (coord.Lock, error) { return rw.RLock(ctx, "res") },
		"write":    func() (coord.Lock, error) { return rw.Lock(ctx, "res") },
		"permit":   func() (coord.Lock, error) { return s.Acquire(ctx, "res", 4) },
		"campaign": func() (coord.Lock, error) { return e.Campaign(ctx, "res", "me") },
	} {
		if got := testing.AllocsPerRun(200, pair(take)); got > base {
			t.Errorf("%s pair: %v allocations, the Locker's pair %v", name, got, base)
		}
	}
}
