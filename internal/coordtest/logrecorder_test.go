package coordtest

import (
	"log/slog"
	"sync"
	"testing"
)

func TestLogRecorder(t *testing.T) {
	rec := NewLogRecorder(slog.LevelInfo)
	log := slog.New(rec)
	log.Debug("below the level")
	log.With("source", "x").Warn("lost; retrying", "attempt", 1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				log.Info("tick")
				_ = rec.All() // a reader while the writers run
			}
		})
	}
	wg.Wait()
	all := rec.All()
	if len(all) != 101 {
		t.Fatalf("%d records, want 101 (the Debug one left out)", len(all))
	}
	got := rec.Find("retrying")
	if len(got) != 1 {
		t.Fatalf("Find(retrying) = %v, want one record", got)
	}
	r := got[0]
	if r.Level != slog.LevelWarn || r.Msg != "lost; retrying" || r.Attrs["source"] != "x" || r.Attrs["attempt"] != "1" {
		t.Errorf("record %+v: want WARN, its message, source=x (WithAttrs) and attempt=1", r)
	}
	if want := `WARN "lost; retrying" attempt="1" source="x"`; r.Text() != want {
		t.Errorf("Text() = %s, want %s", r.Text(), want)
	}
	all[0].Msg = "changed"
	if rec.All()[0].Msg == "changed" {
		t.Error("All returned the recorder's own slice, not a copy")
	}
	if len(rec.Find("tick")) != 100 {
		t.Errorf("Find(tick): %d records, want 100", len(rec.Find("tick")))
	}
}
