package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord/internal/coordtest"
)

// pipelineCounter counts the pipelines of more than one EVALSHA or ECHO
// a client sends (not those of its connection handshake), and the
// commands in them.
type pipelineCounter struct{ pipelines, cmds atomic.Int64 }

func (pc *pipelineCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (pc *pipelineCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return next
}
func (pc *pipelineCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if len(cmds) > 1 && (cmds[0].Name() == "evalsha" || cmds[0].Name() == "echo") {
			pc.pipelines.Add(1)
			pc.cmds.Add(int64(len(cmds)))
		}
		return next(ctx, cmds)
	}
}

var echoScript = goredis.NewScript(`return ARGV[1]`)

// TestBatcher: concurrent callers of scripts and plain commands share
// pipelines and each gets its own result, also when the server lost its
// script cache meanwhile.
func TestBatcher(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		ctx := t.Context()
		c := goredis.NewClient(opts())
		t.Cleanup(func() { _ = c.Close() })
		var pc pipelineCounter
		c.AddHook(&pc)
		bt := &batcher{client: c, max: 2}

		// One caller at a time: no pipeline.
		for i := range 5 {
			if got, err := bt.run(ctx, echoScript, []string{"k"}, i).Text(); err != nil || got != fmt.Sprint(i) {
				t.Fatalf("run %d = %q, %v", i, got, err)
			}
		}
		if n := pc.pipelines.Load(); n != 0 {
			t.Fatalf("%d pipelines for callers one at a time", n)
		}

		const callers, each = 32, 60
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for g := range callers {
			wg.Go(func() {
				for i := range each {
					if g == 0 && i == each/2 {
						// The scripts vanish from the server mid-run.
						if err := c.ScriptFlush(ctx).Err(); err != nil {
							errs <- err
							return
						}
					}
					want := fmt.Sprintf("%d/%d", g, i)
					var got string
					var err error
					if g%2 == 0 {
						got, err = bt.run(ctx, echoScript, []string{"k" + want}, want).Text()
					} else {
						cmd := goredis.NewStringCmd(ctx, "echo", want)
						err = bt.process(ctx, cmd)
						got = cmd.Val()
					}
					if err != nil || got != want {
						errs <- fmt.Errorf("caller %d run %d = %q, %v", g, i, got, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if pc.pipelines.Load() == 0 {
			t.Errorf("%d concurrent callers never shared a pipeline", callers)
		}
		t.Logf("%d of %d runs went in %d shared pipelines", pc.cmds.Load(), callers*each, pc.pipelines.Load())
		bt.mu.Lock()
		defer bt.mu.Unlock()
		if bt.leaders != 0 || len(bt.queue) != 0 {
			t.Errorf("after the runs: %d batches in flight, %d queued", bt.leaders, len(bt.queue))
		}
	})
}

// TestBatcherQueuedCallerLeaves: a queued caller whose ctx ends returns
// at once with ctx's error, and the callers behind it still run.
func TestBatcherQueuedCallerLeaves(t *testing.T) {
	// A server that accepts connections and answers nothing until told
	// to: the batch in flight stays in flight.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var conns sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		conns.Wait()
	})
	conns.Go(func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer cn.Close()
				<-release
			})
		}
	})
	c := goredis.NewClient(&goredis.Options{Addr: ln.Addr().String(), Protocol: 2, ReadTimeout: 5 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	bt := &batcher{client: c, max: 1}

	inFlight := make(chan error, 1)
	go func() { inFlight <- bt.run(context.Background(), echoScript, []string{"k"}, "a").Err() }()
	coordtest.Eventually(t, 2*time.Second, func() bool {
		bt.mu.Lock()
		defer bt.mu.Unlock()
		return bt.leaders == 1
	}, "the first call is in flight")

	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() { queued <- bt.run(ctx, echoScript, []string{"k"}, "b").Err() }()
	behind := make(chan error, 1)
	go func() { behind <- bt.run(context.Background(), echoScript, []string{"k"}, "c").Err() }()
	coordtest.Eventually(t, 2*time.Second, func() bool {
		bt.mu.Lock()
		defer bt.mu.Unlock()
		return len(bt.queue) == 2
	}, "two calls queue")
	cancel()
	select {
	case err := <-queued:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("queued call whose ctx ended = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a queued call whose ctx ended did not return")
	}
	close(release) // the server hangs up: the calls in flight and behind fail
	for _, ch := range []chan error{inFlight, behind} {
		select {
		case err := <-ch:
			if err == nil {
				t.Error("a call to a server that hung up succeeded")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call did not return after the server hung up")
		}
	}
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.leaders != 0 || len(bt.queue) != 0 {
		t.Errorf("at the end: %d batches in flight, %d queued", bt.leaders, len(bt.queue))
	}
}
