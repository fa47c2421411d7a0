package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// secretOf returns the secret part of a lease token: what precedes the
// holder's instance ID.
func secretOf(t *testing.T, l coord.Lock) string {
	t.Helper()
	sec, id, ok := strings.Cut(l.Token(), ".")
	if !ok || len(sec) < 22 || id == "" {
		t.Fatalf("a lease token does not have the shape <secret>.<instance ID>")
	}
	return sec
}

// noSecret fails the test when r printed one of secrets.
func noSecret(t *testing.T, r result, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("a lease token's secret part was printed:\n%s", r)
		}
	}
}

func TestRWAndSemShow(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx := context.Background()
	rw := e.b.RWLocker()
	var secrets []string
	for range 2 {
		l, err := rw.RLock(ctx, "cfg", coord.WithTTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Release(ctx) }()
		secrets = append(secrets, secretOf(t, l))
	}
	r := e.run("rw", "show", "cfg", "-o", "json")
	wantCode(t, r, exitOK)
	var ri rwJSON
	decode(t, r, &ri)
	if ri.Resource != "cfg" || ri.Writer != nil || len(ri.Readers) != 2 || ri.Fence == 0 {
		t.Fatalf("rw show cfg = %+v, want two readers, no writer, a fence", ri)
	}
	for _, h := range ri.Readers {
		if h.Holder != e.b.InstanceID() || h.TTLms <= 0 || h.TTLms > 60000 || len(h.Tag) != 8 {
			t.Errorf("reader %+v: want holder %q, TTL in (0, 60000] ms, an 8-digit tag", h, e.b.InstanceID())
		}
	}
	noSecret(t, r, secrets)
	r = e.run("rw", "show", "cfg")
	wantCode(t, r, exitOK)
	if strings.Count(r.stdout, "reader") != 2 || !strings.Contains(r.stdout, e.b.InstanceID()) {
		t.Fatalf("rw show table:\n%s", r)
	}
	noSecret(t, r, secrets)
	wantCode(t, e.run("rw", "show", "nothing"), exitNotFound)

	sem := e.b.Semaphores()
	p, err := sem.Acquire(ctx, "pool", 3, coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Release(ctx) }()
	secrets = append(secrets, secretOf(t, p))
	r = e.run("sem", "show", "pool", "-o", "json")
	wantCode(t, r, exitOK)
	var si semJSON
	decode(t, r, &si)
	if len(si.Holders) != 1 || si.Holders[0].Holder != e.b.InstanceID() || si.Fence != p.Fence() {
		t.Fatalf("sem show pool = %+v, want one permit of %q with fence %d", si, e.b.InstanceID(), p.Fence())
	}
	noSecret(t, r, secrets)
	r = e.run("sem", "show", "pool")
	wantCode(t, r, exitOK)
	noSecret(t, r, secrets)
	wantCode(t, e.run("sem", "show", "empty"), exitNotFound)
	wantCode(t, e.run("sem", "list"), exitUsage)
}

func TestElectShowAndWatch(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	r := e.run("elect", "show", "sched", "-o", "json")
	wantCode(t, r, exitNotFound)
	var li leaderJSON
	decode(t, r, &li)
	if li.Leader || li.Election != "sched" {
		t.Fatalf("elect show with no leader = %+v", li)
	}

	var out, errb coordtest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- e.cli(nil, &out, &errb).main(ctx, e.args("elect", "watch", "sched", "--count", "3", "-o", "json"))
	}()
	// The first line is the state now: no leader.
	coordtest.Eventually(t, 10*time.Second, func() bool { return strings.Count(out.String(), "\n") >= 1 }, "watch printed the leader")

	l, err := e.b.Elector().Campaign(ctx, "sched", "10.0.0.7:8080", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	secret := secretOf(t, l)
	r = e.run("elect", "show", "sched")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, e.b.InstanceID()) || !strings.Contains(r.stdout, "10.0.0.7:8080") {
		t.Fatalf("elect show table:\n%s", r)
	}
	noSecret(t, r, []string{secret})
	coordtest.Eventually(t, 10*time.Second, func() bool { return strings.Count(out.String(), "\n") >= 2 }, "watch saw the new leader")
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("elect watch ended with %d:\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("elect watch did not end within 10s of its third line")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got []leaderJSON
	for _, line := range lines {
		var one leaderJSON
		decode(t, result{stdout: line}, &one)
		got = append(got, one)
	}
	if len(got) != 3 || got[0].Leader || !got[1].Leader || got[2].Leader ||
		got[1].Holder != e.b.InstanceID() || got[1].Identity != "10.0.0.7:8080" || got[1].Term != l.Fence() {
		t.Fatalf("elect watch printed %+v, want none, the leader (term %d), none", got, l.Fence())
	}
	if strings.Contains(out.String(), secret) {
		t.Fatal("elect watch printed a token's secret part")
	}
}
