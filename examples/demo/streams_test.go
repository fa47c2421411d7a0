package main

import (
	"testing"
	"time"
)

func TestStreamsScene(t *testing.T) {
	var out syncBuffer
	cfg := config{instances: 2, duration: time.Second, listen: "127.0.0.1:0", tick: 200 * time.Millisecond}
	if err := run(t.Context(), cfg, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	wantLines(t, out.String(),
		"is killed before finishing it",
		"claimed entry",
		"(delivery 2, payload {\"action\":\"refund\",\"order\":\"A-1042\"})",
		"0 pending, lag 0",
	)
}
