package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/goleak"

	"github.com/cgn-bot/coord/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wantLines checks that out has a line with each of the phrases.
func wantLines(t *testing.T, out string, phrases ...string) {
	t.Helper()
	for _, p := range phrases {
		if !strings.Contains(out, p) {
			t.Errorf("the output has no %q", p)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

func TestRunEmbedded(t *testing.T) {
	var out syncBuffer
	cfg := config{instances: 3, duration: 1500 * time.Millisecond, listen: "127.0.0.1:0", tick: 200 * time.Millisecond}
	if err := run(t.Context(), cfg, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	wantLines(t, s,
		"no -redis: the instances share an in-process memory hub",
		"demo-3 up: own node on the memory hub",
		"GET /healthz -> 200",
		`"overall":"healthy"`,
		"session: demo-2 read session",
		"rate limit: 12 calls from 3 instances on one limit of 5 per 10s: 5 allowed",
		"demo-3 revoked alice everywhere (log out everywhere): 2 sessions ended",
		"first token again: gone",
		`ran the scheduled job under lock "demo:report" with fence`,
		"near caches coherent after",
		`event "report.ready" reached 2 of 2 other instances`,
		"once per tick: yes",
		"strictly increasing",
		"summary: events:",
		"distributed_lock_acquisitions_total{resource=demo:report,status=acquired}",
		"closed 3 instances",
		"GET /metrics -> 200",
		`periodic: every instance runs RunEvery("demo:digest"`,
		"ran the digest of period",
		"once per period: yes",
		"election: demo-2 sees demo-1 lead",
		"semaphore: demo-1 and demo-2 call the partner API; demo-3 tries too: refused",
		"a new reader waits behind the writer",
		"the reader left and demo-2 wrote",
	)
	for _, bad := range []string{"NOT coherent", "STILL LIVE", "NOT increasing", "want exactly 1", "once per period: NO"} {
		if strings.Contains(s, bad) {
			t.Errorf("the output reports a failure: %q\n%s", bad, s)
		}
	}
}

func TestRunOnGivenRedisOneInstance(t *testing.T) {
	m := miniredis.RunT(t)
	var out syncBuffer
	cfg := config{redisURL: "redis://" + m.Addr() + "/0", instances: 1, duration: 700 * time.Millisecond, listen: "127.0.0.1:0", tick: 200 * time.Millisecond}
	if err := run(t.Context(), cfg, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	wantLines(t, out.String(), "using Redis at redis://"+m.Addr(), "no other instance", "once per tick: yes", "summary:", "5 allowed")
}

func TestRunUntilInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{instances: 2, listen: "127.0.0.1:0", tick: 50 * time.Millisecond}, &out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "tick 2:") {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no second tick within 10s:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the output with a deadline
	}
	cancel() // as SIGINT does through signal.NotifyContext
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10s of its context ending")
	}
	wantLines(t, out.String(), "summary:", "closed 2 instances")
}

func TestUnreachableRedis(t *testing.T) {
	m := miniredis.RunT(t)
	addr := m.Addr()
	m.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err := run(ctx, config{redisURL: "redis://" + addr, instances: 1, listen: "127.0.0.1:0"}, io.Discard)
	if err == nil {
		t.Fatal("run on an unreachable Redis: no error")
	}
}

func TestFlags(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.redisURL != "" || cfg.instances != 3 || cfg.duration != 10*time.Second || cfg.listen != "127.0.0.1:0" {
		t.Errorf("defaults %+v", cfg)
	}
	// The command line of deploy/docker-compose.yml.
	cfg, err = parseFlags([]string{"-redis", "redis://redis:6379/0", "-duration", "0", "-listen", ":8080"}, io.Discard)
	if err != nil || cfg.redisURL != "redis://redis:6379/0" || cfg.duration != 0 || cfg.listen != ":8080" {
		t.Errorf("docker-compose flags: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{{"-instances", "0"}, {"-duration", "-1s"}, {"extra"}, {"-tick", "1ms"}, {"-nope"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q): no error", bad)
		}
	}
}

func TestRunOnRealRedis(t *testing.T) {
	srv := redistest.Start(t)
	var out syncBuffer
	cfg := config{redisURL: srv.URL() + "/0", instances: 3, duration: 1200 * time.Millisecond, listen: "127.0.0.1:0", tick: 200 * time.Millisecond}
	if err := run(t.Context(), cfg, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	wantLines(t, out.String(), "with fence", "near caches coherent", "2 sessions ended", "once per tick: yes")
}

// TestNoEmulatorInBuild checks that no package of the module, the demo
// included, needs the Redis emulator (miniredis) or its Lua interpreter
// outside tests, so that they never reach the build of a program that
// uses coord.
func TestNoEmulatorInBuild(t *testing.T) {
	goBin, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Fatalf("no go command: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "list", "-deps", "github.com/cgn-bot/coord/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(pkgs), pkgs)
	}
	for _, p := range pkgs {
		if strings.HasPrefix(p, "github.com/alicebob/miniredis") || strings.HasPrefix(p, "github.com/yuin/gopher-lua") {
			t.Errorf("%s is in the build of the module's packages", p)
		}
	}
}
