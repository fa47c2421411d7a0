package httpsession_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/httpsession"
)

func TestDefaultCookie(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	if m.CookieName() != "__Host-session" {
		t.Fatalf("default cookie name %q", m.CookieName())
	}
	c := newClient(t, serve(t, app(m)))

	// An anonymous request that stores nothing sets no cookie and
	// creates no session.
	res, body := c.do("GET", "/me")
	if body != "anonymous" || len(res.Cookies()) != 0 {
		t.Fatalf("anonymous GET /me: %q, cookies %v", body, res.Cookies())
	}
	if n, _ := node.Sessions().Count(t.Context()); n != 0 {
		t.Fatalf("%d sessions after a request that stored nothing", n)
	}

	before := time.Now()
	res, _ = c.do("POST", "/login?user=alice")
	k := sessionCookie(res, "__Host-session")
	if k == nil {
		t.Fatalf("login set no session cookie: %v", setCookies(res))
	}
	if !k.Secure || !k.HttpOnly || k.SameSite != http.SameSiteLaxMode || k.Path != "/" || k.Domain != "" || k.Partitioned {
		t.Errorf("cookie attributes: Secure=%v HttpOnly=%v SameSite=%v Path=%q Domain=%q Partitioned=%v",
			k.Secure, k.HttpOnly, k.SameSite, k.Path, k.Domain, k.Partitioned)
	}
	day := int(coord.DefaultSessionTTL / time.Second)
	if k.MaxAge < day-60 || k.MaxAge > day {
		t.Errorf("Max-Age %d, want about %d (the idle TTL)", k.MaxAge, day)
	}
	if k.Expires.Before(before.Add(coord.DefaultSessionTTL-time.Minute)) || k.Expires.After(time.Now().Add(coord.DefaultSessionTTL)) {
		t.Errorf("Expires %v, want the session's expiry, a day from now", k.Expires)
	}
	if got := res.Header.Get("Vary"); got != "Cookie" {
		t.Errorf("Vary %q, want Cookie", got)
	}
	if got := res.Header.Get("Cache-Control"); got != `no-cache="Set-Cookie"` {
		t.Errorf("Cache-Control %q", got)
	}
	if got := c.get("/me"); got != "alice" {
		t.Errorf("GET /me after login: %q", got)
	}
	if n, _ := node.Sessions().Count(t.Context()); n != 1 {
		t.Errorf("%d sessions after login, want 1", n)
	}
}

func TestCookieOptions(t *testing.T) {
	store := newNode(t).Sessions()
	for _, tc := range []struct {
		name string
		o    httpsession.CookieOptions
		want string // cookie name
		attr string // a Set-Cookie fragment
	}{
		{"insecure", httpsession.CookieOptions{Insecure: true}, "session", "SameSite=Lax"},
		{"domain", httpsession.CookieOptions{Domain: "example.com"}, "__Secure-session", "Domain=example.com"},
		{"path", httpsession.CookieOptions{Path: "/app"}, "__Secure-session", "Path=/app"},
		{"strict", httpsession.CookieOptions{SameSite: http.SameSiteStrictMode}, "__Host-session", "SameSite=Strict"},
		{"partitioned", httpsession.CookieOptions{SameSite: http.SameSiteNoneMode, Partitioned: true}, "__Host-session", "Partitioned"},
		{"named", httpsession.CookieOptions{Name: "sid", ScriptAccess: true}, "sid", "Secure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, store, &httpsession.Options{Cookie: tc.o})
			if m.CookieName() != tc.want {
				t.Errorf("name %q, want %q", m.CookieName(), tc.want)
			}
			ctx, err := m.Load(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = httpsession.FromContext(r.Context()).Login(r.Context(), "u")
			})).ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/", nil))
			sc := rec.Header().Get("Set-Cookie")
			if !strings.HasPrefix(sc, tc.want+"=") || !strings.Contains(sc, tc.attr) {
				t.Errorf("Set-Cookie %q, want name %s and %s", sc, tc.want, tc.attr)
			}
			if strings.Contains(sc, "HttpOnly") == tc.o.ScriptAccess {
				t.Errorf("Set-Cookie %q: HttpOnly should be %v", sc, !tc.o.ScriptAccess)
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	store := newNode(t).Sessions()
	if _, err := httpsession.New(nil, nil); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("nil store: %v, want ErrInvalid", err)
	}
	for name, o := range map[string]httpsession.Options{
		"__Host- with a Domain":      {Cookie: httpsession.CookieOptions{Name: "__Host-x", Domain: "example.com"}},
		"__Host- with a Path":        {Cookie: httpsession.CookieOptions{Name: "__Host-x", Path: "/a"}},
		"__Host- insecure":           {Cookie: httpsession.CookieOptions{Name: "__Host-x", Insecure: true}},
		"__Secure- insecure":         {Cookie: httpsession.CookieOptions{Name: "__Secure-x", Insecure: true}},
		"SameSite=None insecure":     {Cookie: httpsession.CookieOptions{SameSite: http.SameSiteNoneMode, Insecure: true}},
		"Partitioned insecure":       {Cookie: httpsession.CookieOptions{Partitioned: true, Insecure: true}},
		"bad name":                   {Cookie: httpsession.CookieOptions{Name: "a b;"}},
		"negative idle":              {IdleTTL: -time.Second},
		"negative lifetime":          {Lifetime: -time.Second},
		"anonymous prefix with a NL": {AnonymousPrefix: "a\n"},
	} {
		if _, err := httpsession.New(store, &o); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestAnonymousSession(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	c := newClient(t, serve(t, app(m)))

	if got := c.get("/put?k=cart&v=3"); got != "ok" {
		t.Fatal(got)
	}
	if c.cookie(m.CookieName()) == "" {
		t.Fatal("no cookie after the first Put")
	}
	if got := c.get("/get?k=cart"); got != "3" {
		t.Errorf("cart %q, want 3", got)
	}
	if got := c.get("/me"); got != "anonymous" {
		t.Errorf("user %q, want anonymous", got)
	}
	st, err := node.Sessions().Stats(t.Context())
	if err != nil || st.Sessions != 1 || st.Users != 1 {
		t.Errorf("stats %+v (%v), want one session of one user", st, err)
	}
}

func TestBadCookieIsAnonymous(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), nil)
	srv := serve(t, app(m))

	// A revoked token and an expired one, as the store issued them.
	revoked, err := node.Sessions().Create(t.Context(), "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = node.Sessions().Delete(t.Context(), revoked.ID)
	expired, err := node.Sessions().Create(t.Context(), "alice", nil, coord.WithIdleTTL(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, func() bool {
		ok, err := node.Sessions().Exists(t.Context(), expired.ID)
		return err == nil && !ok
	}, "the 1ms session expires")
	// A token of another store (foreign).
	foreign, err := newNode(t).Sessions().Create(t.Context(), "alice", nil)
	if err != nil {
		t.Fatal(err)
	}

	for name, value := range map[string]string{
		"malformed":        "not a token",
		"malformed suffix": "x~y~z",
		"oversized":        strings.Repeat("a", 5000),
		"revoked":          revoked.ID,
		"expired":          expired.ID + "~" + strconv.FormatInt(time.Now().Unix(), 10),
		"foreign":          foreign.ID,
	} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, srv)
			c.setCookie(m.CookieName(), value)
			res, body := c.do("GET", "/me")
			if res.StatusCode != http.StatusOK || body != "anonymous" {
				t.Fatalf("GET /me with a %s cookie: %d %q, want 200 anonymous", name, res.StatusCode, body)
			}
			k := sessionCookie(res, m.CookieName())
			if k == nil || k.MaxAge >= 0 || k.Value != "" {
				t.Errorf("the %s cookie was not cleared: %v", name, setCookies(res))
			}
			// The bad cookie is replaced by a new session's.
			c.setCookie(m.CookieName(), value)
			if got := c.get("/put?k=a&v=b"); got != "ok" {
				t.Fatal(got)
			}
			if v := c.cookie(m.CookieName()); v == "" || token(v) == value {
				t.Errorf("after a Put the browser holds the old value or none (%v), want a new session", v == "")
			}
		})
	}
}

// failingStore is a SessionStore whose chosen methods fail with err.
type failingStore struct {
	coord.SessionStore
	mu                  sync.Mutex
	err                 error
	touch, update, crea bool
}

func (f *failingStore) fail(touch, update, create bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touch, f.update, f.crea = touch, update, create
}

func (f *failingStore) Touch(ctx context.Context, id string) (*coord.Session, error) {
	f.mu.Lock()
	fail := f.touch
	f.mu.Unlock()
	if fail {
		return nil, f.err
	}
	return f.SessionStore.Touch(ctx, id)
}

func (f *failingStore) Update(ctx context.Context, id string, data map[string]any) error {
	f.mu.Lock()
	fail := f.update
	f.mu.Unlock()
	if fail {
		return f.err
	}
	return f.SessionStore.Update(ctx, id, data)
}

func (f *failingStore) Create(ctx context.Context, userID string, data map[string]any, opts ...coord.SessionOption) (*coord.Session, error) {
	f.mu.Lock()
	fail := f.crea
	f.mu.Unlock()
	if fail {
		return nil, f.err
	}
	return f.SessionStore.Create(ctx, userID, data, opts...)
}

func TestStoreUnavailable(t *testing.T) {
	store := &failingStore{SessionStore: newNode(t).Sessions(), err: coord.ErrUnavailable}
	var mu sync.Mutex
	var handled []error
	m := newManager(t, store, &httpsession.Options{ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		mu.Lock()
		handled = append(handled, err)
		mu.Unlock()
		httpsession.DefaultErrorHandler(w, r, err)
	}})
	c := newClient(t, serve(t, app(m)))
	c.do("POST", "/login?user=alice")
	value := c.cookie(m.CookieName())
	if value == "" {
		t.Fatal("no cookie after login")
	}

	// Loading fails: 503, the handler does not run, the cookie stays.
	store.fail(true, false, false)
	res, body := c.do("GET", "/me")
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "anonymous") {
		t.Errorf("GET /me with the store down: %d %q, want 503 from the error handler", res.StatusCode, body)
	}
	if res.Header.Get("Set-Cookie") != "" || c.cookie(m.CookieName()) != value {
		t.Errorf("the store's failure touched the cookie: %v", setCookies(res))
	}

	// Saving fails: the error handler answers instead of the handler.
	store.fail(false, true, false)
	res, body = c.do("GET", "/put?k=a&v=b")
	if res.StatusCode != http.StatusServiceUnavailable || body == "ok" {
		t.Errorf("Put with the store failing writes: %d %q, want 503", res.StatusCode, body)
	}
	// Creating fails for a new anonymous session.
	store.fail(false, false, true)
	anon := newClient(t, c.srv)
	if res, _ := anon.do("GET", "/put?k=a&v=b"); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a first Put with the store failing creates: %d, want 503", res.StatusCode)
	}

	store.fail(false, false, false)
	if got := c.get("/me"); got != "alice" {
		t.Errorf("after the store is back: %q, want alice", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != 3 {
		t.Fatalf("error handler called %d times, want 3", len(handled))
	}
	for _, err := range handled {
		if !errors.Is(err, coord.ErrUnavailable) || strings.Contains(err.Error(), token(value)) {
			t.Errorf("error %q: want ErrUnavailable and no token", err)
		}
	}
}

func TestWriteAfterFailedSave(t *testing.T) {
	store := &failingStore{SessionStore: newNode(t).Sessions(), err: coord.ErrUnavailable}
	m := newManager(t, store, nil)
	store.fail(false, false, true)
	var writeErr error
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = httpsession.FromContext(r.Context()).Put("k", 1)
		w.WriteHeader(http.StatusCreated)
		_, writeErr = w.Write([]byte("secret page"))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("response %d %q, want the error handler's 503 only", rec.Code, rec.Body.String())
	}
	if !errors.Is(writeErr, httpsession.ErrResponseFailed) {
		t.Errorf("the handler's Write: %v, want ErrResponseFailed", writeErr)
	}
}

// TestCookieFollowsIdleExpiry: the cookie's expiry slides with the
// session's, re-sent once it moved by CookieRefresh.
func TestCookieFollowsIdleExpiry(t *testing.T) {
	node := newNode(t)
	m := newManager(t, node.Sessions(), &httpsession.Options{IdleTTL: time.Hour, CookieRefresh: time.Second})
	c := newClient(t, serve(t, app(m)))
	res, _ := c.do("POST", "/login?user=alice")
	first := sessionCookie(res, m.CookieName())
	if first == nil {
		t.Fatal("no cookie at login")
	}
	// Within a second of the last Set-Cookie, the cookie is not re-sent.
	res, _ = c.do("GET", "/me")
	if k := sessionCookie(res, m.CookieName()); k != nil && !k.Expires.After(first.Expires) {
		t.Errorf("re-sent without a later expiry: %s", hidden(k))
	}
	// Once the expiry has slid by a second, it is.
	var next *http.Cookie
	eventually(t, 5*time.Second, func() bool {
		res, body := c.do("GET", "/me")
		next = sessionCookie(res, m.CookieName())
		return body == "alice" && next != nil
	}, "the cookie is re-sent as the session's expiry slides")
	if !next.Expires.After(first.Expires) || next.MaxAge < 3590 || next.MaxAge > 3600 {
		t.Errorf("re-sent cookie Expires %v (first %v) Max-Age %d, want a later expiry an hour ahead", next.Expires, first.Expires, next.MaxAge)
	}
	if token(next.Value) != token(first.Value) {
		t.Error("a slide changed the token")
	}
	s, err := node.Sessions().Get(t.Context(), token(next.Value))
	if err != nil || next.Expires.After(s.ExpiresAt) || s.ExpiresAt.Sub(next.Expires) > 2*time.Second {
		t.Errorf("cookie expiry %v, session expiry %v (%v): want equal to the second, never later", next.Expires, s.ExpiresAt, err)
	}
}

func TestCookieRefreshEveryRequest(t *testing.T) {
	m := newManager(t, newNode(t).Sessions(), &httpsession.Options{CookieRefresh: -1})
	c := newClient(t, serve(t, app(m)))
	c.do("POST", "/login?user=alice")
	for range 3 {
		if res, _ := c.do("GET", "/me"); sessionCookie(res, m.CookieName()) == nil {
			t.Fatal("CookieRefresh -1 did not re-send the cookie")
		}
	}
}

func TestCookieCappedByLifetime(t *testing.T) {
	m := newManager(t, newNode(t).Sessions(), &httpsession.Options{IdleTTL: time.Hour, Lifetime: 10 * time.Second})
	c := newClient(t, serve(t, app(m)))
	res, _ := c.do("POST", "/login?user=alice")
	k := sessionCookie(res, m.CookieName())
	if k == nil || k.MaxAge > 10 || k.MaxAge < 8 || k.Expires.After(time.Now().Add(10*time.Second)) {
		t.Fatalf("cookie %s: want Max-Age and Expires capped by the 10s lifetime", hidden(k))
	}
}

func TestLoginRotates(t *testing.T) {
	node := newNode(t)
	store := node.Sessions()
	m := newManager(t, store, nil)
	c := newClient(t, serve(t, app(m)))
	name := m.CookieName()

	// Anonymous, with data: login makes a new session with that data.
	c.get("/put?k=cart&v=3")
	anon := token(c.cookie(name))
	c.do("POST", "/login?user=alice")
	alice := token(c.cookie(name))
	if alice == anon || alice == "" {
		t.Fatal("login kept the anonymous token")
	}
	if _, err := store.Get(t.Context(), anon); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("the anonymous token after login: %v, want ErrNotFound", err)
	}
	if got := c.get("/get?k=cart"); got != "3" {
		t.Errorf("cart after login %q, want 3", got)
	}

	// The same user again (a privilege change): rotated, same session.
	before, _ := store.Get(t.Context(), alice)
	c.do("POST", "/login?user=alice")
	again := token(c.cookie(name))
	after, err := store.Get(t.Context(), again)
	if again == alice || err != nil || !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("second login: new token %v, created %v vs %v (%v): want a rotation", again != alice, after, before, err)
	}
	if _, err := store.Get(t.Context(), alice); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("token before the rotation: %v, want ErrNotFound", err)
	}

	// RenewToken rotates too.
	c.do("POST", "/renew")
	renewed := token(c.cookie(name))
	if renewed == again {
		t.Error("RenewToken did not change the cookie")
	}
	if _, err := store.Get(t.Context(), again); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("token before RenewToken: %v, want ErrNotFound", err)
	}

	// Another user on this browser: alice's session ends, her data stays hers.
	c.do("POST", "/login?user=bob")
	if got := c.get("/me"); got != "bob" {
		t.Fatalf("user %q, want bob", got)
	}
	if res, _ := c.do("GET", "/get?k=cart"); res.StatusCode != http.StatusNotFound {
		t.Error("bob's session has alice's cart")
	}
	if _, err := store.Get(t.Context(), renewed); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("alice's token after bob's login: %v, want ErrNotFound", err)
	}

	// A user ID that looks anonymous is refused.
	if res, _ := c.do("POST", "/login?user=anon:x"); res.StatusCode != http.StatusInternalServerError {
		t.Errorf("login as anon:x: %d, want refused", res.StatusCode)
	}
}

func TestLogout(t *testing.T) {
	m := newManager(t, newNode(t).Sessions(), nil)
	srv := serve(t, app(m))
	laptop, phone := newClient(t, srv), newClient(t, srv)
	laptop.do("POST", "/login?user=alice")
	phone.do("POST", "/login?user=alice")

	res, _ := laptop.do("POST", "/logout")
	if k := sessionCookie(res, m.CookieName()); k == nil || k.MaxAge >= 0 {
		t.Errorf("logout did not clear the cookie: %v", setCookies(res))
	}
	if laptop.get("/me") != "anonymous" || phone.get("/me") != "alice" {
		t.Error("logout should end the laptop's session only")
	}

	laptop.do("POST", "/login?user=alice")
	res, body := phone.do("POST", "/logout-all")
	if body != "2" || sessionCookie(res, m.CookieName()) == nil {
		t.Errorf("logout everywhere: %q %v, want 2 and the cookie cleared", body, setCookies(res))
	}
	if laptop.get("/me") != "anonymous" || phone.get("/me") != "anonymous" {
		t.Error("logout everywhere left a device logged in")
	}
	if laptop.cookie(m.CookieName()) != "" {
		t.Error("the laptop's dead cookie was not dropped")
	}
}

// TestTwoInstances: two instances on one store, each merging its own
// field into one session at the same time, lose neither.
func TestTwoInstances(t *testing.T) {
	hub := memory.NewHub(nil)
	nodeA, nodeB := hub.NewNode(nil), hub.NewNode(nil)
	defer nodeA.Close(context.Background())
	defer nodeB.Close(context.Background())
	m1 := newManager(t, nodeA.Sessions(), nil)
	m2 := newManager(t, nodeB.Sessions(), nil)
	srv1, srv2 := serve(t, app(m1)), serve(t, app(m2))
	c := newClient(t, srv1)
	c.do("POST", "/login?user=alice")
	value := c.cookie(m1.CookieName())
	c2 := newClient(t, srv2)
	c2.setCookie(m2.CookieName(), value)

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(2)
		go func() { defer wg.Done(); c.get("/put?k=a" + strconv.Itoa(i) + "&v=1") }()
		go func() { defer wg.Done(); c2.get("/put?k=b" + strconv.Itoa(i) + "&v=2") }()
	}
	wg.Wait()
	s, err := nodeB.Sessions().Get(t.Context(), token(value))
	if err != nil || len(s.Data) != 40 {
		t.Fatalf("session has %d fields (%v), want 40", len(s.Data), err)
	}
}
