package cache

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// TestStatsJSONNames pins the JSON names of Stats: a service may serve
// them as they are, so they are part of the API.
func TestStatsJSONNames(t *testing.T) {
	st := Stats{
		Hits: 1, Misses: 2, Loads: 3, LoadErrors: 4, Discarded: 5, Evictions: 6,
		Expirations: 7, RemoteInvalidations: 8, Purges: 10,
		PurgeReasons: PurgeReasons{Reconnect: 1, Overflow: 2, Malformed: 3, Other: 4},
		LocalPurges:  11, Gaps: 12, Suspended: true, Entries: 13,
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"hits": 1.0, "misses": 2.0, "loads": 3.0, "load_errors": 4.0, "discarded": 5.0,
		"evictions": 6.0, "expirations": 7.0, "remote_invalidations": 8.0, "purges": 10.0,
		"purge_reasons": map[string]any{"reconnect": 1.0, "overflow": 2.0, "malformed": 3.0, "other": 4.0},
		"local_purges":  11.0, "gaps": 12.0, "suspended": true, "entries": 13.0,
	}
	if !equalJSON(got, want) {
		t.Fatalf("Stats as JSON:\n got %s\nwant %v (keys %v)", raw, want, slices.Sorted(maps.Keys(want)))
	}
	var back Stats
	if err := json.Unmarshal(raw, &back); err != nil || back != st {
		t.Fatalf("Stats round trip: %+v, %v; want %+v", back, err, st)
	}
}

func equalJSON(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			return false
		}
		ma, aMap := va.(map[string]any)
		mb, bMap := vb.(map[string]any)
		if aMap || bMap {
			if !aMap || !bMap || !equalJSON(ma, mb) {
				return false
			}
			continue
		}
		if va != vb {
			return false
		}
	}
	return true
}

func TestPurgeReasons(t *testing.T) {
	c, f := newFake[string](t, nil)
	for _, inv := range []coord.Invalidation{
		purgeInv(coord.ReasonReconnect),
		purgeInv(coord.ReasonOverflow),
		purgeInv(coord.ReasonOverflow),
		purgeInv(coord.ReasonMalformed),
		purgeInv("something new"),
		{Kind: coord.InvalidationKind(99), Reason: coord.ReasonOverflow},
	} {
		if err := c.Set("k", "v"); err != nil {
			t.Fatal(err)
		}
		f.deliver(inv)
		mustMiss(t, c, "k")
	}
	c.Purge()
	c.Purge()
	st := c.Stats()
	want := PurgeReasons{Reconnect: 1, Overflow: 2, Malformed: 1, Other: 2}
	if st.PurgeReasons != want || st.Purges != 6 || st.LocalPurges != 2 {
		t.Fatalf("stats: purges %d by reason %+v, local %d; want 6, %+v, 2", st.Purges, st.PurgeReasons, st.LocalPurges, want)
	}
	// A GapStart suspends; it is a gap, not a purge.
	f.deliver(coord.Invalidation{Kind: coord.GapStart, Reason: coord.ReasonReconnect})
	if st := c.Stats(); st.Gaps != 1 || !st.Suspended || st.Purges != 6 {
		t.Fatalf("after GapStart: %+v; want 1 gap, suspended, still 6 purges", st)
	}
	f.deliver(purgeInv(coord.ReasonReconnect))
	if st := c.Stats(); st.Suspended || st.PurgeReasons.Reconnect != 2 || st.Purges != 7 {
		t.Fatalf("after the reconnect: %+v; want not suspended, 2 reconnect purges of 7", st)
	}
	// After Close, Purge does nothing and is not counted.
	_ = c.Close()
	c.Purge()
	if st := c.Stats(); st.LocalPurges != 2 {
		t.Fatalf("local purges after Close: %d, want 2", st.LocalPurges)
	}
}

func TestGetOrLoadHit(t *testing.T) {
	c, f := newFake[string](t, nil)
	loads := 0
	loader := func(_ context.Context, key string) (string, error) {
		loads++
		return key + "!", nil
	}
	v, hit, err := c.GetOrLoadHit(t.Context(), "k", loader)
	if err != nil || v != "k!" || hit {
		t.Fatalf("first GetOrLoadHit = %q, %v, %v; want k!, false (loaded), nil", v, hit, err)
	}
	v, hit, err = c.GetOrLoadHit(t.Context(), "k", loader)
	if err != nil || v != "k!" || !hit || loads != 1 {
		t.Fatalf("second GetOrLoadHit = %q, %v, %v after %d loads; want k!, true, nil after 1", v, hit, err, loads)
	}
	if st := c.Stats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("stats: %+v; want 1 hit and 1 miss, as GetOrLoadHit said", st)
	}

	// A loader error is no hit.
	boom := errors.New("boom")
	_, hit, err = c.GetOrLoadHit(t.Context(), "bad", func(context.Context, string) (string, error) { return "", boom })
	if !errors.Is(err, boom) || hit {
		t.Fatalf("GetOrLoadHit with a failing loader: hit %v, %v; want false, boom", hit, err)
	}

	// A caller that shares another caller's load is no hit.
	g := newGate()
	var wg sync.WaitGroup
	hits := make(chan bool, 2)
	for range 2 {
		wg.Go(func() {
			_, hit, err := c.GetOrLoadHit(t.Context(), "shared", g.load)
			if err != nil {
				t.Error(err)
			}
			hits <- hit
		})
	}
	waitStarted(t, g)
	waitJoined(t, c, "shared", 1)
	close(g.release)
	wg.Wait()
	close(hits)
	for hit := range hits {
		if hit {
			t.Error("a caller of a shared load reported a hit")
		}
	}
	if g.count() != 1 {
		t.Fatalf("loader calls for the shared load: %d, want 1", g.count())
	}

	// While suspended, GetOrLoadHit loads through: no hit.
	f.deliver(coord.Invalidation{Kind: coord.GapStart, Reason: coord.ReasonReconnect})
	_, hit, err = c.GetOrLoadHit(t.Context(), "k", loader)
	if err != nil || hit || loads != 2 {
		t.Fatalf("GetOrLoadHit while suspended: hit %v, %v, %d loads; want false, nil, 2", hit, err, loads)
	}

	// Bad input and a closed cache: errors, no hit.
	if _, hit, err := c.GetOrLoadHit(t.Context(), "", loader); !errors.Is(err, coord.ErrInvalid) || hit {
		t.Fatalf("empty key: %v, %v; want ErrInvalid, no hit", hit, err)
	}
	if _, hit, err := c.GetOrLoadHit(t.Context(), "k", nil); !errors.Is(err, coord.ErrInvalid) || hit {
		t.Fatalf("nil loader: %v, %v; want ErrInvalid, no hit", hit, err)
	}
	_ = c.Close()
	if _, hit, err := c.GetOrLoadHit(t.Context(), "k", loader); !errors.Is(err, coord.ErrClosed) || hit {
		t.Fatalf("after Close: %v, %v; want ErrClosed, no hit", hit, err)
	}
}

// brokenInvalidator's Subscribe returns sub and no error.
type brokenInvalidator struct {
	fakeInvalidator
	sub coord.Subscription
}

func (b *brokenInvalidator) Subscribe(context.Context, func(coord.Invalidation), ...coord.SubscribeOption) (coord.Subscription, error) {
	return b.sub, nil
}

// nilDoneSub is a Subscription whose Done is nil, as an unconfigured mock's.
type nilDoneSub struct{ unsubscribed bool }

func (s *nilDoneSub) Unsubscribe()          { s.unsubscribed = true }
func (s *nilDoneSub) Done() <-chan struct{} { return nil }

// TestBrokenSubscription checks that New refuses an Invalidator whose
// Subscribe returns a nil Subscription (which panicked) or one whose Done
// is nil (whose Close then blocked for ever).
func TestBrokenSubscription(t *testing.T) {
	if _, err := New[int](t.Context(), &brokenInvalidator{}, nil); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("New over a nil Subscription: %v, want ErrInvalid", err)
	}
	s := &nilDoneSub{}
	if _, err := New[int](t.Context(), &brokenInvalidator{sub: s}, nil); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("New over a Subscription with a nil Done: %v, want ErrInvalid", err)
	}
	if !s.unsubscribed {
		t.Error("New did not unsubscribe the subscription it refused")
	}
}

// stuckSub is a Subscription whose Unsubscribe does not close Done, as a
// mock told no rule.
type stuckSub struct{ done chan struct{} }

func (s *stuckSub) Unsubscribe()          {}
func (s *stuckSub) Done() <-chan struct{} { return s.done }

// warnings is a slog.Handler that sends each record's message.
type warnings struct{ ch chan string }

func (w warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w warnings) Handle(_ context.Context, r slog.Record) error {
	select {
	case w.ch <- r.Message:
	default:
	}
	return nil
}
func (w warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w warnings) WithGroup(string) slog.Handler      { return w }

// TestCloseWarnsOnStuckSubscription checks that Close, waiting for a
// Done that Unsubscribe did not close, logs why it waits, and returns
// once Done closes.
func TestCloseWarnsOnStuckSubscription(t *testing.T) {
	sub := &stuckSub{done: make(chan struct{})}
	logs := warnings{ch: make(chan string, 16)}
	c, err := New[int](t.Context(), &brokenInvalidator{sub: sub}, &Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	c.slowClose = time.Millisecond
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = c.Close()
	}()
	deadline := time.After(5 * time.Second)
	for warned := false; !warned; {
		select {
		case msg := <-logs.ch:
			warned = strings.Contains(msg, "Done channel is still open after Unsubscribe")
		case <-closed:
			t.Fatal("Close returned while Done was open")
		case <-deadline:
			close(sub.done)
			t.Fatal("Close logged no warning within 5s while waiting for Done")
		}
	}
	close(sub.done)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s of Done closing")
	}
}

// levels is a slog.Handler that records each record's message and level.
type levels struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

func (l *levels) level(msg string) []slog.Level {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Level
	for _, r := range l.recs {
		if r.Message == msg {
			out = append(out, r.Level)
		}
	}
	return out
}

// TestPurgeLogLevels checks the levels of the near cache's gap records:
// the start of a gap and a purge for an overflow are warnings, the purge
// that ends a gap (the subscription live again) is recovery, at INFO.
func TestPurgeLogLevels(t *testing.T) {
	inv := &fakeInvalidator{}
	logs := &levels{}
	c, err := New[int](t.Context(), inv, &Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inv.deliver(coord.Invalidation{Kind: coord.GapStart, Reason: coord.ReasonReconnect})
	inv.deliver(coord.Invalidation{Kind: coord.PurgeAll, Reason: coord.ReasonReconnect})
	inv.deliver(coord.Invalidation{Kind: coord.PurgeAll, Reason: coord.ReasonOverflow})
	if got := logs.level("cache: invalidations may be missed; serving nothing until the subscription is live again"); len(got) != 1 || got[0] != slog.LevelWarn {
		t.Errorf("gap start logged at %v; want one WARN", got)
	}
	if got := logs.level("cache: purged after a gap in invalidations"); len(got) != 2 || got[0] != slog.LevelInfo || got[1] != slog.LevelWarn {
		t.Errorf("purges logged at %v; want INFO (reconnect) then WARN (overflow)", got)
	}
}
