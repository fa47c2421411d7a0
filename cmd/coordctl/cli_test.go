package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// decode parses the JSON output of r into v.
func decode(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r)
	}
}

// wantCode fails the test unless r exited with code.
func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
}

func TestLockListAndShow(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx := context.Background()
	var locks []coord.Lock
	for _, n := range []string{"jobs:b", "jobs:a", "other"} {
		l, err := e.b.Locker().Acquire(ctx, n, coord.WithTTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Release(ctx) }()
		locks = append(locks, l)
	}

	// Flags after the argument are read too.
	r := e.run("lock", "list", "jobs:", "-o", "json")
	wantCode(t, r, exitOK)
	var list []leaseJSON
	decode(t, r, &list)
	if len(list) != 2 || list[0].Resource != "jobs:a" || list[1].Resource != "jobs:b" {
		t.Fatalf("lock list jobs: = %+v, want jobs:a and jobs:b, sorted", list)
	}
	for _, li := range list {
		want := locks[0]
		if li.Resource == "jobs:a" {
			want = locks[1]
		}
		if li.State != "held" || li.Fence != want.Fence() || li.TTLms <= 0 || li.TTLms > 60000 || len(li.Tag) != 8 || li.Holder != e.b.InstanceID() {
			t.Errorf("lease %+v: want held, fence %d, TTL in (0, 60000] ms, an 8-digit tag, holder %q", li, want.Fence(), e.b.InstanceID())
		}
	}
	// The lease value is the secret part, '.', the holder's instance ID:
	// only the ID may be printed.
	noSecrets := func(r result) {
		t.Helper()
		for _, l := range locks {
			sec, _, _ := strings.Cut(l.Token(), ".")
			if len(sec) < 22 || strings.Contains(r.stdout+r.stderr, sec) {
				t.Fatalf("a lock token's secret part was printed (or is short):\n%s", r)
			}
		}
	}
	noSecrets(r)

	r = e.run("lock", "list")
	wantCode(t, r, exitOK)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "RESOURCE") || !strings.HasPrefix(lines[1], "jobs:a ") || !strings.HasPrefix(lines[3], "other ") {
		t.Fatalf("lock list table:\n%s", r)
	}
	if !strings.Contains(lines[3], strconv.FormatInt(locks[2].Fence(), 10)) || !strings.Contains(lines[3], e.b.InstanceID()) {
		t.Fatalf("lock list table does not show other's fence %d and holder %q:\n%s", locks[2].Fence(), e.b.InstanceID(), r)
	}
	noSecrets(r)

	r = e.run("-o", "json", "lock", "show", "jobs:a")
	wantCode(t, r, exitOK)
	var one leaseJSON
	decode(t, r, &one)
	if one.Resource != "jobs:a" || one.State != "held" || one.Fence != locks[1].Fence() || one.Holder != e.b.InstanceID() {
		t.Fatalf("lock show jobs:a = %+v", one)
	}
	noSecrets(r)

	// A free resource: exit 3, still described.
	if err := locks[2].Release(ctx); err != nil {
		t.Fatal(err)
	}
	r = e.run("lock", "show", "other", "-o", "json")
	wantCode(t, r, exitNotFound)
	decode(t, r, &one)
	if one.State != "free" || one.Fence != locks[2].Fence() || one.Tag != "" {
		t.Fatalf("lock show of a released resource = %+v, want free with its last fence", one)
	}
	r = e.run("lock", "list", "-o", "json", "nothing:")
	wantCode(t, r, exitOK)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("lock list of no lease = %q, want []", r.stdout)
	}
}

// terminal returns a cli whose stdin counts as a terminal and answers
// answer.
func (e *env) terminal(answer string) *cli {
	c := e.cli(strings.NewReader(answer), nil, nil)
	c.isTerminal = func(io.Reader) bool { return true }
	return c
}

func TestLockForceRelease(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx := context.Background()
	l, err := e.b.Locker().Acquire(ctx, "stuck", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	locked := func() bool {
		ok, err := e.b.Locker().Locked(ctx, "stuck")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	// Not a terminal and no --yes: refused, nothing changed.
	r := e.run("lock", "force-release", "stuck")
	wantCode(t, r, exitRefused)
	if !strings.Contains(r.stderr, "--yes") || !locked() {
		t.Fatalf("refusal without --yes:\n%s\nlocked: %v", r, locked())
	}
	// A terminal that answers no, or nothing.
	for _, answer := range []string{"n\n", "\n", ""} {
		r = e.runCLI(ctx, e.terminal(answer), nil, e.args("lock", "force-release", "stuck"))
		wantCode(t, r, exitRefused)
		if !strings.Contains(r.stderr, `Force-release the lease on "stuck"? [y/N]`) || !locked() {
			t.Fatalf("answer %q:\n%s\nlocked: %v", answer, r, locked())
		}
	}
	// A terminal that answers yes.
	r = e.runCLI(ctx, e.terminal("y\n"), nil, e.args("lock", "force-release", "stuck"))
	wantCode(t, r, exitOK)
	if locked() {
		t.Fatal("the lease is still held after force-release")
	}
	if err := l.Extend(ctx, time.Minute); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("the old holder's Extend after force-release: %v, want ErrNotHeld", err)
	}

	// --yes with nothing to release: exit 3, JSON says so.
	r = e.run("lock", "force-release", "--yes", "-o", "json", "stuck")
	wantCode(t, r, exitNotFound)
	var out struct {
		Resource string `json:"resource"`
		Released bool   `json:"released"`
	}
	decode(t, r, &out)
	if out.Resource != "stuck" || out.Released {
		t.Fatalf("force-release of nothing = %+v", out)
	}
	// And with a lease: exit 0, a higher fence next.
	if _, err := e.b.Locker().Acquire(ctx, "stuck", coord.WithTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}
	r = e.run("lock", "force-release", "-y", "-o", "json", "stuck")
	wantCode(t, r, exitOK)
	decode(t, r, &out)
	if !out.Released || locked() {
		t.Fatalf("force-release --yes = %+v, locked %v", out, locked())
	}
}

func TestLockRun(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx := context.Background()
	locked := func(name string) bool {
		ok, err := e.b.Locker().Locked(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	t.Run("fence", func(t *testing.T) {
		r := e.run("lock", "run", "job", "--", "sh", "-c", `echo "$COORD_LOCK $COORD_FENCE"`)
		wantCode(t, r, exitOK)
		f := strings.Fields(r.stdout)
		if len(f) != 2 || f[0] != "job" {
			t.Fatalf("the command's output: %q, want the resource and the fence", r.stdout)
		}
		fence, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || fence <= 0 {
			t.Fatalf("COORD_FENCE = %q, want a positive integer", f[1])
		}
		if locked("job") {
			t.Fatal("the lease is still held after the command ended")
		}
		li, err := e.b.Lease(ctx, "job")
		if err != nil || li.Fence != fence {
			t.Fatalf("the resource's last fence is %d (%v), the command saw %d", li.Fence, err, fence)
		}
	})

	t.Run("held while running", func(t *testing.T) {
		dir := t.TempDir()
		mark := dir + "/running"
		done := make(chan result, 1)
		go func() {
			done <- e.run("lock", "run", "busy", "--", "sh", "-c", `touch "$0"; while [ -e "$0" ]; do sleep 0.01; done`, mark)
		}()
		coordtest.Eventually(t, 10*time.Second, func() bool { _, err := os.Stat(mark); return err == nil }, "the command started")
		if !locked("busy") {
			t.Fatal("the lease is not held while the command runs")
		}
		// Another lock run neither waits nor runs its command.
		r := e.run("lock", "run", "--no-wait", "busy", "--", "echo", "ran")
		wantCode(t, r, exitBusy)
		if strings.Contains(r.stdout, "ran") {
			t.Fatalf("the command ran without the lease:\n%s", r)
		}
		start := time.Now()
		r = e.run("lock", "run", "--wait", "300ms", "busy", "--", "echo", "ran")
		wantCode(t, r, exitBusy)
		if waited := time.Since(start); waited < 300*time.Millisecond || strings.Contains(r.stdout, "ran") {
			t.Fatalf("lock run --wait 300ms gave up after %v:\n%s", waited, r)
		}
		if err := os.Remove(mark); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			wantCode(t, r, exitOK)
		case <-time.After(10 * time.Second):
			t.Fatal("lock run did not end within 10s of its command")
		}
		if locked("busy") {
			t.Fatal("the lease is still held")
		}
	})

	t.Run("exit code", func(t *testing.T) {
		r := e.run("lock", "run", "three", "--", "sh", "-c", "exit 3")
		wantCode(t, r, 3)
		if locked("three") {
			t.Fatal("the lease is still held after the command exited 3")
		}
		if r.stderr != "" {
			t.Fatalf("coordctl wrote to stderr for the command's own exit code:\n%s", r)
		}
		r = e.run("lock", "run", "missing", "--", "/nonexistent/command")
		wantCode(t, r, 127)
		if locked("missing") {
			t.Fatal("the lease is still held after the command could not start")
		}
	})

	t.Run("lost", func(t *testing.T) {
		done := make(chan result, 1)
		go func() {
			done <- e.run("lock", "run", "--ttl", "300ms", "--kill-after", "5s", "lost", "--", "sleep", "60")
		}()
		coordtest.Eventually(t, 10*time.Second, func() bool { return locked("lost") }, "the lease taken")
		if ok, err := e.b.Locker().ForceRelease(ctx, "lost"); err != nil || !ok {
			t.Fatalf("ForceRelease = %v, %v", ok, err)
		}
		select {
		case r := <-done:
			wantCode(t, r, exitLost)
			if !strings.Contains(r.stderr, "lost") {
				t.Fatalf("no word of the lost lease:\n%s", r)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("lock run did not stop its command within 20s of losing the lease (renewal every 100ms)")
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		ictx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan result, 1)
		go func() {
			done <- e.runCLI(ictx, nil, nil, e.args("lock", "run", "intr", "--", "sleep", "60"))
		}()
		coordtest.Eventually(t, 10*time.Second, func() bool { return locked("intr") }, "the lease taken")
		cancel()
		select {
		case r := <-done:
			wantCode(t, r, 128+15) // SIGTERM, as a shell reports it
		case <-time.After(20 * time.Second):
			t.Fatal("lock run did not stop its command within 20s of an interrupt")
		}
		if locked("intr") {
			t.Fatal("the lease is still held after an interrupt")
		}
	})

	t.Run("kill after", func(t *testing.T) {
		ictx, cancel := context.WithCancel(ctx)
		defer cancel()
		dir := t.TempDir()
		done := make(chan result, 1)
		go func() {
			// The shell ignores SIGTERM: SIGKILL must follow.
			done <- e.runCLI(ictx, nil, nil, e.args("lock", "run", "--kill-after", "200ms", "stubborn", "--",
				"sh", "-c", `trap "" TERM; touch "$0"; sleep 5`, dir+"/started"))
		}()
		coordtest.Eventually(t, 10*time.Second, func() bool { _, err := os.Stat(dir + "/started"); return err == nil }, "the command started")
		cancel()
		select {
		case r := <-done:
			wantCode(t, r, 128+9) // SIGKILL
		case <-time.After(20 * time.Second):
			t.Fatal("lock run did not kill a command that ignores SIGTERM")
		}
		if locked("stubborn") {
			t.Fatal("the lease is still held")
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"lock", "run", "x"},
			{"lock", "run", "--", "x"},
			{"lock", "run", "--ttl", "0s", "x", "--", "true"},
			{"lock", "run", "bad\x01name", "--", "true"},
		} {
			r := e.run(args...)
			wantCode(t, r, exitUsage)
		}
	})
}

func TestSessions(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx := context.Background()
	ss := e.b.Sessions()
	var tokens []string
	var u1 []*coord.Session
	for _, u := range []string{"u1", "u1", "u2"} {
		s, err := ss.Create(ctx, u, map[string]any{"role": "admin", "n": 1})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, s.ID)
		if u == "u1" {
			u1 = append(u1, s)
		}
	}
	noTokens := func(r result) {
		t.Helper()
		for _, tok := range tokens {
			if strings.Contains(r.stdout+r.stderr, tok) {
				t.Fatalf("a session token was printed:\n%s", r)
			}
		}
	}

	r := e.run("session", "count", "-o", "json")
	wantCode(t, r, exitOK)
	var count struct{ Sessions int64 }
	decode(t, r, &count)
	if count.Sessions != 3 {
		t.Fatalf("session count = %d, want 3", count.Sessions)
	}
	r = e.run("session", "count")
	if wantCode(t, r, exitOK); strings.TrimSpace(r.stdout) != "3" {
		t.Fatalf("session count table = %q, want 3", r.stdout)
	}

	r = e.run("session", "stats", "-o", "json")
	wantCode(t, r, exitOK)
	var stats struct {
		Sessions, Users int64
		Oldest          string `json:"oldest_created_at"`
	}
	decode(t, r, &stats)
	if oldest, err := time.Parse(time.RFC3339, stats.Oldest); stats.Sessions != 3 || stats.Users != 2 || err != nil || oldest.IsZero() {
		t.Fatalf("session stats = %+v (%v)", stats, err)
	}

	r = e.run("session", "list", "u1", "-o", "json")
	wantCode(t, r, exitOK)
	noTokens(r)
	var list []sessionJSON
	decode(t, r, &list)
	if len(list) != 2 || list[0].Handle == list[1].Handle {
		t.Fatalf("session list u1 = %+v, want two sessions", list)
	}
	for _, s := range list {
		if (s.Handle != u1[0].Handle && s.Handle != u1[1].Handle) || s.User != "u1" || s.Fields != 2 || s.ExpiresAt == "" || s.Deadline != "" || s.CreatedAt == "" {
			t.Fatalf("session list u1 = %+v, want u1's sessions %s and %s by handle", list, u1[0].Handle, u1[1].Handle)
		}
	}
	if strings.Contains(r.stdout, "admin") {
		t.Fatalf("session list printed session data:\n%s", r)
	}
	r = e.run("session", "list", "u1")
	wantCode(t, r, exitOK)
	noTokens(r)
	if !strings.Contains(r.stdout, u1[0].Handle) || !strings.HasPrefix(r.stdout, "HANDLE") {
		t.Fatalf("session list table:\n%s", r)
	}

	// Revoke one by handle; again, or another user's: exit 3.
	r = e.run("session", "revoke", "u1", u1[0].Handle, "-o", "json")
	wantCode(t, r, exitOK)
	if _, err := ss.Get(ctx, u1[0].ID); err == nil {
		t.Fatal("the revoked session is still live")
	}
	wantCode(t, e.run("session", "revoke", "u1", u1[0].Handle), exitNotFound)
	wantCode(t, e.run("session", "revoke", "u2", u1[1].Handle), exitNotFound)
	if _, err := ss.Get(ctx, u1[1].ID); err != nil {
		t.Fatalf("revoking another user's handle ended the session: %v", err)
	}
	r = e.run("session", "revoke", "u1", tokens[1])
	wantCode(t, r, exitUsage) // a token is no handle
	noTokens(r)

	// Log out everywhere: refused without --yes off a terminal.
	wantCode(t, e.run("session", "logout", "u1"), exitRefused)
	if _, err := ss.Get(ctx, u1[1].ID); err != nil {
		t.Fatalf("a refused logout ended a session: %v", err)
	}
	r = e.run("session", "logout", "--yes", "u1", "-o", "json")
	wantCode(t, r, exitOK)
	var lo struct {
		User  string
		Ended int
	}
	decode(t, r, &lo)
	if lo.User != "u1" || lo.Ended != 1 {
		t.Fatalf("logout = %+v, want 1 session of u1 ended", lo)
	}
	r = e.run("session", "count", "-o", "json")
	decode(t, r, &count)
	if count.Sessions != 1 {
		t.Fatalf("session count after logout = %d, want 1", count.Sessions)
	}
}

func TestTail(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb coordtest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- e.cli(nil, &out, &errb).main(ctx, e.args("tail", "-o", "json"))
	}()
	coordtest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(errb.String(), "tailing invalidations and events") }, "tail subscribed")

	if err := e.b.Invalidator().Invalidate(ctx, "user:1", map[string]string{"reason": "update"}); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Invalidator().InvalidatePattern(ctx, "user:*", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Events().Publish(ctx, "shard.rebalance", map[string]int{"shard": 3}); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Publish(ctx, e.prefix+"shard:event", "not json").Err(); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool { return strings.Count(out.String(), "\n") >= 4 }, "four lines tailed")
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("tail ended with %d, want 0:\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not end within 10s of an interrupt")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var msgs []tailJSON
	for _, l := range lines {
		var m tailJSON
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != 4 {
		t.Fatalf("tailed %d messages, want 4:\n%s", len(msgs), out.String())
	}
	if m := msgs[0]; m.Type != "invalidation" || m.Key != "user:1" || string(m.Metadata) != `{"reason":"update"}` || m.Instance != e.b.InstanceID() || m.Timestamp == "" {
		t.Errorf("line 1 = %+v", m)
	}
	if m := msgs[1]; m.Type != "pattern" || m.Key != "user:*" || m.Channel != e.prefix+"cache:invalidate:pattern" {
		t.Errorf("line 2 = %+v", m)
	}
	if m := msgs[2]; m.Type != "event" || m.Topic != "shard.rebalance" || string(m.Payload) != `{"shard":3}` {
		t.Errorf("line 3 = %+v", m)
	}
	if m := msgs[3]; m.Type != "malformed" || m.Size != len("not json") || m.Error == "" {
		t.Errorf("line 4 = %+v", m)
	}
}

func TestTailEventsTopic(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb coordtest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- e.cli(nil, &out, &errb).main(ctx, e.args("tail", "events", "--topic", "wanted"))
	}()
	coordtest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(errb.String(), "tailing events on") }, "tail subscribed")
	// From one publisher, in order: the unwanted ones first.
	if err := e.b.Invalidator().Invalidate(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Events().Publish(ctx, "other", 1); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Events().Publish(ctx, "wanted", 2); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "wanted") }, "the wanted event tailed")
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("tail ended with %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "\tevent\twanted\tfrom="+e.b.InstanceID()+"\t2") {
		t.Fatalf("tail events --topic wanted printed:\n%s", out.String())
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	r := e.run("health", "-o", "json")
	wantCode(t, r, exitOK)
	var h healthJSON
	decode(t, r, &h)
	if h.Status != "healthy" || h.Mode != "single" || h.Connection != "connected" || h.Sessions != 0 {
		t.Fatalf("health = %+v", h)
	}
	r = e.run("health")
	if wantCode(t, r, exitOK); !strings.Contains(r.stdout, "healthy") {
		t.Fatalf("health table:\n%s", r)
	}

	// Nothing listens on the port: unhealthy, exit 1, still reported.
	srv := redistest.Start(t)
	down := srv.URL()
	srv.Kill(t)
	r = e.runCLI(context.Background(), nil, nil, []string{"--url", down, "--timeout", "500ms", "health", "-o", "json"})
	wantCode(t, r, exitError)
	decode(t, r, &h)
	if h.Status != "unhealthy" || h.Error == "" {
		t.Fatalf("health of a dead server = %+v", h)
	}
}

func TestUsage(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"lock"},
		{"lock", "frob"},
		{"lock", "show"},
		{"lock", "show", "a", "b"},
		{"lock", "show", ""},
		{"session", "list"},
		{"session", "revoke", "u1", "not-a-handle"},
		{"tail", "everything"},
		{"tail", "invalidations", "--topic", "x"},
		{"--no-such-flag", "health"},
		{"-o", "yaml", "health"},
		{"--timeout", "0s", "health"},
	} {
		r := e.run(args...)
		if r.code != exitUsage || r.stderr == "" {
			t.Errorf("coordctl %q: want exit 2 with a message, got %s", args, r)
		}
	}
	// An empty -o is refused as such; it does not reset the flags before it.
	if r := e.run("-o", "", "health"); r.code != exitUsage || !strings.Contains(r.stderr, `-o ""`) {
		t.Fatalf("-o \"\": want exit 2 naming -o, got %s", r)
	}
	// run, the entry main uses: the environment is the process's, stdin
	// a reader that is no terminal.
	var out, errb coordtest.SyncBuffer
	if code := run(context.Background(), e.args("-o", "json", "session", "count"), strings.NewReader(""), &out, &errb); code != exitOK || strings.TrimSpace(out.String()) != `{"sessions":0}` {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	if code := run(context.Background(), e.args("lock", "force-release", "x"), strings.NewReader("y\n"), &out, &errb); code != exitRefused {
		t.Fatalf("run: force-release with a reader for stdin: exit %d, want 5 (not a terminal)", code)
	}
	// Help is not an error.
	r := e.runCLI(context.Background(), nil, nil, []string{"help"})
	if wantCode(t, r, exitOK); !strings.Contains(r.stdout, "Exit codes") {
		t.Fatalf("help:\n%s", r)
	}
	// No Redis configured at all.
	r = e.runCLI(context.Background(), nil, nil, []string{"session", "count"})
	wantCode(t, r, exitUsage)
	if !strings.Contains(r.stderr, "REDIS_URL") {
		t.Fatalf("no Redis configured:\n%s", r)
	}
	// A memory URL names nothing coordctl can reach.
	r = e.runCLI(context.Background(), nil, nil, []string{"--url", "mem://x", "health"})
	wantCode(t, r, exitUsage)
}

func TestEnvironment(t *testing.T) {
	srv := redistest.Start(t, redistest.WithPassword("env-pass-123"))
	e := newEnv(t, srv)
	if _, err := e.b.Sessions().Create(context.Background(), "u", nil); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(srv.Addr(), ":")
	for name, vars := range map[string]map[string]string{
		"host":       {"REDIS_HOST": host, "REDIS_PORT": port, "REDIS_PASSWORD": "env-pass-123"},
		"url":        {"REDIS_URL": srv.URL()},
		"url prefix": {"REDIS_URL": srv.URL() + "?prefix=" + e.prefix},
	} {
		t.Run(name, func(t *testing.T) {
			c := e.cli(nil, nil, nil)
			c.getenv = func(k string) string { return vars[k] }
			args := []string{"session", "count", "-o", "json"}
			if vars["REDIS_URL"] == "" || !strings.Contains(vars["REDIS_URL"], "prefix=") {
				args = append([]string{"--prefix", e.prefix}, args...)
			}
			r := e.runCLI(context.Background(), c, nil, args)
			wantCode(t, r, exitOK)
			var count struct{ Sessions int64 }
			decode(t, r, &count)
			if count.Sessions != 1 {
				t.Fatalf("session count = %d, want 1", count.Sessions)
			}
		})
	}
}

func TestNoPasswordInErrors(t *testing.T) {
	srv := redistest.Start(t, redistest.WithPassword("right-pass-456"))
	e := newEnv(t, srv)
	const wrong = "wrong-pass-789"
	cases := map[string]struct {
		args []string
		vars map[string]string
		code int
	}{
		"wrong password in URL": {[]string{"--url", "redis://:" + wrong + "@" + srv.Addr(), "health"}, nil, exitError},
		"wrong password in env": {[]string{"lock", "list"}, map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": strconv.Itoa(srv.Port()), "REDIS_PASSWORD": wrong}, exitError},
		"malformed URL":         {[]string{"--url", "redis://:" + wrong + "@127.0.0.1:notaport", "health"}, nil, exitUsage},
		"bad URL option":        {[]string{"--url", "redis://:" + wrong + "@" + srv.Addr() + "?bogus=1", "health"}, nil, exitUsage},
		"bad URL escape":        {[]string{"--url", "redis://:" + wrong + "%zz@" + srv.Addr(), "health"}, nil, exitUsage},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := e.cli(nil, nil, nil)
			c.getenv = func(k string) string { return tc.vars[k] }
			r := e.runCLI(context.Background(), c, nil, append([]string{"--timeout", "2s"}, tc.args...))
			wantCode(t, r, tc.code)
			if strings.Contains(r.stdout+r.stderr, wrong) || strings.Contains(r.stdout+r.stderr, "right-pass-456") {
				t.Fatalf("a password was printed:\n%s", r)
			}
			if r.stderr == "" && r.stdout == "" {
				t.Fatal("no message")
			}
		})
	}
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster takes seconds to form; skipped with -short")
	}
	c := redistest.StartCluster(t, 3)
	cc := c.ClusterClient(t)
	b, err := coordredis.New(cc, &coordredis.Options{Prefix: "cl:"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close(context.Background()) }()
	const n = 30 // over every master's slots
	for i := range n {
		if _, err := b.Locker().Acquire(context.Background(), fmt.Sprintf("r%02d", i), coord.WithTTL(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, url: "redis://" + c.Addrs()[1], prefix: "cl:"}
	r := e.run("lock", "list", "-o", "json")
	wantCode(t, r, exitOK)
	var list []leaseJSON
	decode(t, r, &list)
	if len(list) != n {
		t.Fatalf("lock list on a Cluster found %d of %d leases", len(list), n)
	}
	r = e.run("health", "-o", "json")
	wantCode(t, r, exitOK)
	var h healthJSON
	decode(t, r, &h)
	if h.Mode != "cluster" || h.Status != "healthy" {
		t.Fatalf("health on a Cluster = %+v", h)
	}
	// tail on a Cluster hears what is published through another node.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb coordtest.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- e.cli(nil, &out, &errb).main(ctx, e.args("tail", "invalidations")) }()
	coordtest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(errb.String(), "tailing") }, "tail subscribed")
	coordtest.Eventually(t, 10*time.Second, func() bool {
		if err := b.Invalidator().Invalidate(ctx, "k1", nil); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(out.String(), "\tinvalidation\tk1\t")
	}, "an invalidation tailed on a Cluster")
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("tail on a Cluster ended with %d:\n%s", code, errb.String())
	}

	r = e.run("lock", "force-release", "--yes", "r07")
	wantCode(t, r, exitOK)
	wantCode(t, e.run("lock", "show", "r07"), exitNotFound)
}

func TestTLS(t *testing.T) {
	srv := redistest.Start(t, redistest.WithTLS(), redistest.WithPassword("tls-pass-321"))
	e := &env{t: t, url: srv.URL(), prefix: "tls:"}
	for name, tc := range map[string]struct {
		args []string
		vars map[string]string
		code int
	}{
		"URL option":       {[]string{"--url", srv.URL() + "?tls_ca_file=" + url.QueryEscape(srv.CAFile())}, nil, exitOK},
		"REDIS_URL":        {nil, map[string]string{"REDIS_URL": srv.URL(), "REDIS_TLS_CA_FILE": srv.CAFile()}, exitOK},
		"REDIS_URL prefix": {nil, map[string]string{"REDIS_URL": srv.URL() + "?prefix=tls:", "REDIS_TLS_CA_FILE": srv.CAFile()}, exitOK},
		"REDIS_HOST": {nil, map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": strconv.Itoa(srv.Port()),
			"REDIS_PASSWORD": "tls-pass-321", "REDIS_TLS": "true", "REDIS_TLS_CA_FILE": srv.CAFile()}, exitOK},
		"untrusted": {[]string{"--url", srv.URL()}, nil, exitError},
	} {
		t.Run(name, func(t *testing.T) {
			c := e.cli(nil, nil, nil)
			c.getenv = func(k string) string { return tc.vars[k] }
			r := e.runCLI(context.Background(), c, nil, append(tc.args, "--timeout", "3s", "health", "-o", "json"))
			wantCode(t, r, tc.code)
			if strings.Contains(r.stdout+r.stderr, "tls-pass-321") {
				t.Fatalf("the password was printed:\n%s", r)
			}
		})
	}
}
