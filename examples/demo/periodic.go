package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/cgn-bot/coord"
)

// digestJob is the job the periodic scene runs once per tick across the
// instances.
const digestJob = "demo:digest"

// periodic starts the digest job on every instance with [coord.RunEvery],
// one period per tick, beside the tick loop; the function it returns
// stops the job and prints how many times it ran in each period.
func (d *demo) periodic(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu   sync.Mutex
		runs = map[int64][]string{} // period index -> who ran it
		wg   sync.WaitGroup
	)
	d.p.say("periodic: every instance runs RunEvery(%q, every %v): once per period across the instances, on the backend's clock", digestJob, d.cfg.tick)
	for _, in := range d.insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := coord.RunEvery(ctx, in.b, digestJob, d.cfg.tick, func(ctx context.Context) error {
				slot, _ := coord.JobSlotFromContext(ctx)
				lease, _ := coord.LockFromContext(ctx)
				mu.Lock()
				runs[slot.Index] = append(runs[slot.Index], in.name)
				mu.Unlock()
				d.p.say("periodic: %s ran the digest of period %d (fence %d)", in.name, slot.Index, lease.Fence())
				return nil
			})
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				d.p.say("periodic: %s: RunEvery: %v", in.name, err)
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		idx := make([]int64, 0, len(runs))
		for i := range runs {
			idx = append(idx, i)
		}
		sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
		verdict := "yes"
		for _, i := range idx {
			if len(runs[i]) > 1 {
				verdict = fmt.Sprintf("NO, period %d ran %d times (%v)", i, len(runs[i]), runs[i])
				break
			}
		}
		if len(idx) == 0 {
			verdict = "NO run at all"
		}
		d.p.say("periodic: the digest ran in %d periods on %d instances; once per period: %s", len(idx), len(d.insts), verdict)
	}
}
