package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
)

// rateScene shows one rate limit shared by the instances: each instance
// sends calls to an "upstream API" at once, and the limit admits its
// burst in total, not per instance. Errors are printed, not returned: the
// scene is an illustration.
func (d *demo) rateScene(ctx context.Context) {
	const perInstance = 4
	limit := coord.Limit{Name: "upstream", Rate: 5, Period: 10 * time.Second}
	key := "demo:upstream:" + d.truthKey[len(d.truthKey)-8:]
	n := max(len(d.insts), 3)
	allowed := make([]int, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var retry time.Duration
	var failed error
	for i := range n {
		in := d.pick(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perInstance {
				dec, err := in.b.RateLimiter().Allow(ctx, key, limit, 1)
				mu.Lock()
				switch {
				case err != nil:
					failed = err
				case dec.Allowed:
					allowed[i]++
				default:
					retry = max(retry, dec.RetryAfter)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		if ctx.Err() == nil {
			d.p.say("rate limit: %v (a limiter that cannot decide never allows)", failed)
		}
		return
	}
	total := 0
	per := make([]string, n)
	for i, a := range allowed {
		total += a
		per[i] = fmt.Sprintf("%s %d", d.pick(i).name, a)
	}
	d.p.say("rate limit: %d calls from %d instances on one limit of %d per %v: %d allowed (%s), %d denied, next in %v: one shared limit, not %d × %d",
		n*perInstance, n, limit.Rate, limit.Period, total, strings.Join(per, ", "), n*perInstance-total,
		retry.Round(100*time.Millisecond), n, limit.Rate)
}
