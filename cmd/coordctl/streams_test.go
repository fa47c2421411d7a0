package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

func TestStreams(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx := context.Background()
	s := e.b.Streams()
	var ids []string
	for i := range 3 {
		id, err := s.Append(ctx, "orders", map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sub, err := s.Consume(ctx, "orders", "billing", func(context.Context, coord.StreamEntry) error {
		return errors.New("always fails")
	}, coord.ClaimAfter(10*time.Millisecond), coord.MaxDeliveries(1))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	deadline := time.Now().Add(5 * time.Second)
	for {
		dead, err := s.DeadLetters(ctx, "orders", 10)
		if err == nil && len(dead) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters = %v, %v; want 3", dead, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	r := e.run("stream", "info", "orders", "-o", "json")
	wantCode(t, r, exitOK)
	var info streamInfoJSON
	decode(t, r, &info)
	if info.Length != 3 || info.FirstID != ids[0] || info.LastID != ids[2] || info.DeadLetters != 3 || len(info.Groups) != 1 || info.Groups[0].Name != "billing" {
		t.Fatalf("stream info = %+v", info)
	}

	r = e.run("stream", "pending", "orders")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "billing") || !strings.Contains(r.stdout, "PENDING") {
		t.Fatalf("stream pending printed:\n%s", r.stdout)
	}

	r = e.run("stream", "replay", "orders", ids[1], "-n", "5", "-o", "json")
	wantCode(t, r, exitOK)
	var entries []streamEntryJSON
	decode(t, r, &entries)
	if len(entries) != 2 || entries[0].ID != ids[1] || string(entries[0].Payload) != `{"n":1}` {
		t.Fatalf("stream replay from %s = %+v", ids[1], entries)
	}

	r = e.run("stream", "dead", "orders", "-o", "json")
	wantCode(t, r, exitOK)
	decode(t, r, &entries)
	if len(entries) != 3 || entries[0].Deliveries != 1 {
		t.Fatalf("stream dead = %+v, want 3 with 1 delivery", entries)
	}

	wantCode(t, e.run("stream", "replay", "orders", "not-an-id"), exitError)
	wantCode(t, e.run("stream", "frobnicate"), exitUsage)
	wantCode(t, e.run("stream", "info"), exitUsage)
}
