package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

func TestJobShow(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started, release := make(chan coord.Lock, 1), make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		ended <- coord.RunEvery(ctx, e.b, "report", time.Hour, func(ctx context.Context) error {
			l, _ := coord.LockFromContext(ctx)
			started <- l
			<-release
			return nil
		})
	}()
	defer func() { cancel(); <-ended }()
	var lease coord.Lock
	select {
	case lease = <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not start within 10s")
	}

	r := e.run("job", "show", "report", "--every", "1h", "-o", "json")
	wantCode(t, r, exitOK)
	var j jobJSON
	decode(t, r, &j)
	if j.Job != "report" || j.PeriodMS != 3600000 || j.Done || j.Lease.State != "held" || j.Lease.Fence != lease.Fence() {
		t.Fatalf("job show while running = %+v; want report, 1h, not done, lease held with fence %d", j, lease.Fence())
	}
	if j.NextMS <= 0 || j.NextMS > 3600000 || j.Start == "" {
		t.Errorf("job show: next %d ms, start %q; want in (0, 1h] and a time", j.NextMS, j.Start)
	}
	if strings.Contains(r.stdout, lease.Token()) {
		t.Fatal("job show printed the lease's token")
	}

	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = e.run("job", "show", "report", "--every", "1h", "-o", "json")
		wantCode(t, r, exitOK)
		decode(t, r, &j)
		if j.Done && j.Lease.State != "held" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job show after the run = %+v; want done, lease free", j)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r = e.run("job", "show", "report", "--every", "1h")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "FAILURES") || !strings.Contains(r.stdout, "report") || !strings.Contains(r.stdout, "true") {
		t.Errorf("job show table:\n%s", r.stdout)
	}

	for _, bad := range [][]string{{"job", "show", "report"}, {"job", "show", "--every", "1h"}, {"job", "show", "", "--every", "1h"}, {"job", "list"}} {
		wantCode(t, e.run(bad...), exitUsage)
	}
}
