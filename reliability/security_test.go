package reliability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
	"github.com/cgn-bot/coord/middleware/logging"
)

const (
	aclUser = "coord-app"
	aclPass = "acl-Pa55-w0rd-9f3e1c"
)

// withPassword returns rawURL with its password replaced by pw.
func withPassword(t *testing.T, rawURL, user, pw string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pw)
	return u.String()
}

// TestACL connects as an ACL user with a password from the URL, and checks
// that wrong credentials fail at once with a clear error that carries no
// password.
func TestACL(t *testing.T) {
	srv := redistest.Start(t, redistest.WithACLUser(aclUser, aclPass))
	ctx := t.Context()

	t.Run("RightPassword", func(t *testing.T) {
		if !strings.Contains(srv.URL(), aclUser+":") {
			t.Fatalf("the server's URL %q has no user", srv.URL())
		}
		c, err := coordredis.NewClient(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		if err := coordredis.Connect(ctx, c); err != nil {
			_ = c.Close()
			t.Fatalf("Connect as %s: %v", aclUser, err)
		}
		n := newNode(t, c, "acl", &coordredis.Options{Prefix: uniq("acl") + ":"})
		l, err := n.Locker().Acquire(ctx, "acl:res")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		s, err := n.Sessions().Create(ctx, "u1", map[string]any{"a": 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Sessions().Get(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if h := n.Health(ctx); h.Status != coord.Healthy {
			t.Errorf("Health = %+v", h)
		}
	})

	wrong := map[string]string{
		"WrongPassword": withPassword(t, srv.URL(), aclUser, "wrong-Secret-7c2b9a"),
		"UnknownUser":   withPassword(t, srv.URL(), "nobody", "nobody-Secret-4d1e8f"),
		"NoCredentials": "redis://" + srv.Addr(),
	}
	for name, raw := range wrong {
		t.Run(name, func(t *testing.T) {
			var secrets []string
			if u, _ := url.Parse(raw); u.User != nil {
				pw, _ := u.User.Password()
				secrets = append(secrets, pw)
			}
			secrets = append(secrets, aclPass)
			c, err := coordredis.NewClient(raw)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			err = coordredis.Connect(ctx, c)
			took := time.Since(start)
			if !errors.Is(err, coordredis.ErrAuth) || !errors.Is(err, coord.ErrUnavailable) {
				t.Fatalf("Connect = %v, want ErrAuth and ErrUnavailable", err)
			}
			if took > 2*time.Second {
				t.Errorf("Connect with refused credentials took %v; it must not retry", took)
			}
			if !strings.Contains(err.Error(), "authentication") {
				t.Errorf("Connect's error does not say what failed: %v", err)
			}
			// A Backend made on the client anyway: its errors and Health
			// are clear and carry no password.
			n := newNode(t, c, "acl-wrong", &coordredis.Options{Prefix: uniq("aclw") + ":"})
			_, aerr := n.Locker().Acquire(ctx, "acl:res")
			if !errors.Is(aerr, coord.ErrUnavailable) {
				t.Errorf("Acquire with refused credentials = %v, want ErrUnavailable", aerr)
			}
			h := n.Health(ctx)
			if h.Status != coord.Unhealthy {
				t.Errorf("Health with refused credentials = %+v", h)
			}
			for _, msg := range []string{err.Error(), fmt.Sprint(aerr), h.Error} {
				for _, s := range secrets {
					if strings.Contains(msg, s) {
						t.Errorf("an error carries the password %q: %s", s, msg)
					}
				}
			}
			t.Logf("Connect failed after %v: %v", took.Round(time.Millisecond), err)
		})
	}

	t.Run("EnvPassword", func(t *testing.T) {
		pw := "env-Secret-0a9b8c"
		psrv := redistest.Start(t, redistest.WithPassword(pw))
		for _, tc := range []struct {
			pass string
			ok   bool
		}{{pw, true}, {"env-Wrong-5e6f7a", false}} {
			env := map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": fmt.Sprint(psrv.Port()), "REDIS_PASSWORD": tc.pass}
			opts, err := coordredis.FromLookup(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			c := goredis.NewClient(opts)
			err = coordredis.Connect(ctx, c)
			_ = c.Close()
			if tc.ok && err != nil {
				t.Errorf("Connect with REDIS_PASSWORD: %v", err)
			}
			if !tc.ok && (!errors.Is(err, coordredis.ErrAuth) || strings.Contains(err.Error(), tc.pass) || strings.Contains(err.Error(), pw)) {
				t.Errorf("Connect with a wrong REDIS_PASSWORD = %v, want ErrAuth without the password", err)
			}
		}
	})
}

// TestTLS talks to a TLS-only server through a rediss:// URL. The URL
// helper builds a TLS client that verifies the server; the test CA is
// named by the URL's tls_ca_file, by REDIS_TLS_CA_FILE, or set by the
// caller in the TLSConfig ParseURL returns.
func TestTLS(t *testing.T) {
	srv := redistest.Start(t, redistest.WithTLS(), redistest.WithACLUser(aclUser, aclPass))
	ctx := t.Context()
	if !strings.HasPrefix(srv.URL(), "rediss://") {
		t.Fatalf("URL %q is not rediss://", srv.URL())
	}

	t.Run("UntrustedCARefused", func(t *testing.T) {
		opts, err := coordredis.ParseURL(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		if opts.TLSConfig == nil {
			t.Fatal("ParseURL(rediss://...) gave no TLS configuration")
		}
		c := goredis.NewClient(opts)
		defer c.Close()
		// Connect retries until its deadline and reports the last error:
		// the deadline leaves a loaded machine time for one handshake.
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		err = coordredis.Connect(cctx, c)
		if !errors.Is(err, coord.ErrUnavailable) {
			t.Fatalf("Connect to a server whose CA the client does not trust = %v, want ErrUnavailable", err)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Connect's error does not name the certificate: %v", err)
		}
		t.Logf("Connect: %v", err)
		if strings.Contains(err.Error(), aclPass) {
			t.Errorf("the error carries the password: %v", err)
		}
	})

	t.Run("PlainClientRefused", func(t *testing.T) {
		c := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), Username: aclUser, Password: aclPass, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: time.Second})
		defer c.Close()
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := coordredis.Connect(cctx, c); err == nil {
			t.Fatal("a plain-text client talked to the TLS-only server")
		}
	})

	t.Run("TrustedCA", func(t *testing.T) {
		caURL := srv.URL() + "?tls_ca_file=" + url.QueryEscape(srv.CAFile())
		// Three ways to trust the CA: the URL's tls_ca_file, the
		// environment's REDIS_TLS_CA_FILE, and the caller's TLSConfig.
		ways := []func() (*goredis.Options, error){
			func() (*goredis.Options, error) { return coordredis.ParseURL(caURL) },
			func() (*goredis.Options, error) {
				env := map[string]string{"REDIS_URL": srv.URL(), "REDIS_TLS_CA_FILE": srv.CAFile()}
				return coordredis.FromLookup(func(k string) string { return env[k] })
			},
			func() (*goredis.Options, error) {
				opts, err := coordredis.ParseURL(srv.URL())
				if err == nil {
					opts.TLSConfig.RootCAs = srv.CAPool()
				}
				return opts, err
			},
		}
		way := 0
		node := func(prefix string) *node {
			opts, err := ways[way%len(ways)]()
			way++
			if err != nil {
				t.Fatal(err)
			}
			c := goredis.NewClient(opts)
			if err := coordredis.Connect(ctx, c); err != nil {
				_ = c.Close()
				t.Fatalf("Connect over TLS: %v", err)
			}
			return newNode(t, c, "tls", &coordredis.Options{Prefix: prefix})
		}
		prefix := uniq("tls") + ":"
		a, b := node(prefix), node(prefix)
		_ = node(prefix) // the third way connects too
		got := &coordtest.Recorder[coord.Event]{}
		if _, err := a.Events().Subscribe(ctx, "tls-topic", got.Add); err != nil {
			t.Fatal(err)
		}
		coordtest.Eventually(t, 5*time.Second, func() bool {
			_ = b.Events().Publish(ctx, "tls-topic", "over tls")
			return got.Count(func(coord.Event) bool { return true }) > 0
		}, "an event over TLS")
		l, err := a.Locker().Acquire(ctx, "tls:res")
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := b.Locker().Locked(ctx, "tls:res"); !ok || err != nil {
			t.Errorf("Locked over TLS = %v, %v", ok, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if h := a.Health(ctx); h.Status != coord.Healthy {
			t.Errorf("Health over TLS = %+v", h)
		}
	})
}

// pair makes two instances sharing one backend, for tests that run on
// memory and on a real server.
type pair func(t *testing.T) (a, b coord.Backend)

func securityBackends(t *testing.T) map[string]pair {
	m, _ := securityBackendsOn(t)
	return m
}

// securityBackendsOn is securityBackends that also returns the server
// under the "redis" pair, whose every key has a prefix starting "sec".
func securityBackendsOn(t *testing.T) (map[string]pair, *redistest.Server) {
	srv := redistest.Start(t)
	return map[string]pair{
		"memory": func(t *testing.T) (coord.Backend, coord.Backend) {
			hub := memory.NewHub(nil)
			a, b := hub.New(nil), hub.New(nil)
			t.Cleanup(func() { _ = a.Close(context.Background()); _ = b.Close(context.Background()) })
			return a, b
		},
		"redis": func(t *testing.T) (coord.Backend, coord.Backend) {
			prefix := uniq("sec") + ":"
			return singleNode(t, srv, prefix, nil), singleNode(t, srv, prefix, nil)
		},
	}, srv
}

// TestTokensRefused gives session stores forged, truncated, altered and
// other users' tokens and handles.
func TestTokensRefused(t *testing.T) {
	for name, mk := range securityBackends(t) {
		t.Run(name, func(t *testing.T) {
			a, b := mk(t)
			ctx := t.Context()
			alice, err := a.Sessions().Create(ctx, "alice", map[string]any{"role": "admin"})
			if err != nil {
				t.Fatal(err)
			}
			bob, err := a.Sessions().Create(ctx, "bob", map[string]any{"role": "user"})
			if err != nil {
				t.Fatal(err)
			}
			tok := alice.ID
			flip := []byte(tok)
			if flip[len(flip)-2] == 'A' {
				flip[len(flip)-2] = 'B'
			} else {
				flip[len(flip)-2] = 'A'
			}
			forged := "s1." + strings.Repeat("Q", len(tok)-3)
			for what, id := range map[string]string{
				"forged":             forged,
				"truncated":          tok[:len(tok)-1],
				"extended":           tok + "A",
				"one character":      string(flip),
				"handle as token":    alice.Handle,
				"upper case":         strings.ToUpper(tok),
				"other prefix":       "s2" + tok[2:],
				"with CRLF":          tok + "\r\n",
				"with space":         " " + tok,
				"empty":              "",
				"percent-encoded":    url.QueryEscape(tok) + "%00",
				"bob's handle":       bob.Handle,
				"alice's token, b64": strings.ReplaceAll(tok, "-", "+"),
			} {
				if what == "alice's token, b64" && !strings.Contains(tok, "-") {
					continue
				}
				for _, inst := range []coord.Backend{a, b} {
					_, err := inst.Sessions().Get(ctx, id)
					if !errors.Is(err, coord.ErrInvalid) && !errors.Is(err, coord.ErrNotFound) {
						t.Errorf("Get(%s) = %v, want ErrInvalid or ErrNotFound", what, err)
					}
					if err != nil && strings.Contains(err.Error(), tok) {
						t.Errorf("Get(%s)'s error carries alice's token", what)
					}
					if _, err := inst.Sessions().Touch(ctx, id); err == nil {
						t.Errorf("Touch(%s) succeeded", what)
					}
					if err := inst.Sessions().Update(ctx, id, map[string]any{"role": "root"}); err == nil {
						t.Errorf("Update(%s) succeeded", what)
					}
					if _, err := inst.Sessions().Rotate(ctx, id); err == nil {
						t.Errorf("Rotate(%s) succeeded", what)
					}
				}
			}
			// Revoke with another user's handle, or with a token.
			if err := b.Sessions().Revoke(ctx, "alice", bob.Handle); !errors.Is(err, coord.ErrNotFound) {
				t.Errorf("Revoke(alice, bob's handle) = %v, want ErrNotFound", err)
			}
			if err := b.Sessions().Revoke(ctx, "alice", tok); !errors.Is(err, coord.ErrNotFound) && !errors.Is(err, coord.ErrInvalid) {
				t.Errorf("Revoke(alice, alice's token) = %v, want ErrNotFound or ErrInvalid", err)
			}
			// Listings carry handles, never tokens.
			list, err := b.Sessions().ByUser(ctx, "alice")
			if err != nil || len(list) != 1 || list[0].ID != "" || list[0].Handle != alice.Handle {
				t.Errorf("ByUser(alice) = %+v, %v; want one session with its handle and no ID", list, err)
			}
			// A rotated token is dead at once, on every instance.
			rot, err := a.Sessions().Rotate(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Sessions().Get(ctx, tok); !errors.Is(err, coord.ErrNotFound) {
				t.Errorf("Get(rotated-out token) = %v, want ErrNotFound", err)
			}
			for _, s := range []*coord.Session{rot, bob} {
				got, err := b.Sessions().Get(ctx, s.ID)
				if err != nil {
					t.Fatalf("Get(%s's token) after the attempts: %v", s.UserID, err)
				}
				var role string
				if err := got.Decode("role", &role); err != nil || role == "root" {
					t.Errorf("%s's role after the attempts = %q, %v", s.UserID, role, err)
				}
			}
		})
	}
}

// TestStaleLockToken checks that a lease that ended cannot act on the
// next holder's lease.
func TestStaleLockToken(t *testing.T) {
	for name, mk := range securityBackends(t) {
		t.Run(name, func(t *testing.T) {
			a, b := mk(t)
			ctx := t.Context()
			old, err := a.Locker().Acquire(ctx, "stale:res", coord.WithTTL(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := b.Locker().ForceRelease(ctx, "stale:res"); !ok || err != nil {
				t.Fatalf("ForceRelease = %v, %v", ok, err)
			}
			cur, err := b.Locker().Acquire(ctx, "stale:res", coord.WithTTL(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := old.Extend(ctx, time.Minute); !errors.Is(err, coord.ErrNotHeld) {
				t.Errorf("stale Extend = %v, want ErrNotHeld", err)
			}
			if err := old.Release(ctx); !errors.Is(err, coord.ErrNotHeld) {
				t.Errorf("stale Release = %v, want ErrNotHeld", err)
			}
			if ttl, err := cur.TTL(ctx); err != nil || ttl < 5*time.Second {
				t.Errorf("the current holder's TTL after stale calls = %v, %v", ttl, err)
			}
			if cur.Fence() <= old.Fence() || cur.Token() == old.Token() {
				t.Errorf("fence %d after %d, tokens equal: %v", cur.Fence(), old.Fence(), cur.Token() == old.Token())
			}
			_ = cur.Release(ctx)
		})
	}
}

// TestNamesStayInTheirKeys uses names with braces, glob metacharacters,
// percent signs and CR/LF: control characters are refused, and every other
// name reaches only its own lease, session index, key or topic.
func TestNamesStayInTheirKeys(t *testing.T) {
	backends, srv := securityBackendsOn(t)
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) { checkNames(t, mk) })
	}
	// Every key the names made is under the prefix and has exactly one
	// hash tag: no name added or closed a brace.
	keys, _ := srv.Do(t, "KEYS", "*").([]any)
	if len(keys) == 0 {
		t.Fatal("no keys on the server after the name cases")
	}
	for _, k := range keys {
		key, _ := k.(string)
		if !strings.HasPrefix(key, "sec") || strings.Count(key, "{") != 1 || strings.Count(key, "}") != 1 {
			t.Errorf("key %q is outside the prefix or has a hash tag a name changed", key)
		}
	}
	t.Logf("%d keys, each under its prefix with one hash tag", len(keys))
}

// checkNames runs the name cases on two instances made by mk.
func checkNames(t *testing.T, mk pair) {
	a, b := mk(t)
	ctx := t.Context()

	t.Run("ControlCharactersRefused", func(t *testing.T) {
		for _, bad := range []string{"a\r\nDEL x", "a\nb", "a\rb", "x\x00y", "\r\n*"} {
			checks := map[string]error{}
			_, checks["Acquire"] = a.Locker().Acquire(ctx, bad)
			_, checks["Locked"] = a.Locker().Locked(ctx, bad)
			_, checks["ForceRelease"] = a.Locker().ForceRelease(ctx, bad)
			checks["Invalidate"] = a.Invalidator().Invalidate(ctx, bad, nil)
			checks["InvalidatePattern"] = a.Invalidator().InvalidatePattern(ctx, bad, nil)
			_, checks["Subscribe OnlyKey"] = a.Invalidator().Subscribe(ctx, func(coord.Invalidation) {}, coord.OnlyKey(bad))
			checks["Publish"] = a.Events().Publish(ctx, bad, 1)
			_, checks["Subscribe topic"] = a.Events().Subscribe(ctx, bad, func(coord.Event) {})
			_, checks["Create user"] = a.Sessions().Create(ctx, bad, nil)
			_, checks["Create data key"] = a.Sessions().Create(ctx, "u", map[string]any{bad: 1})
			_, checks["ByUser"] = a.Sessions().ByUser(ctx, bad)
			_, checks["DeleteByUser"] = a.Sessions().DeleteByUser(ctx, bad)
			for op, err := range checks {
				if !errors.Is(err, coord.ErrInvalid) {
					t.Errorf("%s(%q) = %v, want ErrInvalid", op, bad, err)
				}
			}
		}
	})

	t.Run("LocksIndependent", func(t *testing.T) {
		names := []string{"a", "a}", "{a}", "{a", "a%7D", "a%", "*", "a*", "a?", "[a]", "a\\", "a:fence", "a}:fence", "a:wake", "lock:{a}", "%2A"}
		locks := map[string]coord.Lock{}
		for _, n := range names {
			l, err := a.Locker().Acquire(ctx, n, coord.WithTTL(10*time.Second), coord.WithRetry(0, 0))
			if err != nil {
				t.Fatalf("Acquire(%q) while the others are held: %v", n, err)
			}
			locks[n] = l
		}
		if ok, err := b.Locker().ForceRelease(ctx, "*"); !ok || err != nil {
			t.Fatalf("ForceRelease(*) = %v, %v", ok, err)
		}
		for _, n := range names {
			held, err := b.Locker().Locked(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if held == (n == "*") {
				t.Errorf("after ForceRelease(\"*\"), Locked(%q) = %v", n, held)
			}
		}
		for n, l := range locks {
			if n != "*" {
				if err := l.Release(ctx); err != nil {
					t.Errorf("Release(%q): %v", n, err)
				}
			}
		}
	})

	t.Run("KeyIsNotAPattern", func(t *testing.T) {
		all := &coordtest.Recorder[coord.Invalidation]{}
		one := &coordtest.Recorder[coord.Invalidation]{}
		if _, err := b.Invalidator().Subscribe(ctx, all.Add); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Invalidator().Subscribe(ctx, one.Add, coord.OnlyKey("user:1")); err != nil {
			t.Fatal(err)
		}
		coordtest.Eventually(t, 5*time.Second, func() bool {
			_ = a.Invalidator().Invalidate(ctx, "ready", nil)
			return all.Count(func(i coord.Invalidation) bool { return i.Key == "ready" }) > 0
		}, "subscriptions live")
		for _, k := range []string{"user:*", "user:?", "user:[1]", "*"} {
			if err := a.Invalidator().Invalidate(ctx, k, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Invalidator().Invalidate(ctx, "end", nil); err != nil {
			t.Fatal(err)
		}
		coordtest.Eventually(t, 5*time.Second, func() bool {
			return all.Count(func(i coord.Invalidation) bool { return i.Kind == coord.KeyInvalidation }) >= 6
		}, "every invalidation delivered")
		for _, inv := range all.All() {
			if inv.Kind == coord.KeyInvalidation && inv.Key != "ready" && inv.Key != "end" && inv.Matches("user:1") {
				t.Errorf("key invalidation %q matches user:1", inv.Key)
			}
		}
		if n := one.Count(func(i coord.Invalidation) bool { return i.Kind != coord.PurgeAll }); n != 0 {
			t.Errorf("OnlyKey(user:1) received %d key invalidations of glob-like keys: %+v", n, one.All())
		}
		if n := all.Count(func(i coord.Invalidation) bool { return i.Kind == coord.KeyInvalidation }); n < 6 {
			t.Errorf("the catch-all subscriber got %d key invalidations, want 6", n)
		}
	})

	t.Run("TopicsIndependent", func(t *testing.T) {
		topics := []string{"t*", "tx", "t?", "{t}", "t}", "t%7D"}
		recs := map[string]*coordtest.Recorder[coord.Event]{}
		for _, tp := range topics {
			recs[tp] = &coordtest.Recorder[coord.Event]{}
			if _, err := b.Events().Subscribe(ctx, tp, recs[tp].Add); err != nil {
				t.Fatal(err)
			}
		}
		coordtest.Eventually(t, 5*time.Second, func() bool {
			for _, tp := range topics {
				_ = a.Events().Publish(ctx, tp, tp)
			}
			for _, tp := range topics {
				if recs[tp].Count(func(coord.Event) bool { return true }) == 0 {
					return false
				}
			}
			return true
		}, "every topic delivered")
		for _, tp := range topics {
			for _, e := range recs[tp].All() {
				if e.Topic != tp || string(e.Payload) != fmt.Sprintf("%q", tp) {
					t.Errorf("subscriber of %q got an event of %q (%s)", tp, e.Topic, e.Payload)
				}
			}
		}
	})

	t.Run("UsersIndependent", func(t *testing.T) {
		users := []string{"u*", "ux", "u?", "{s}", "}", "u%7D", "u}"}
		for _, u := range users {
			if _, err := a.Sessions().Create(ctx, u, map[string]any{"who": u}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := b.Sessions().DeleteByUser(ctx, "u*")
		if err != nil || n != 1 {
			t.Errorf("DeleteByUser(u*) = %d, %v; want 1", n, err)
		}
		for _, u := range users {
			list, err := b.Sessions().ByUser(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if u == "u*" {
				want = 0
			}
			if len(list) != want {
				t.Errorf("ByUser(%q) has %d sessions, want %d", u, len(list), want)
			}
			for _, s := range list {
				if s.UserID != u {
					t.Errorf("ByUser(%q) lists a session of %q", u, s.UserID)
				}
			}
		}
	})
}

// bufLogger is a go-redis logger that writes to a buffer.
type bufLogger struct{ out *coordtest.SyncBuffer }

func (l bufLogger) Printf(_ context.Context, format string, v ...any) {
	fmt.Fprintf(l.out, "go-redis: "+format+"\n", v...)
}

// TestNoSecretInLogs runs a full lock and session lifecycle through the
// logging middleware over a password-protected Redis backend whose own
// logger, and go-redis's, write to the same place, at debug level, and looks for every
// secret in everything written: lock tokens, session tokens (issued,
// rotated, forged), session data and the password.
func TestNoSecretInLogs(t *testing.T) {
	srv := redistest.Start(t, redistest.WithACLUser(aclUser, aclPass))
	out := &coordtest.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mw := logging.New(logger, nil)
	prefix := uniq("log") + ":"
	mk := func(name string) coord.Backend {
		o := srv.Options()
		o.ClientName = uniq(name)
		n := newNode(t, goredis.NewClient(o), o.ClientName, &coordredis.Options{Prefix: prefix, Logger: logger, HealthInterval: 200 * time.Millisecond})
		return mw.Backend(n)
	}
	a, b := mk("loga-"), mk("logb-")
	ctx := t.Context()
	var secrets []string
	keep := func(s string) { secrets = append(secrets, s) }
	keep(aclPass)
	// go-redis's own log lines go to the same place while the test runs
	// (no other test runs then: top-level tests here are not parallel).
	goredis.SetLogger(bufLogger{out})
	t.Cleanup(func() { goredis.SetLogger(quiet{}) })

	// An instance with a wrong password: its failures are logged too.
	wrongPass := "wrong-Secret-for-log-5a7c"
	keep(wrongPass)
	wo := srv.Options()
	wo.Password = wrongPass
	wrong := mw.Backend(newNode(t, goredis.NewClient(wo), "logwrong", &coordredis.Options{Prefix: prefix, Logger: logger}))
	_, _ = wrong.Locker().Acquire(ctx, "log:res")
	_, _ = wrong.Sessions().Create(ctx, "log-user", map[string]any{"k": 1})
	_ = wrong.Health(ctx)
	dataSecret := "data-Secret-3b7c1d"
	keep(dataSecret)

	// Locks: acquire, TTL, extend, release; a stale release; a lease lost
	// under WithLock; a wait that times out.
	l, err := a.Locker().Acquire(ctx, "log:res", coord.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	keep(l.Token())
	_, _ = l.TTL(ctx)
	_ = l.Extend(ctx, 2*time.Second)
	_ = l.Release(ctx)
	_ = l.Release(ctx)
	_ = l.Extend(ctx, time.Second)
	wl := make(chan error, 1)
	entered := make(chan coord.Lock, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		wl <- coord.WithLock(ctx, a.Locker(), "log:withlock", func(fctx context.Context) error {
			for _, h := range a.Locker().Held() {
				if h.Resource() == "log:withlock" {
					entered <- h
				}
			}
			<-fctx.Done()
			return fctx.Err()
		}, coord.WithTTL(300*time.Millisecond))
	})
	var h coord.Lock
	select {
	case h = <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("WithLock did not start")
	}
	keep(h.Token())
	if ok, err := b.Locker().ForceRelease(ctx, "log:withlock"); !ok || err != nil {
		t.Fatalf("ForceRelease = %v, %v", ok, err)
	}
	select {
	case err := <-wl:
		if !errors.Is(err, coord.ErrLeaseLost) {
			t.Errorf("WithLock after ForceRelease = %v, want ErrLeaseLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WithLock did not see its lease lost")
	}
	wg.Wait()
	hold, err := b.Locker().Acquire(ctx, "log:busy", coord.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	keep(hold.Token())
	_, _ = a.Locker().Acquire(ctx, "log:busy", coord.WithRetry(1, 10*time.Millisecond))
	_ = hold.Release(ctx)

	// Sessions: the whole lifecycle, and forged tokens.
	s, err := a.Sessions().Create(ctx, "log-user", map[string]any{"password": dataSecret, "n": 1})
	if err != nil {
		t.Fatal(err)
	}
	keep(s.ID)
	_, _ = b.Sessions().Get(ctx, s.ID)
	_, _ = b.Sessions().Touch(ctx, s.ID)
	_ = b.Sessions().Update(ctx, s.ID, map[string]any{"token2": dataSecret + "-2"})
	keep(dataSecret + "-2")
	_, _ = b.Sessions().Exists(ctx, s.ID)
	_ = b.Sessions().Extend(ctx, s.ID, time.Hour)
	r, err := b.Sessions().Rotate(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	keep(r.ID)
	_, _ = a.Sessions().Get(ctx, s.ID) // the rotated-out token: not found
	forged := "s1." + strings.Repeat("Z", 43)
	keep(forged)
	_, _ = a.Sessions().Get(ctx, forged)
	_, _ = a.Sessions().Get(ctx, r.ID[:20])
	keep(r.ID[:20])
	_, _ = a.Sessions().ByUser(ctx, "log-user")
	_ = a.Sessions().Revoke(ctx, "log-user", r.Handle)
	s2, err := a.Sessions().Create(ctx, "log-user", map[string]any{"k": dataSecret + "-3"})
	if err != nil {
		t.Fatal(err)
	}
	keep(s2.ID)
	keep(dataSecret + "-3")
	_ = a.Sessions().Delete(ctx, s2.ID)
	_, _ = a.Sessions().DeleteByUser(ctx, "log-user")
	_, _ = a.Sessions().Count(ctx)
	_, _ = a.Sessions().Stats(ctx)
	_, _ = a.Sessions().Cleanup(ctx)

	// Invalidation and events, a purge after a cut, health, close.
	got := &coordtest.Recorder[coord.Invalidation]{}
	if _, err := b.Invalidator().Subscribe(ctx, got.Add); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool {
		_ = a.Invalidator().Invalidate(ctx, "log:key", map[string]string{"m": "meta"})
		return got.Count(func(i coord.Invalidation) bool { return i.Key == "log:key" }) > 0
	}, "invalidation delivered")
	_ = a.Invalidator().InvalidatePattern(ctx, "log:*", nil)
	_ = a.Events().Publish(ctx, "log-topic", 1)
	srv.KillPubSubClients(t)
	coordtest.Eventually(t, 5*time.Second, func() bool { return got.Count(isPurge("")) > 0 }, "purge after the cut")
	_ = a.Health(ctx)
	if err := a.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	_, _ = a.Locker().Acquire(ctx, "log:closed")

	text := out.String()
	lines := strings.Count(text, "\n")
	for _, sec := range secrets {
		if strings.Contains(text, sec) {
			i := strings.Index(text, sec)
			start := max(strings.LastIndex(text[:i], "\n"), 0)
			end := i + strings.Index(text[i:], "\n")
			t.Errorf("a secret appears in the log: %s", text[start:end])
		}
	}
	for _, want := range []string{"coord lock_acquire", "coord lock_release", "coord session_create", "coord session_get",
		"coord session_rotate", "coord lease lost", "coord invalidation purge", `"token":`, `"session":`, "subscriber connection", "WRONGPASS"} {
		if !strings.Contains(text, want) {
			t.Errorf("the log has no %q: the capture missed part of the lifecycle", want)
		}
	}
	t.Logf("%d log lines, %d secrets looked for, none found", lines, len(secrets))
}
