package httpsession_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/httpsession"
)

// loaded returns a new anonymous session from m.Load and its context.
func loaded(t *testing.T, m *httpsession.Manager) (context.Context, *httpsession.Session) {
	t.Helper()
	ctx, err := m.Load(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	s := httpsession.FromContext(ctx)
	if s == nil {
		t.Fatal("Load put no session into the context")
	}
	return ctx, s
}

func TestTypedGetters(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	ctx, s := loaded(t, m)
	when := time.Date(2026, 12, 6, 3, 4, 5, 0, time.UTC)
	put := func(s *httpsession.Session) {
		t.Helper()
		for k, v := range map[string]any{
			"s": "text", "i": int64(1311745521374429184), "n": 42, "f": 1.5, "b": true, "t": when,
			"o": map[string]int{"a": 1}, "raw": json.RawMessage(`[1,2]`),
		} {
			if err := s.Put(k, v); err != nil {
				t.Fatalf("Put %s: %v", k, err)
			}
		}
	}
	check := func(s *httpsession.Session) {
		t.Helper()
		if v, err := s.GetString("s"); v != "text" || err != nil {
			t.Errorf("GetString: %q %v", v, err)
		}
		if v, err := s.GetInt64("i"); v != 1311745521374429184 || err != nil {
			t.Errorf("GetInt64: %d %v", v, err)
		}
		if v, err := s.GetInt("n"); v != 42 || err != nil {
			t.Errorf("GetInt: %d %v", v, err)
		}
		if v, err := s.GetFloat64("f"); v != 1.5 || err != nil {
			t.Errorf("GetFloat64: %v %v", v, err)
		}
		if v, err := s.GetBool("b"); !v || err != nil {
			t.Errorf("GetBool: %v %v", v, err)
		}
		if v, err := s.GetTime("t"); !v.Equal(when) || err != nil {
			t.Errorf("GetTime: %v %v", v, err)
		}
		var o map[string]int
		if err := s.Get("o", &o); err != nil || o["a"] != 1 {
			t.Errorf("Get: %v %v", o, err)
		}
		for name, get := range map[string]func() error{
			"GetString(i)":  func() error { _, err := s.GetString("i"); return err },
			"GetInt64(s)":   func() error { _, err := s.GetInt64("s"); return err },
			"GetInt64(f)":   func() error { _, err := s.GetInt64("f"); return err },
			"GetInt(o)":     func() error { _, err := s.GetInt("o"); return err },
			"GetFloat64(b)": func() error { _, err := s.GetFloat64("b"); return err },
			"GetBool(raw)":  func() error { _, err := s.GetBool("raw"); return err },
			"GetTime(n)":    func() error { _, err := s.GetTime("n"); return err },
			"Get(s, *int)":  func() error { var n int; return s.Get("s", &n) },
		} {
			err := get()
			if !errors.Is(err, coord.ErrInvalid) || errors.Is(err, coord.ErrNotFound) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
			if err != nil && (strings.Contains(err.Error(), "text") || strings.Contains(err.Error(), "1311745521374429184")) {
				t.Errorf("%s: the error %q shows the field's value", name, err)
			}
		}
		if _, err := s.GetString("missing"); !errors.Is(err, coord.ErrNotFound) || errors.Is(err, coord.ErrInvalid) {
			t.Errorf("missing field: %v, want ErrNotFound", err)
		}
		if !s.Has("s") || s.Has("missing") {
			t.Error("Has is wrong")
		}
		if got := s.Keys(); !slices.Equal(got, []string{"b", "f", "i", "n", "o", "raw", "s", "t"}) {
			t.Errorf("Keys %v", got)
		}
	}
	// Staged values, in a session from Load.
	put(s)
	check(s)
	if err := s.Login(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	stored, err := node.Sessions().ByUser(ctx, "alice")
	if err != nil || len(stored) != 1 || string(stored[0].Data["i"]) != "1311745521374429184" {
		t.Fatalf("stored: %v %v", stored, err)
	}

	// Stored values, read by a later request through LoadAndSave.
	rec := httptest.NewRecorder()
	m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		put(s)
		if err := s.Login(r.Context(), "bob"); err != nil {
			t.Error(err)
		}
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	req := httptest.NewRequest("GET", "/", nil)
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	ran := false
	m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran = true
		s := httpsession.FromContext(r.Context())
		if s.UserID() != "bob" {
			t.Fatalf("user %q, want bob", s.UserID())
		}
		check(s)
	})).ServeHTTP(httptest.NewRecorder(), req)
	if !ran {
		t.Fatal("the handler did not run")
	}

	// Remove and a nil Put delete; Keys follows.
	_ = s.Remove("s")
	_ = s.Put("n", nil)
	if s.Has("s") || s.Has("n") || len(s.Keys()) != 6 {
		t.Errorf("after Remove: keys %v", s.Keys())
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	stored, _ = node.Sessions().ByUser(ctx, "alice")
	if _, ok := stored[0].Data["s"]; ok || len(stored[0].Data) != 6 {
		t.Errorf("stored after Remove: %d fields", len(stored[0].Data))
	}
}

func TestNilSession(t *testing.T) {
	s := httpsession.FromContext(t.Context())
	if s != nil {
		t.Fatal("a session in a bare context")
	}
	ctx := t.Context()
	for name, err := range map[string]error{
		"Put":    s.Put("k", 1),
		"Get":    s.Get("k", new(int)),
		"Commit": s.Commit(ctx),
		"Login":  s.Login(ctx, "alice"),
		"Renew":  s.RenewToken(ctx),
		"Logout": s.Logout(ctx),
	} {
		if !errors.Is(err, httpsession.ErrNoSession) {
			t.Errorf("%s on a nil session: %v, want ErrNoSession", name, err)
		}
	}
	if _, err := s.GetString("k"); !errors.Is(err, httpsession.ErrNoSession) {
		t.Errorf("GetString on a nil session: %v", err)
	}
	if _, err := s.LogoutEverywhere(ctx); !errors.Is(err, httpsession.ErrNoSession) {
		t.Errorf("LogoutEverywhere on a nil session: %v", err)
	}
	if s.UserID() != "" || s.Handle() != "" || !s.ExpiresAt().IsZero() || s.Has("k") || s.Keys() != nil {
		t.Error("a nil session's accessors should return zero values")
	}
}

func TestBadPut(t *testing.T) {
	_, s := loaded(t, newManager(t, newNode(t).Sessions(), nil))
	for name, err := range map[string]error{
		"empty key":      s.Put("", 1),
		"control in key": s.Put("a\x00b", 1),
		"unencodable":    s.Put("k", func() {}),
		"over the limit": s.Put("k", strings.Repeat("x", coord.DefaultMaxPayload+1)),
		"invalid raw":    s.Put("k", json.RawMessage("{")),
	} {
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if len(s.Keys()) != 0 {
		t.Errorf("refused puts staged %v", s.Keys())
	}
}

// TestAfterResponseStarted: changes that need a cookie are refused once
// the header is out, before they touch the store.
func TestAfterResponseStarted(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	var putErr, loginErr, renewErr, laterPut error
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		w.WriteHeader(http.StatusOK)
		putErr = s.Put("k", 1)
		loginErr = s.Login(r.Context(), "alice")
		renewErr = s.RenewToken(r.Context())
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	for name, err := range map[string]error{"Put": putErr, "Login": loginErr} {
		if !errors.Is(err, httpsession.ErrResponseStarted) || !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s after the header: %v, want ErrResponseStarted and ErrInvalid", name, err)
		}
	}
	if renewErr != nil {
		t.Errorf("RenewToken of a session not stored: %v, want nil (nothing to renew)", renewErr)
	}
	if n, _ := node.Sessions().Count(t.Context()); n != 0 || rec.Header().Get("Set-Cookie") != "" {
		t.Errorf("%d sessions and Set-Cookie %q after refused changes", n, rec.Header().Get("Set-Cookie"))
	}

	// A stored session refuses them too: nothing would commit them.
	rec = httptest.NewRecorder()
	m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = httpsession.FromContext(r.Context()).Login(r.Context(), "alice")
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	var logoutErr error
	m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		_, _ = w.Write([]byte("hello"))
		laterPut = s.Put("late", true)
		renewErr = s.RenewToken(r.Context())
		logoutErr = s.Logout(r.Context())
	})).ServeHTTP(httptest.NewRecorder(), req)
	if !errors.Is(laterPut, httpsession.ErrResponseStarted) || !errors.Is(renewErr, httpsession.ErrResponseStarted) {
		t.Errorf("stored session after the header: Put %v, RenewToken %v, want ErrResponseStarted", laterPut, renewErr)
	}
	// Logout still ends the session: the dead cookie goes at the next request.
	if n, _ := node.Sessions().Count(t.Context()); logoutErr != nil || n != 0 {
		t.Errorf("Logout after the header: %v, %d sessions left, want it ended", logoutErr, n)
	}
}

func TestFlushAndInformational(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	var sessions int64 = -1
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		_ = s.Put("k", 1)
		w.WriteHeader(http.StatusEarlyHints) // informational: no commit yet
		sessions, _ = node.Sessions().Count(r.Context())
		_ = s.Put("k2", 2)
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Error(err)
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if sessions != 0 {
		t.Errorf("%d sessions after a 103, want the commit to wait for the final header", sessions)
	}
	if !rec.Flushed || rec.Result().Cookies() == nil {
		t.Fatalf("flushed %v, cookies %d: want a flush with the cookie", rec.Flushed, len(rec.Result().Cookies()))
	}
	stored, _ := node.Sessions().Count(t.Context())
	if stored != 1 {
		t.Errorf("%d sessions after the flush, want 1", stored)
	}
}

// TestCommitAfterRevoke: a session ended elsewhere while the request ran
// is not resurrected; the changes are refused with ErrNotFound and the
// cookie is dropped.
func TestCommitAfterRevoke(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	ctx, s := loaded(t, m)
	if err := s.Login(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Sessions().DeleteByUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	_ = s.Put("k", 1)
	if err := s.Commit(ctx); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Commit of a revoked session: %v, want ErrNotFound", err)
	}
	if s.UserID() != "" || s.Has("k") {
		t.Error("the revoked session still shows its user or the refused change")
	}
	if n, _ := node.Sessions().Count(ctx); n != 0 {
		t.Errorf("%d sessions: the revoked one came back", n)
	}
}

// deleteFailing fails Delete with ErrUnavailable.
type deleteFailing struct{ coord.SessionStore }

func (deleteFailing) Delete(context.Context, string) error { return coord.ErrUnavailable }

// storedAnonymous returns the cookie of a stored anonymous session with
// cart=1, made through m.
func storedAnonymous(t *testing.T, m *httpsession.Manager) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = httpsession.FromContext(r.Context()).Put("cart", 1)
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("%d cookies", len(cs))
	}
	return cs[0]
}

// TestLoginFailures: a login that fails leaves one session, never two:
// when the previous session cannot be ended nothing changes; when the
// new one cannot be created the old one is gone and its data is staged.
func TestLoginFailures(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)

	cookie := storedAnonymous(t, m)
	mf := newManager(t, deleteFailing{node.Sessions()}, nil)
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(cookie)
	var loginErr error
	mf.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loginErr = httpsession.FromContext(r.Context()).Login(r.Context(), "alice")
	})).ServeHTTP(httptest.NewRecorder(), req)
	if !errors.Is(loginErr, coord.ErrUnavailable) {
		t.Errorf("login with Delete failing: %v, want ErrUnavailable", loginErr)
	}
	if got, _ := node.Sessions().ByUser(t.Context(), "alice"); len(got) != 0 {
		t.Errorf("alice has %d sessions after the failed login, want 0", len(got))
	}
	if ok, _ := node.Sessions().Exists(t.Context(), token(cookie.Value)); !ok {
		t.Error("the anonymous session ended though the login failed before")
	}

	store := &failingStore{SessionStore: node.Sessions(), err: coord.ErrUnavailable}
	store.fail(false, false, true)
	mc := newManager(t, store, nil)
	var cart int
	var cartErr error
	mc.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		loginErr = s.Login(r.Context(), "alice")
		cart, cartErr = s.GetInt("cart")
		http.Error(w, "try again", http.StatusServiceUnavailable)
	})).ServeHTTP(httptest.NewRecorder(), req)
	if !errors.Is(loginErr, coord.ErrUnavailable) || cart != 1 || cartErr != nil {
		t.Errorf("login with Create failing: %v, cart %d %v: want ErrUnavailable and the cart staged", loginErr, cart, cartErr)
	}
	if n, _ := node.Sessions().Count(t.Context()); n != 0 {
		t.Errorf("%d sessions after a login whose creation failed, want 0", n)
	}
}

// TestAnonymousLogoutEverywhere ends only that anonymous session.
func TestAnonymousLogoutEverywhere(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	ctx1, s1 := loaded(t, m)
	_, s2 := loaded(t, m)
	_ = s1.Put("a", 1)
	_ = s2.Put("a", 1)
	if s1.Commit(ctx1) != nil || s2.Commit(ctx1) != nil {
		t.Fatal("commit")
	}
	if n, err := s1.LogoutEverywhere(ctx1); n != 1 || err != nil {
		t.Errorf("LogoutEverywhere of an anonymous session: %d %v, want 1", n, err)
	}
	if n, _ := node.Sessions().Count(ctx1); n != 1 {
		t.Errorf("%d sessions left, want the other anonymous one", n)
	}
}

// TestLoginAfterRevoke: logging in again as the user whose session was
// revoked meanwhile starts a new session instead of failing.
func TestLoginAfterRevoke(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	ctx, s := loaded(t, m)
	if err := s.Login(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	old := s.Handle()
	if _, err := node.Sessions().DeleteByUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "alice"); err != nil {
		t.Fatalf("login after the session was revoked: %v", err)
	}
	if s.Handle() == old || s.UserID() != "alice" {
		t.Error("no new session")
	}
	if got, _ := node.Sessions().ByUser(ctx, "alice"); len(got) != 1 {
		t.Errorf("alice has %d sessions, want 1", len(got))
	}
}

// TestTamperedExpirySuffix: the expiry suffix only decides when the
// cookie is re-sent; any value is safe.
func TestTamperedExpirySuffix(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	c := newClient(t, serve(t, app(m)))
	c.do("POST", "/login?user=alice")
	tok := token(c.cookie(m.CookieName()))
	for _, suffix := range []string{"", "~", "~0", "~-5", "~abc", "~9223372036854775807", "~253402300800"} {
		c.setCookie(m.CookieName(), tok+suffix)
		res, body := c.do("GET", "/me")
		k := sessionCookie(res, m.CookieName())
		if body != "alice" || k == nil || token(k.Value) != tok || k.MaxAge < 86000 {
			t.Errorf("suffix %q: %q, cookie %s: want alice and the cookie re-sent with the session's expiry", suffix, body, hidden(k))
		}
	}
}

// TestRevokedDuringRequest: through LoadAndSave, a commit to a session
// ended while the request ran gets the error handler and a cleared cookie.
func TestRevokedDuringRequest(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	c := newClient(t, serve(t, app(m)))
	c.do("POST", "/login?user=alice")
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: m.CookieName(), Value: c.cookie(m.CookieName())})
	rec := httptest.NewRecorder()
	m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = node.Sessions().DeleteByUser(r.Context(), "alice") // another device
		_ = httpsession.FromContext(r.Context()).Put("k", 1)
		_, _ = w.Write([]byte("saved"))
	})).ServeHTTP(rec, req)
	k := sessionCookie(rec.Result(), m.CookieName())
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "saved") || k == nil || k.MaxAge >= 0 {
		t.Errorf("response %d %q, cookie %s: want the error handler's 500 and the cookie cleared", rec.Code, rec.Body.String(), hidden(k))
	}
	if n, _ := node.Sessions().Count(t.Context()); n != 0 {
		t.Errorf("%d sessions: the revoked one came back", n)
	}
}
