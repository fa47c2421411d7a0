package redis_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

const (
	killAddrEnv   = "COORD_STREAM_KILL_ADDR"
	killPrefixEnv = "COORD_STREAM_KILL_PREFIX"
)

// TestStreamKillChild is the consumer process TestStreamConsumerKilled
// kills: it consumes the stream with 4 handlers, printing "start <id>"
// when a handler starts and "done <id>" when it returns nil, until killed.
func TestStreamKillChild(t *testing.T) {
	addr := os.Getenv(killAddrEnv)
	if addr == "" {
		t.Skip("run by TestStreamConsumerKilled as its consumer process")
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	b, err := coordredis.New(c, &coordredis.Options{Prefix: os.Getenv(killPrefixEnv), InstanceID: "child"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	say := func(s string) {
		mu.Lock()
		fmt.Fprintln(os.Stdout, s)
		mu.Unlock()
	}
	_, err = b.Streams().Consume(context.Background(), "jobs", "workers", func(ctx context.Context, e coord.StreamEntry) error {
		say("start " + e.ID)
		time.Sleep(20 * time.Millisecond)
		say("done " + e.ID)
		return nil
	}, coord.ConsumerName("child"), coord.ConsumeConcurrency(4), coord.ClaimAfter(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	select {} // until killed
}

// TestStreamConsumerKilled kills -9 a consumer process with entries in
// flight: a sibling consumer of the group finishes its work. Every entry
// is handled, the group ends with nothing pending and nothing unread, the
// sibling handles each entry once, and the only entries handled twice are
// ones the killed process had started.
func TestStreamConsumerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process; skipped with -short")
	}
	srv := redistest.Start(t)
	prefix := "kill:"
	c := goredis.NewClient(srv.Options())
	b, err := coordredis.New(c, &coordredis.Options{Prefix: prefix, InstanceID: "parent"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close(context.Background())
		_ = c.Close()
	})
	s := b.Streams()
	ctx := t.Context()
	const n = 200
	ids := make([]string, n)
	for i := range ids {
		if ids[i], err = s.Append(ctx, "jobs", i); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestStreamKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killAddrEnv+"="+srv.Addr(), killPrefixEnv+"="+prefix)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started, done := map[string]bool{}, map[string]bool{}
	var mu sync.Mutex
	lines := make(chan struct{}, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			verb, id, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue
			}
			mu.Lock()
			switch verb {
			case "start":
				started[id] = true
			case "done":
				done[id] = true
			}
			mu.Unlock()
			select {
			case lines <- struct{}{}:
			default:
			}
		}
	}()
	// Kill it once it has finished some entries and has others in flight.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		inFlight := len(started) - len(done)
		ready := len(done) >= 20 && inFlight >= 2
		mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("the consumer process did not get going within 20s")
		}
		select {
		case <-lines:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	<-readDone

	var smu sync.Mutex
	sibling := map[string]int{}
	sub, err := s.Consume(ctx, "jobs", "workers", func(_ context.Context, e coord.StreamEntry) error {
		smu.Lock()
		sibling[e.ID]++
		smu.Unlock()
		return nil
	}, coord.ConsumerName("sibling"), coord.ConsumeConcurrency(4), coord.ClaimAfter(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	deadline = time.Now().Add(10 * time.Second)
	for {
		in, err := s.Info(ctx, "jobs")
		if err == nil && len(in.Groups) == 1 && in.Groups[0].Pending == 0 && in.Groups[0].Lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group did not drain within 10s: %+v, %v", in, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	smu.Lock()
	defer smu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, id := range ids {
		k := sibling[id]
		switch {
		case k > 1:
			t.Errorf("the sibling handled %s %d times", id, k)
		case k == 0 && !done[id]:
			t.Errorf("entry %s was never handled to the end", id)
		case k == 1 && done[id]:
			dups++
			if !started[id] {
				t.Errorf("entry %s was handled twice, not having been started by the killed process", id)
			}
		}
	}
	if dups > 4 {
		t.Errorf("%d entries handled twice; the killed process ran at most 4 at once, and acknowledges each as it finishes", dups)
	}
	t.Logf("killed process finished %d entries and had %d in flight; the sibling handled %d; %d handled twice", len(done), len(started)-len(done), len(sibling), dups)
}
