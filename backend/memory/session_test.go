package memory

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/secret"
)

// validToken agrees with secret.ValidSessionToken, the shared check it
// stands in for without allocating.
func TestValidTokenAgrees(t *testing.T) {
	cases := []string{"", "s1.", "s2." + strings.Repeat("A", 43), "s1." + strings.Repeat("A", 42), "s1." + strings.Repeat("A", 44)}
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.!"
	for range 200 {
		tok := secret.SessionToken()
		cases = append(cases, tok)
		for _, c := range []byte(alphabet) {
			for _, pos := range []int{3, 20, len(tok) - 1} {
				b := []byte(tok)
				b[pos] = c
				cases = append(cases, string(b))
			}
		}
	}
	for _, c := range cases {
		if got, want := validToken(c), secret.ValidSessionToken(c); got != want {
			t.Fatalf("validToken(%q) = %v, secret.ValidSessionToken = %v", c, got, want)
		}
	}
}

func TestSessionsKeyedByHandleOnly(t *testing.T) {
	ns := nodes(t, 1)
	s, err := ns[0].Sessions().Create(t.Context(), "u", map[string]any{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Handle != secret.Handle(s.ID) {
		t.Errorf("Handle %q is not secret.Handle of the token", s.Handle)
	}
	st := &ns[0].hub.sessions
	st.mu.RLock()
	defer st.mu.RUnlock()
	for _, rec := range st.byKey {
		if rec.handle == s.ID || strings.Contains(rec.handle, s.ID) {
			t.Errorf("the store keeps the token")
		}
	}
}

func TestSessionDefaultsFromHub(t *testing.T) {
	hub := NewHub(&HubOptions{SessionDefaults: coord.SessionOptions{IdleTTL: time.Minute, Lifetime: 30 * time.Second}})
	n := hub.New(nil)
	t.Cleanup(func() { _ = n.Close(t.Context()) })
	s, err := n.Sessions().Create(t.Context(), "u", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Deadline.Sub(s.CreatedAt); d != 30*time.Second {
		t.Errorf("Deadline is %v after creation, want the hub's 30s lifetime", d)
	}
	if !s.ExpiresAt.Equal(s.Deadline) {
		t.Errorf("ExpiresAt %v passes the deadline %v", s.ExpiresAt, s.Deadline)
	}
	s2, err := n.Sessions().Create(t.Context(), "u", nil, coord.WithIdleTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if d := s2.ExpiresAt.Sub(s2.CreatedAt); d != time.Second {
		t.Errorf("idle TTL %v, want the option's 1s", d)
	}
}

func TestSessionNoAliasing(t *testing.T) {
	ns := nodes(t, 1)
	ctx := t.Context()
	st := ns[0].Sessions()
	in := json.RawMessage(`{"x":1}`)
	s, err := st.Create(ctx, "u", map[string]any{"a": in, "b": "bee"})
	if err != nil {
		t.Fatal(err)
	}
	in[2] = 'y'                 // the caller's input
	s.Data["a"][2] = 'z'        // a returned value
	s.Data["c"] = []byte(`"c"`) // the returned map
	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data["a"]) != `{"x":1}` || len(got.Data) != 2 {
		t.Fatalf("stored data changed through caller values: %v", got.Data)
	}
	// Values of one snapshot share a buffer; appending to one must not
	// overwrite the next.
	_ = append(got.Data["a"], "garbage"...)
	again, _ := st.Get(ctx, s.ID)
	if string(got.Data["b"]) != `"bee"` || string(again.Data["b"]) != `"bee"` {
		t.Fatalf("append to one value changed another: %s", got.Data["b"])
	}
}

func TestSessionUpdateLimitOnMergedData(t *testing.T) {
	hub := NewHub(&HubOptions{MaxPayload: 100})
	n := hub.New(nil)
	t.Cleanup(func() { _ = n.Close(t.Context()) })
	ctx := t.Context()
	st := n.Sessions()
	s, err := st.Create(ctx, "u", map[string]any{"a": strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, s.ID, map[string]any{"b": strings.Repeat("b", 60)})
	if !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("Update past the hub's MaxPayload: %v, want ErrInvalid", err)
	}
	// Replacing a field frees its bytes.
	if err := st.Update(ctx, s.ID, map[string]any{"a": nil, "b": strings.Repeat("b", 60)}); err != nil {
		t.Fatalf("Update within the limit: %v", err)
	}
	got, _ := st.Get(ctx, s.ID)
	if _, ok := got.Data["a"]; ok || len(got.Data) != 1 {
		t.Fatalf("data after merge: %v", got.Data)
	}
}

func TestSessionExpiryEverywhere(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	a, b := ns[0].Sessions(), ns[1].Sessions()
	short, err := a.Create(ctx, "u", nil, coord.WithIdleTTL(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	capped, err := a.Create(ctx, "u", nil, coord.WithIdleTTL(time.Hour), coord.WithLifetime(60*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	long, err := b.Create(ctx, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Touch and Extend never pass the deadline.
	if err := b.Extend(ctx, capped.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	tc, err := b.Touch(ctx, capped.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tc.ExpiresAt.After(capped.Deadline) {
		t.Errorf("Touch set ExpiresAt %v past the deadline %v", tc.ExpiresAt, capped.Deadline)
	}
	coordtest.Eventually(t, 2*time.Second, func() bool { return time.Now().After(tc.ExpiresAt.Add(time.Millisecond)) }, "both expired")
	for _, st := range []coord.SessionStore{a, b} {
		if n, _ := st.Count(ctx); n != 1 {
			t.Errorf("Count right after expiry = %d, want 1", n)
		}
		if l, _ := st.ByUser(ctx, "u"); len(l) != 0 {
			t.Errorf("ByUser lists %d expired sessions", len(l))
		}
		if _, err := st.Get(ctx, short.ID); !errors.Is(err, coord.ErrNotFound) {
			t.Errorf("Get of an expired session: %v", err)
		}
		stats, _ := st.Stats(ctx)
		if stats.Sessions != 1 || stats.Users != 1 || !stats.OldestCreatedAt.Equal(long.CreatedAt) {
			t.Errorf("Stats = %+v", stats)
		}
	}
	if n, _ := b.DeleteByUser(ctx, "u"); n != 0 {
		t.Errorf("DeleteByUser counted %d expired sessions", n)
	}
	if n, _ := a.Cleanup(ctx); n != 0 {
		t.Errorf("Cleanup after Count purged: %d", n)
	}
}

func TestSessionRotateAndRevoke(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	a, b := ns[0].Sessions(), ns[1].Sessions()
	s, err := a.Create(ctx, "alice", map[string]any{"id": int64(1234567890123456789)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Rotate(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID == s.ID || r.Handle == s.Handle || !r.CreatedAt.Equal(s.CreatedAt) || !r.ExpiresAt.Equal(s.ExpiresAt) {
		t.Errorf("Rotate gave %+v from %+v", r, s)
	}
	var id int64
	if err := r.Decode("id", &id); err != nil || id != 1234567890123456789 {
		t.Errorf("data after Rotate: %v %v", id, err)
	}
	if _, err := a.Get(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("old token after Rotate: %v", err)
	}
	if err := a.Revoke(ctx, "bob", r.Handle); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Revoke as another user: %v", err)
	}
	if err := a.Revoke(ctx, "alice", "nothex"); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Revoke with a malformed handle: %v", err)
	}
	if err := a.Revoke(ctx, "alice", r.Handle); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Exists(ctx, r.ID); ok {
		t.Errorf("revoked session still exists")
	}
	if _, err := a.Get(ctx, "s1.short"); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Get of a malformed token: %v", err)
	}
	if _, err := a.Get(ctx, secret.SessionToken()); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Get of an unknown token: %v", err)
	}
}

func TestStatsOldestFollowsDeletes(t *testing.T) {
	ns := nodes(t, 1)
	ctx := t.Context()
	st := ns[0].Sessions()
	var ss []*coord.Session
	for _, u := range []string{"a", "b", "a", "c"} {
		s, err := st.Create(ctx, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	oldest := func() time.Time {
		t.Helper()
		stats, err := st.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return stats.OldestCreatedAt
	}
	if !oldest().Equal(ss[0].CreatedAt) {
		t.Fatal("oldest is not the first created")
	}
	if _, err := st.Rotate(ctx, ss[0].ID); err != nil {
		t.Fatal(err)
	}
	if !oldest().Equal(ss[0].CreatedAt) {
		t.Fatal("Rotate changed the oldest")
	}
	if err := st.Revoke(ctx, "b", ss[1].Handle); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.DeleteByUser(ctx, "a"); n != 2 {
		t.Fatalf("DeleteByUser = %d, want 2", n)
	}
	stats, _ := st.Stats(ctx)
	if !stats.OldestCreatedAt.Equal(ss[3].CreatedAt) || stats.Sessions != 1 || stats.Users != 1 {
		t.Fatalf("Stats = %+v, want only the last session", stats)
	}
	_ = st.Delete(ctx, ss[3].ID)
	if stats, _ := st.Stats(ctx); !stats.OldestCreatedAt.IsZero() || stats.Sessions != 0 {
		t.Fatalf("Stats of an empty store = %+v", stats)
	}
}
