package httpsession_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/httpsession"
)

// New picks the cookie's name from its attributes and refuses options a
// browser would silently drop.
func ExampleNew() {
	node := memory.NewHub(nil).NewNode(nil)
	defer node.Close(context.Background())

	m, _ := httpsession.New(node.Sessions(), nil)
	fmt.Println(m.CookieName())
	m, _ = httpsession.New(node.Sessions(), &httpsession.Options{Cookie: httpsession.CookieOptions{Domain: "example.com"}})
	fmt.Println(m.CookieName())
	m, _ = httpsession.New(node.Sessions(), &httpsession.Options{Cookie: httpsession.CookieOptions{Insecure: true}})
	fmt.Println(m.CookieName())

	_, err := httpsession.New(node.Sessions(), &httpsession.Options{Cookie: httpsession.CookieOptions{Name: "__Host-sid", Domain: "example.com"}})
	fmt.Println(errors.Is(err, coord.ErrInvalid))
	// Output:
	// __Host-session
	// __Secure-session
	// session
	// true
}

// A visit counter: the session is loaded for each request, and what the
// handler puts is committed before the response goes out. The cookie is
// sent when the session is created; later requests slide its expiry and
// get it again only once that moved by CookieRefresh.
func ExampleManager_LoadAndSave() {
	node := memory.NewHub(nil).NewNode(nil) // backend.Open in a service
	defer node.Close(context.Background())
	m, err := httpsession.New(node.Sessions(), nil)
	if err != nil {
		panic(err)
	}
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		n, err := s.GetInt64("visits")
		if err != nil && !errors.Is(err, coord.ErrNotFound) {
			http.Error(w, "bad session", http.StatusInternalServerError)
			return
		}
		if err := s.Put("visits", n+1); err != nil {
			http.Error(w, "bad session", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "visit %d", n+1)
	}))

	var cookie *http.Cookie
	for range 3 {
		req := httptest.NewRequest("GET", "https://example.com/", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Print(rec.Body.String())
		for _, c := range rec.Result().Cookies() {
			cookie = c
			fmt.Printf(" (cookie %s: Secure=%v HttpOnly=%v SameSite=Lax:%v Max-Age≈%dh)",
				c.Name, c.Secure, c.HttpOnly, c.SameSite == http.SameSiteLaxMode, (c.MaxAge+1800)/3600)
		}
		fmt.Println()
	}
	// Output:
	// visit 1 (cookie __Host-session: Secure=true HttpOnly=true SameSite=Lax:true Max-Age≈24h)
	// visit 2
	// visit 3
}

// Login gives the session a new token and carries over what was put
// into it before (a cart, the page to return to). Load gives a handler's
// test or any other entry point a session without cookies.
func ExampleSession_Login() {
	node := memory.NewHub(nil).NewNode(nil)
	defer node.Close(context.Background())
	m, err := httpsession.New(node.Sessions(), nil)
	if err != nil {
		panic(err)
	}
	ctx, err := m.Load(context.Background(), "")
	if err != nil {
		panic(err)
	}
	s := httpsession.FromContext(ctx)
	_ = s.Put("returnTo", "/settings")
	fmt.Printf("before: user %q\n", s.UserID())

	if err := s.Login(ctx, "alice"); err != nil {
		panic(err)
	}
	to, _ := s.GetString("returnTo")
	fmt.Printf("after: user %q, returnTo %s\n", s.UserID(), to)

	n, _ := node.Sessions().Count(ctx)
	fmt.Println("sessions stored:", n)
	// Output:
	// before: user ""
	// after: user "alice", returnTo /settings
	// sessions stored: 1
}

// A handler under test gets its session from Load; Commit saves what it
// put.
func ExampleManager_Load() {
	node := memory.NewHub(nil).NewNode(nil)
	defer node.Close(context.Background())
	m, err := httpsession.New(node.Sessions(), nil)
	if err != nil {
		panic(err)
	}
	setTheme := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := httpsession.FromContext(r.Context()).Put("theme", r.FormValue("theme")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})

	ctx, err := m.Load(context.Background(), "")
	if err != nil {
		panic(err)
	}
	s := httpsession.FromContext(ctx)
	if err := s.Login(ctx, "alice"); err != nil {
		panic(err)
	}
	setTheme.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, "POST", "/theme?theme=dark", nil))
	if err := s.Commit(ctx); err != nil {
		panic(err)
	}

	stored, _ := node.Sessions().ByUser(ctx, "alice")
	var theme string
	_ = stored[0].Decode("theme", &theme)
	fmt.Println("stored theme:", theme)
	// Output:
	// stored theme: dark
}

// Typed getters read a field exactly (a 64-bit snowflake survives) and
// say clearly when it is missing or of another type.
func ExampleSession_GetInt64() {
	node := memory.NewHub(nil).NewNode(nil)
	defer node.Close(context.Background())
	m, _ := httpsession.New(node.Sessions(), nil)
	ctx, _ := m.Load(context.Background(), "")
	s := httpsession.FromContext(ctx)
	_ = s.Put("guildID", int64(1311745521374429184))
	_ = s.Put("name", "general")

	id, err := s.GetInt64("guildID")
	fmt.Println(id, err)
	_, err = s.GetInt64("name")
	fmt.Println(errors.Is(err, coord.ErrInvalid), err)
	_, err = s.GetInt64("missing")
	fmt.Println(errors.Is(err, coord.ErrNotFound))
	// Output:
	// 1311745521374429184 <nil>
	// true coord: invalid argument: httpsession: session field "name" is a string, not an int64
	// true
}

// LogoutEverywhere ends every session of the user, on every device and
// every instance sharing the store.
func ExampleSession_LogoutEverywhere() {
	hub := memory.NewHub(nil)
	a, b := hub.NewNode(nil), hub.NewNode(nil) // two instances
	defer a.Close(context.Background())
	defer b.Close(context.Background())
	ma, _ := httpsession.New(a.Sessions(), nil)
	mb, _ := httpsession.New(b.Sessions(), nil)

	laptop, _ := ma.Load(context.Background(), "")
	_ = httpsession.FromContext(laptop).Login(laptop, "alice")
	phone, _ := mb.Load(context.Background(), "")
	_ = httpsession.FromContext(phone).Login(phone, "alice")

	n, err := httpsession.FromContext(phone).LogoutEverywhere(phone)
	fmt.Println("ended:", n, err)
	left, _ := a.Sessions().Count(context.Background())
	fmt.Println("left:", left)
	// Output:
	// ended: 2 <nil>
	// left: 0
}
