package memory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// TestSessionExpiryBoundaryAgrees: a session whose expiry is the instant
// it was set to (so every later call is at or past it) is gone to every
// method, and one a moment ahead is live to every method: all of them
// judge expiry by the one predicate, on the one clock.
func TestSessionExpiryBoundaryAgrees(t *testing.T) {
	type probe struct {
		name string
		// live calls the method and reports whether it saw the
		// session live.
		live func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error)
	}
	notFound := func(err error) (bool, error) {
		if errors.Is(err, coord.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	probes := []probe{
		{"Get", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			_, err := st.Get(ctx, s.ID)
			return notFound(err)
		}},
		{"Exists", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			return st.Exists(ctx, s.ID)
		}},
		{"Touch", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			_, err := st.Touch(ctx, s.ID)
			return notFound(err)
		}},
		{"Update", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			return notFound(st.Update(ctx, s.ID, map[string]any{"b": 2}))
		}},
		{"Extend", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			return notFound(st.Extend(ctx, s.ID, time.Hour))
		}},
		{"Rotate", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			_, err := st.Rotate(ctx, s.ID)
			return notFound(err)
		}},
		{"Revoke", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			return notFound(st.Revoke(ctx, s.UserID, s.Handle))
		}},
		{"ByUser", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			list, err := st.ByUser(ctx, s.UserID)
			return len(list) == 1, err
		}},
		{"DeleteByUser", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			n, err := st.DeleteByUser(ctx, s.UserID)
			return n == 1, err
		}},
		{"Count", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			n, err := st.Count(ctx)
			return n == 1, err
		}},
		{"Stats", func(ctx context.Context, st coord.SessionStore, s *coord.Session) (bool, error) {
			ss, err := st.Stats(ctx)
			return ss.Sessions == 1 && ss.Users == 1, err
		}},
	}
	for _, p := range probes {
		for _, ahead := range []bool{false, true} {
			n := nodes(t, 1)[0]
			ctx := t.Context()
			st := n.Sessions()
			s, err := st.Create(ctx, "u", map[string]any{"a": 1}, coord.WithIdleTTL(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			ss := &n.hub.sessions
			ss.mu.Lock()
			rec := ss.byKey[func() handleKey { k, _ := keyOf(s.ID); return k }()]
			at := ss.now()
			if ahead {
				at = at.Add(time.Minute)
			}
			rec.expires = at
			ss.heap.fix(rec.heapIdx)
			ss.mu.Unlock()
			live, err := p.live(ctx, st, s)
			if err != nil {
				t.Errorf("%s: %v", p.name, err)
			}
			if live != ahead {
				t.Errorf("%s with the expiry %s: live = %v, want %v", p.name, map[bool]string{false: "just passed", true: "a minute ahead"}[ahead], live, ahead)
			}
			if !ahead {
				if n, err := st.Count(ctx); err != nil || n != 0 {
					t.Errorf("%s: Count after = %d, %v; want 0", p.name, n, err)
				}
			}
		}
	}
}
