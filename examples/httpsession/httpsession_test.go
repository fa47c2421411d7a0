package sessionapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	sessionapi "github.com/cgn-bot/coord/examples/httpsession"
	"github.com/cgn-bot/coord/httpsession"
)

// auth accepts any non-empty form value "user": the example is about
// sessions, not passwords.
func auth(r *http.Request) (string, error) {
	if u := r.FormValue("user"); u != "" {
		return u, nil
	}
	return "", errors.New("no user")
}

// manager returns an httpsession.Manager on store.
func manager(t *testing.T, store coord.SessionStore, o *httpsession.Options) *httpsession.Manager {
	t.Helper()
	m, err := httpsession.New(store, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// browser is an HTTP client with its own cookie jar.
type browser struct {
	t      *testing.T
	client *http.Client
	jar    *cookiejar.Jar
}

func newBrowser(t *testing.T, srv *httptest.Server) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, jar: jar, client: &http.Client{Transport: srv.Client().Transport, Jar: jar}}
}

// do sends a request (a POST with form when form is not nil) and returns
// the response, whose body it has read.
func (b *browser) do(method, rawURL string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(b.t.Context(), method, rawURL, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return res, string(data)
}

// token returns the session cookie the browser holds for u, or "".
func (b *browser) token(u string) string {
	parsed, _ := url.Parse(u)
	for _, c := range b.jar.Cookies(parsed) {
		if c.Name == httpsession.HostCookieName {
			return c.Value
		}
	}
	return ""
}

func (b *browser) status(method, u string, form url.Values) int {
	b.t.Helper()
	res, _ := b.do(method, u, form)
	return res.StatusCode
}

// withToken sends GET u with a session cookie set by hand, as an attacker
// replaying a stolen token would.
func withToken(t *testing.T, srv *httptest.Server, u, token string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	req.AddCookie(&http.Cookie{Name: httpsession.HostCookieName, Value: token})
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestWalkThrough runs two instances (two nodes of one memory hub, as two
// processes on one Redis) behind which a laptop and a phone log in, are
// served by either instance, rotate, list and log out everywhere.
func TestWalkThrough(t *testing.T) {
	hub := memory.NewHub(nil)
	nodeA, nodeB := hub.NewNode(nil), hub.NewNode(nil)
	defer nodeA.Close(context.Background())
	defer nodeB.Close(context.Background())
	srvA := httptest.NewTLSServer(sessionapi.NewServer(manager(t, nodeA.Sessions(), nil), nodeA.Sessions(), auth))
	defer srvA.Close()
	srvB := httptest.NewTLSServer(sessionapi.NewServer(manager(t, nodeB.Sessions(), nil), nodeB.Sessions(), auth))
	defer srvB.Close()
	A, B := srvA.URL, srvB.URL // cookies are per host, not per port: one "site"

	laptop, phone := newBrowser(t, srvA), newBrowser(t, srvA)
	alice := url.Values{"user": {"alice"}}

	// No session yet.
	if got := laptop.status("GET", A+"/me", nil); got != http.StatusUnauthorized {
		t.Fatalf("GET /me before login: %d, want 401", got)
	}

	// Login sets a Secure, HttpOnly, SameSite=Lax, host-only cookie.
	res, _ := laptop.do("POST", A+"/login", alice)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", res.StatusCode)
	}
	cookies := res.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login set %d cookies, want 1", len(cookies))
	}
	c := cookies[0]
	if c.Name != "__Host-session" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("session cookie %q: Secure=%v HttpOnly=%v SameSite=%v Path=%q Domain=%q", c.Name, c.Secure, c.HttpOnly, c.SameSite, c.Path, c.Domain)
	}
	first := laptop.token(A)
	if first == "" {
		t.Fatal("the browser holds no session cookie after login")
	}

	// An authenticated request, served by the other instance.
	res, body := laptop.do("GET", B+"/me", nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"user":"alice"`) {
		t.Fatalf("GET /me on the other instance: %d %s", res.StatusCode, body)
	}

	// Logging in again rotates the token: the old cookie is dead at once.
	if got := laptop.status("POST", B+"/login", alice); got != http.StatusOK {
		t.Fatalf("second login: %d", got)
	}
	second := laptop.token(A)
	if second == "" || second == first {
		t.Fatal("login did not rotate the token")
	}
	if got := withToken(t, srvA, A+"/me", first); got != http.StatusUnauthorized {
		t.Errorf("GET /me with the token from before the rotation: %d, want 401", got)
	}
	if got := laptop.status("GET", A+"/me", nil); got != http.StatusOK {
		t.Errorf("GET /me with the rotated token: %d, want 200", got)
	}

	// A second device; the listing shows both sessions by handle only.
	if got := phone.status("POST", B+"/login", alice); got != http.StatusOK {
		t.Fatalf("phone login: %d", got)
	}
	res, body = laptop.do("GET", A+"/sessions", nil)
	var list []sessionapi.SessionInfo
	if err := json.Unmarshal([]byte(body), &list); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /sessions: %d %s (%v)", res.StatusCode, body, err)
	}
	if len(list) != 2 || list[0].Current == list[1].Current {
		t.Errorf("sessions %+v, want two with one current", list)
	}
	if strings.Contains(body, second) || strings.Contains(body, phone.token(A)) {
		t.Error("GET /sessions shows a token")
	}

	// Log out everywhere from the phone: the laptop is logged out too.
	res, body = phone.do("POST", B+"/logout-all", url.Values{})
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"ended":2`) {
		t.Fatalf("logout everywhere: %d %s", res.StatusCode, body)
	}
	for name, b := range map[string]*browser{"laptop": laptop, "phone": phone} {
		for _, u := range []string{A, B} {
			if got := b.status("GET", u+"/me", nil); got != http.StatusUnauthorized {
				t.Errorf("%s GET %s/me after logout everywhere: %d, want 401", name, u, got)
			}
		}
	}
	if n, err := nodeA.Sessions().Count(t.Context()); err != nil || n != 0 {
		t.Errorf("sessions left: %d (%v), want 0", n, err)
	}
	if laptop.token(A) != "" {
		t.Error("the laptop's dead cookie was not dropped")
	}
}

func TestRevokeAndLogout(t *testing.T) {
	node := memory.NewHub(nil).NewNode(nil)
	defer node.Close(context.Background())
	srv := httptest.NewTLSServer(sessionapi.NewServer(manager(t, node.Sessions(), &httpsession.Options{Cookie: httpsession.CookieOptions{SameSite: http.SameSiteStrictMode}}), node.Sessions(), auth))
	defer srv.Close()
	U := srv.URL
	laptop, phone := newBrowser(t, srv), newBrowser(t, srv)
	alice := url.Values{"user": {"alice"}}

	res, _ := laptop.do("POST", U+"/login", alice)
	if c := res.Cookies(); len(c) != 1 || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("SameSite Strict not applied: %v", c)
	}
	res, body := phone.do("POST", U+"/login", alice)
	var me struct{ Handle string }
	_ = json.Unmarshal([]byte(body), &me)
	if res.StatusCode != 200 || me.Handle == "" {
		t.Fatalf("phone login: %d %s", res.StatusCode, body)
	}

	// The laptop ends the phone's session by its handle.
	if got := laptop.status("POST", U+"/sessions/revoke", url.Values{"handle": {me.Handle}}); got != http.StatusNoContent {
		t.Fatalf("revoke: %d", got)
	}
	if got := phone.status("GET", U+"/me", nil); got != http.StatusUnauthorized {
		t.Errorf("phone after revoke: %d, want 401", got)
	}
	if got := laptop.status("GET", U+"/me", nil); got != http.StatusOK {
		t.Errorf("laptop after revoking the phone: %d, want 200", got)
	}
	if got := laptop.status("POST", U+"/sessions/revoke", url.Values{"handle": {me.Handle}}); got != http.StatusNotFound {
		t.Errorf("revoking a dead handle: %d, want 404", got)
	}

	// Bob logs in on the laptop's browser: alice's session there ends.
	aliceTok := laptop.token(U)
	if got := laptop.status("POST", U+"/login", url.Values{"user": {"bob"}}); got != http.StatusOK {
		t.Fatalf("bob login: %d", got)
	}
	if got := withToken(t, srv, U+"/me", aliceTok); got != http.StatusUnauthorized {
		t.Errorf("alice's token after bob logged in on that browser: %d, want 401", got)
	}

	// Logout ends this session only.
	phone.status("POST", U+"/login", alice)
	if got := laptop.status("POST", U+"/logout", url.Values{}); got != http.StatusNoContent {
		t.Fatalf("logout: %d", got)
	}
	if got := laptop.status("GET", U+"/me", nil); got != http.StatusUnauthorized {
		t.Errorf("after logout: %d, want 401", got)
	}
	if got := phone.status("GET", U+"/me", nil); got != http.StatusOK {
		t.Errorf("the phone after the laptop's logout: %d, want 200", got)
	}

	// A forged token is refused and dropped.
	if got := withToken(t, srv, U+"/me", "forged"); got != http.StatusUnauthorized {
		t.Errorf("forged token: %d, want 401", got)
	}
	if got := laptop.status("POST", U+"/login", url.Values{}); got != http.StatusUnauthorized {
		t.Errorf("login without a user: %d, want 401", got)
	}
}

// TestCrossSiteRefused: a state-changing request another site makes the
// browser send is refused before it reaches the session.
func TestCrossSiteRefused(t *testing.T) {
	node := memory.NewHub(nil).NewNode(nil)
	defer node.Close(context.Background())
	srv := httptest.NewTLSServer(sessionapi.NewServer(manager(t, node.Sessions(), nil), node.Sessions(), auth))
	defer srv.Close()
	laptop := newBrowser(t, srv)
	if got := laptop.status("POST", srv.URL+"/login", url.Values{"user": {"alice"}}); got != http.StatusOK {
		t.Fatalf("login: %d", got)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/logout-all", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err := laptop.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST /logout-all: %d, want 403", res.StatusCode)
	}
	if n, _ := node.Sessions().Count(t.Context()); n != 1 {
		t.Errorf("%d sessions after a refused cross-site logout, want 1", n)
	}
}
