package redis

import (
	"context"
	"slices"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// batcher runs the commands and scripts of concurrent callers in shared
// pipelines (group commit). A caller that finds fewer than max batches in
// flight sends its own command at once, with whatever other callers queued
// meanwhile, in one pipeline; a caller that finds max batches in flight
// queues, and the first batch to come back makes the first queued caller
// send the queue. With one caller at a time nothing waits and nothing
// changes; with many, a round trip carries many commands, which saves the
// client and the server a write and a read (two system calls each) per
// command. Only commands that are fine to pipeline go through it (no
// blocking commands, no transactions).
type batcher struct {
	client goredis.UniversalClient
	max    int // batches in flight

	mu      sync.Mutex
	leaders int
	queue   []*batchCall
}

type batchCall struct {
	pre   goredis.Cmder // with plain: a command sent just before it
	plain goredis.Cmder // a command; or:
	s     *goredis.Script
	keys  []string
	args  []any
	cmd   *goredis.Cmd  // the script's result
	done  chan struct{} // for a queued call: closed when cmd is set or the call leads
	lead  bool          // the call sends the queue (set before done is closed)
}

// maxBatches is how many batches a Backend's batcher keeps in flight.
const maxBatches = 4

// run runs the script like [goredis.Script.Run], possibly in a pipeline
// with other callers' scripts. A pipeline of several runs to completion
// whatever the ctx of its callers does (the client's timeouts bound it);
// a caller still queued when ctx ends leaves the queue and returns ctx's
// error.
func (bt *batcher) run(ctx context.Context, s *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	c := &batchCall{s: s, keys: keys, args: args}
	if err := bt.call(ctx, c); err != nil {
		c.cmd = goredis.NewCmd(ctx)
		c.cmd.SetErr(err)
	}
	return c.cmd
}

// process runs cmd like [goredis.UniversalClient.Process], possibly in a
// pipeline with other callers' commands (see run), and returns its error.
func (bt *batcher) process(ctx context.Context, cmd goredis.Cmder) error {
	if err := bt.call(ctx, &batchCall{plain: cmd}); err != nil {
		cmd.SetErr(err)
		return err
	}
	return cmd.Err()
}

// processPair runs pre and then cmd in one round trip, like process, and
// returns cmd's error (pre's is in pre).
func (bt *batcher) processPair(ctx context.Context, pre, cmd goredis.Cmder) error {
	if err := bt.call(ctx, &batchCall{pre: pre, plain: cmd}); err != nil {
		pre.SetErr(err)
		cmd.SetErr(err)
		return err
	}
	return cmd.Err()
}

// call runs c alone or in a batch. It returns an error only when c left
// the queue unrun because ctx ended.
func (bt *batcher) call(ctx context.Context, c *batchCall) error {
	bt.mu.Lock()
	if bt.leaders < bt.max {
		bt.leaders++
		if len(bt.queue) == 0 {
			// Alone: no batch to make.
			bt.mu.Unlock()
			bt.runOne(ctx, c)
			bt.mu.Lock()
			bt.finishLocked(nil)
			bt.mu.Unlock()
			return nil
		}
		batch := append(bt.queue, c)
		bt.queue = nil
		bt.mu.Unlock()
		bt.send(ctx, batch)
		return nil
	}
	c.done = make(chan struct{})
	bt.queue = append(bt.queue, c)
	bt.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		bt.mu.Lock()
		if i := slices.Index(bt.queue, c); i >= 0 {
			bt.queue = slices.Delete(bt.queue, i, i+1)
			bt.mu.Unlock()
			return ctx.Err()
		}
		bt.mu.Unlock()
		<-c.done // taken into a batch, or made to lead one
	}
	if c.lead {
		bt.mu.Lock()
		batch := append(bt.queue, c)
		bt.queue = nil
		bt.mu.Unlock()
		bt.send(ctx, batch)
	}
	return nil
}

// send runs batch, hands each caller its result, and passes the lead to
// the first queued caller if any. bt.leaders counts this batch.
func (bt *batcher) send(ctx context.Context, batch []*batchCall) {
	if len(batch) == 1 {
		bt.runOne(ctx, batch[0])
	} else {
		// The pipeline is everyone's: no caller's ctx may cut it short.
		ctx = context.WithoutCancel(ctx)
		cmds := make([]*goredis.Cmd, len(batch))
		_, _ = bt.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, c := range batch {
				if c.pre != nil {
					_ = p.Process(ctx, c.pre)
				}
				if c.plain != nil {
					_ = p.Process(ctx, c.plain)
				} else {
					cmds[i] = c.s.EvalSha(ctx, p, c.keys, c.args...)
				}
			}
			return nil
		})
		for i, c := range batch {
			if c.plain != nil {
				continue
			}
			c.cmd = cmds[i]
			if goredis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
				// Not cached on this server (flushed, or a failover):
				// this one again, sending the script itself.
				c.cmd = c.s.Run(ctx, bt.client, c.keys, c.args...)
			}
		}
	}
	bt.mu.Lock()
	defer bt.mu.Unlock()
	bt.finishLocked(batch)
}

// runOne runs c alone: exactly what its caller would do, with its ctx.
func (bt *batcher) runOne(ctx context.Context, c *batchCall) {
	switch {
	case c.pre != nil:
		_, _ = bt.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			_ = p.Process(ctx, c.pre)
			return p.Process(ctx, c.plain)
		})
	case c.plain != nil:
		_ = bt.client.Process(ctx, c.plain)
	default:
		c.cmd = c.s.Run(ctx, bt.client, c.keys, c.args...)
	}
}

// finishLocked ends a batch that came back: it hands each queued caller
// of batch its result, and passes the lead to the first queued caller if
// any. bt.leaders counted the batch; bt.mu is held.
func (bt *batcher) finishLocked(batch []*batchCall) {
	bt.leaders--
	for _, c := range batch {
		if c.done != nil && !c.lead {
			close(c.done)
		}
	}
	if len(bt.queue) > 0 && bt.leaders < bt.max {
		bt.leaders++
		next := bt.queue[0]
		bt.queue = bt.queue[1:]
		next.lead = true
		close(next.done)
	}
}
