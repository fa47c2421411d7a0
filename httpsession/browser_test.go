package httpsession_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/httpsession"
)

// TestBrowser drives a real headless Chromium against a TLS test server
// on 127.0.0.1: the browser keeps the session cookie across fetches and
// navigations, scripts cannot see it, its expiry moves forward as the
// session's idle expiry slides, rotation replaces it and logout clears it.
func TestBrowser(t *testing.T) {
	br := startChromium(t)
	node := newNode(t)
	m := newManager(t, node.Sessions(), &httpsession.Options{IdleTTL: time.Hour, CookieRefresh: time.Second})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		// A cookie scripts may read, to show that document.cookie works.
		http.SetCookie(w, &http.Cookie{Name: "visible", Value: "yes", Path: "/", Secure: true, SameSite: http.SameSiteLaxMode})
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<!doctype html><title>t</title><p>page</p>")
	})
	mux.Handle("/", app(m))
	srv := serve(t, mux)

	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()
	fetch := func(method, path string) string {
		t.Helper()
		var body string
		expr := `(async () => { const r = await fetch(` + strconv.Quote(path) + `, {method: ` + strconv.Quote(method) + `}); return r.status + " " + await r.text(); })()`
		if err := br.eval(ctx, expr, &body); err != nil {
			t.Fatalf("%s %s in the browser: %v", method, path, err)
		}
		return body
	}
	session := func() *browserCookie {
		t.Helper()
		all, err := br.cookies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range all {
			if c.Name == m.CookieName() {
				return &c
			}
		}
		return nil
	}

	if err := br.navigate(ctx, srv.URL+"/page"); err != nil {
		t.Fatal(err)
	}
	if got := fetch("POST", "/login?user=alice"); got != "200 logged in" {
		t.Fatalf("login in the browser: %q", got)
	}
	c := session()
	if c == nil {
		t.Fatal("the browser holds no session cookie after login")
	}
	if c.Name != "__Host-session" || !c.HTTPOnly || !c.Secure || c.SameSite != "Lax" || c.Path != "/" || c.Domain != "127.0.0.1" || c.Session {
		t.Errorf("browser cookie %s: want __Host-session, HttpOnly, Secure, SameSite=Lax, Path=/, host-only, persistent", c)
	}
	if left := c.Expires - float64(time.Now().Unix()); left < 3600-60 || left > 3600+1 {
		t.Errorf("cookie expires in %.0fs, want about 3600 (the idle TTL)", left)
	}

	// Scripts see other cookies, never the HttpOnly session cookie.
	var docCookie string
	if err := br.eval(ctx, "document.cookie", &docCookie); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(docCookie, "visible=yes") || strings.Contains(docCookie, m.CookieName()) || strings.Contains(docCookie, token(c.Value)) {
		t.Errorf("document.cookie has visible=yes: %v, has the session cookie: %v; want only the first", strings.Contains(docCookie, "visible=yes"), strings.Contains(docCookie, m.CookieName()))
	}

	// The browser sends the cookie back, with fetch and with navigation.
	if got := fetch("GET", "/me"); got != "200 alice" {
		t.Errorf("GET /me by fetch: %q", got)
	}
	if err := br.navigate(ctx, srv.URL+"/me"); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := br.eval(ctx, "document.body.innerText", &text); err != nil || strings.TrimSpace(text) != "alice" {
		t.Errorf("navigating to /me shows %q (%v), want alice", text, err)
	}

	// As requests slide the idle expiry, the browser's cookie expiry
	// moves forward (CookieRefresh is 1s here).
	first := c.Expires
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := fetch("GET", "/me"); got != "200 alice" {
			t.Fatalf("GET /me: %q", got)
		}
		if c = session(); c != nil && c.Expires >= first+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cookie's expiry did not move forward within 10s (still %s)", c)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s, err := node.Sessions().Get(ctx, token(c.Value))
	if err != nil {
		t.Fatal(err)
	}
	if diff := float64(s.ExpiresAt.Unix()) - c.Expires; math.Abs(diff) > 2 {
		t.Errorf("browser cookie expires %.0f, session %d: want equal to the second", c.Expires, s.ExpiresAt.Unix())
	}

	// Rotation replaces the cookie; the old token is dead.
	old := c.Value
	if got := fetch("POST", "/renew"); got != "200 renewed" {
		t.Fatalf("renew: %q", got)
	}
	c = session()
	if c == nil || token(c.Value) == token(old) {
		t.Fatalf("after RenewToken the browser holds %s, want a new token", c)
	}
	if _, err := node.Sessions().Get(ctx, token(old)); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("the token before rotation: %v, want ErrNotFound", err)
	}
	if got := fetch("GET", "/me"); got != "200 alice" {
		t.Errorf("GET /me after rotation: %q", got)
	}

	// Logout clears it.
	if got := fetch("POST", "/logout"); got != "200 logged out" {
		t.Fatalf("logout: %q", got)
	}
	if c = session(); c != nil {
		t.Errorf("the browser still holds %s after logout", c)
	}
	if got := fetch("GET", "/me"); got != "200 anonymous" {
		t.Errorf("GET /me after logout: %q", got)
	}
}
