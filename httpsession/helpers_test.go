package httpsession_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/httpsession"
)

// newNode returns a memory backend node of a new hub, closed at cleanup.
func newNode(t *testing.T) *memory.Node {
	t.Helper()
	n := memory.NewHub(nil).NewNode(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

// newManager returns a Manager on store with o, failing the test on error.
func newManager(t *testing.T, store coord.SessionStore, o *httpsession.Options) *httpsession.Manager {
	t.Helper()
	m, err := httpsession.New(store, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// serve starts a TLS test server of h, closed at cleanup.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// client is a cookie-keeping HTTP client of a test server.
type client struct {
	t   *testing.T
	srv *httptest.Server
	jar *cookiejar.Jar
	c   *http.Client
}

func newClient(t *testing.T, srv *httptest.Server) *client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, srv: srv, jar: jar, c: &http.Client{Transport: srv.Client().Transport, Jar: jar}}
}

// do sends method path and returns the response, whose body it read.
func (c *client) do(method, path string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.srv.URL+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	res, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return res, string(body)
}

// get is do("GET", path) that wants 200 and returns the body.
func (c *client) get(path string) string {
	c.t.Helper()
	res, body := c.do(http.MethodGet, path)
	if res.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
	}
	return body
}

// cookie returns the value of the cookie name the client holds, or "".
func (c *client) cookie(name string) string {
	u, _ := url.Parse(c.srv.URL)
	for _, k := range c.jar.Cookies(u) {
		if k.Name == name {
			return k.Value
		}
	}
	return ""
}

// setCookie makes the client hold cookie name=value.
func (c *client) setCookie(name, value string) {
	u, _ := url.Parse(c.srv.URL)
	c.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: true}})
}

// token returns the token part of a session cookie value.
func token(value string) string {
	if i := strings.LastIndex(value, "~"); i >= 0 {
		return value[:i]
	}
	return value
}

// sessionCookie returns the Set-Cookie of name in res, or nil.
func sessionCookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// eventually polls cond every 50ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// app is the handler the tests drive, behind m.LoadAndSave:
//
//	GET  /put?k=&v=     Put(k, v)
//	GET  /get?k=        GetString(k)
//	GET  /me            the user ID, or "anonymous"
//	POST /login?user=   Login(user)
//	POST /renew         RenewToken
//	POST /logout        Logout
//	POST /logout-all    LogoutEverywhere, answers the count
func app(m *httpsession.Manager) http.Handler {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, err error) { http.Error(w, err.Error(), http.StatusInternalServerError) }
	mux.HandleFunc("GET /put", func(w http.ResponseWriter, r *http.Request) {
		if err := httpsession.FromContext(r.Context()).Put(r.FormValue("k"), r.FormValue("v")); err != nil {
			fail(w, err)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		v, err := httpsession.FromContext(r.Context()).GetString(r.FormValue("k"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		u := httpsession.FromContext(r.Context()).UserID()
		if u == "" {
			u = "anonymous"
		}
		io.WriteString(w, u)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := httpsession.FromContext(r.Context()).Login(r.Context(), r.FormValue("user")); err != nil {
			fail(w, err)
			return
		}
		io.WriteString(w, "logged in")
	})
	mux.HandleFunc("POST /renew", func(w http.ResponseWriter, r *http.Request) {
		if err := httpsession.FromContext(r.Context()).RenewToken(r.Context()); err != nil {
			fail(w, err)
			return
		}
		io.WriteString(w, "renewed")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := httpsession.FromContext(r.Context()).Logout(r.Context()); err != nil {
			fail(w, err)
			return
		}
		io.WriteString(w, "logged out")
	})
	mux.HandleFunc("POST /logout-all", func(w http.ResponseWriter, r *http.Request) {
		n, err := httpsession.FromContext(r.Context()).LogoutEverywhere(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		fmt.Fprint(w, n)
	})
	return m.LoadAndSave(mux)
}

// hidden returns a copy of c without its value, for failure messages:
// session tokens stay out of test output too.
func hidden(c *http.Cookie) string {
	if c == nil {
		return "no cookie"
	}
	k := *c
	if k.Value != "" {
		k.Value = "REDACTED"
	}
	return k.String()
}

// setCookies returns res's Set-Cookie headers without their values.
func setCookies(res *http.Response) []string {
	var out []string
	for _, c := range res.Cookies() {
		out = append(out, hidden(c))
	}
	return out
}
