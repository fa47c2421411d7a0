package httpsession_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/httpsession"
	"github.com/cgn-bot/coord/internal/redistest"
	goredis "github.com/redis/go-redis/v9"
)

// redisBackend returns a Backend on a new client of srv, both closed at
// cleanup.
func redisBackend(t *testing.T, srv *redistest.Server) *coordredis.Backend {
	t.Helper()
	c := goredis.NewClient(srv.Options())
	b, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close(context.Background())
		_ = c.Close()
	})
	return b
}

// TestRedisEndToEnd runs two instances on a real redis-server: a session
// started on one is served by the other, its cookie slides, login
// rotates it, logout everywhere ends it on both, and a stopped server is
// a 503, not a logout.
func TestRedisEndToEnd(t *testing.T) {
	srv := redistest.Start(t)
	a, b := redisBackend(t, srv), redisBackend(t, srv)
	opts := &httpsession.Options{IdleTTL: time.Hour, CookieRefresh: time.Second}
	ma, mb := newManager(t, a.Sessions(), opts), newManager(t, b.Sessions(), opts)
	srvA, srvB := serve(t, app(ma)), serve(t, app(mb))
	name := ma.CookieName()

	laptop := newClient(t, srvA)
	if laptop.get("/put?k=cart&v=3") != "ok" {
		t.Fatal("put")
	}
	anon := laptop.cookie(name)
	res, _ := laptop.do("POST", "/login?user=alice")
	first := sessionCookie(res, name)
	if first == nil || token(first.Value) == token(anon) {
		t.Fatal("login did not send a new token")
	}
	if _, err := a.Sessions().Get(t.Context(), token(anon)); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("anonymous token after login: %v, want ErrNotFound", err)
	}

	// Instance B serves the same browser.
	onB := newClient(t, srvB)
	onB.setCookie(name, laptop.cookie(name))
	if got := onB.get("/me"); got != "alice" {
		t.Errorf("instance B sees %q, want alice", got)
	}
	if got := onB.get("/get?k=cart"); got != "3" {
		t.Errorf("instance B sees cart %q, want 3", got)
	}

	// The cookie slides with the idle expiry kept by Redis.
	var next *http.Cookie
	eventually(t, 5*time.Second, func() bool {
		res, _ := onB.do("GET", "/me")
		next = sessionCookie(res, name)
		return next != nil
	}, "the cookie is re-sent as the expiry slides")
	s, err := b.Sessions().Get(t.Context(), token(next.Value))
	if err != nil || !next.Expires.After(first.Expires) || next.Expires.After(s.ExpiresAt) {
		t.Errorf("re-sent Expires %v, first %v, session %v (%v): want later, never past the session", next.Expires, first.Expires, s.ExpiresAt, err)
	}

	// Logging out everywhere from B ends the laptop's session on A.
	phone := newClient(t, srvB)
	phone.do("POST", "/login?user=alice")
	if _, body := phone.do("POST", "/logout-all"); body != "2" {
		t.Errorf("logout everywhere ended %s sessions, want 2", body)
	}
	if got := laptop.get("/me"); got != "anonymous" {
		t.Errorf("laptop after logout everywhere: %q", got)
	}

	// A stopped server: 503 and the cookie kept, not a silent logout.
	laptop.do("POST", "/login?user=alice")
	kept := laptop.cookie(name)
	srv.Kill(t)
	res, body := laptop.do("GET", "/me")
	if res.StatusCode != http.StatusServiceUnavailable || body == "anonymous" || laptop.cookie(name) != kept {
		t.Errorf("with Redis down: %d %q, cookie kept %v: want 503 and the cookie kept", res.StatusCode, body, laptop.cookie(name) == kept)
	}
}
