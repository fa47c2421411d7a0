package memory

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestJobRecordsDropped: the hub keeps no record of a job whose period
// has ended, however many jobs ran.
func TestJobRecordsDropped(t *testing.T) {
	hub := NewHub(nil)
	n := hub.New(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	ctx := t.Context()
	const period = 20 * time.Millisecond
	var last time.Duration
	for i := range 200 {
		job := fmt.Sprintf("job-%d", i)
		s, err := n.Jobs().Due(ctx, job, period)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Jobs().Complete(ctx, job, s); err != nil {
			t.Fatal(err)
		}
		last = s.Next
	}
	time.Sleep(last + period) // every record's period has ended
	deadline := time.Now().Add(2 * time.Second)
	for {
		// Calls on one job sweep the others' records away.
		if _, err := n.Jobs().Due(ctx, "live", time.Hour); err != nil {
			t.Fatal(err)
		}
		hub.jobs.mu.Lock()
		left := len(hub.jobs.recs)
		hub.jobs.mu.Unlock()
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d job records are left after their periods ended", left)
		}
	}
}
