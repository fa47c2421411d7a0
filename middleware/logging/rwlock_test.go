package logging_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/logging"
)

// TestLeaseShapesLogged checks that the acquisitions of read leases,
// permits and leaderships are logged under their own operations, with the
// fence and the token's tag (never the token), and that their leases are
// decorated: a permit lost to a force release is logged when Release
// finds it gone.
func TestLeaseShapesLogged(t *testing.T) {
	c := newCapture(slog.LevelDebug)
	hub := memory.NewHub(nil)
	ctx := context.Background()
	b := logging.New(slog.New(c), nil).Backend(hub.New(nil))
	other := hub.New(nil)
	t.Cleanup(func() { _ = b.Close(ctx); _ = other.Close(ctx) })

	r, err := b.RWLocker().RLock(ctx, "res", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	w, err := other.RWLocker().Lock(ctx, "res2", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Semaphores().Acquire(ctx, "sem", 3, coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	l, err := b.Elector().Campaign(ctx, "el", "node-a", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if l.Identity() != "node-a" {
		t.Errorf("Identity through the decorator = %q", l.Identity())
	}
	for _, msg := range []string{"coord rwlock_rlock", "coord semaphore_acquire", "coord election_campaign"} {
		recs := c.find(msg)
		if len(recs) != 1 {
			t.Fatalf("%d records %q, want 1", len(recs), msg)
		}
		if v, ok := attr(recs[0], "fence"); !ok || v.Int64() <= 0 {
			t.Errorf("%s: fence %v", msg, v)
		}
	}
	if v, _ := attr(c.find("coord semaphore_acquire")[0], "limit"); v.Int64() != 3 {
		t.Errorf("semaphore_acquire: limit %v", v)
	}
	for _, tok := range []string{r.Token(), w.Token(), p.Token(), l.Token()} {
		if strings.Contains(c.output(), tok) {
			t.Fatalf("a token was logged in clear")
		}
	}
	if n, err := other.Semaphores().ForceRelease(ctx, "sem"); err != nil || n != 1 {
		t.Fatalf("ForceRelease = %d, %v", n, err)
	}
	if err := p.Release(ctx); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("Release of a force-released permit: %v", err)
	}
	if recs := c.find("coord lock_release"); len(recs) != 1 {
		t.Errorf("%d lock_release records for the permit, want 1", len(recs))
	}
	if !strings.Contains(c.output(), "found_by=lock_release") {
		t.Errorf("the lost permit was not logged as lost:\n%s", c.output())
	}
}
