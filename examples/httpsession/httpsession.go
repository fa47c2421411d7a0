package httpsession

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cgn-bot/coord"
)

// DefaultCookieName is the session cookie's name: the "__Host-" prefix
// makes browsers accept it only with Secure, Path=/ and no Domain.
const DefaultCookieName = "__Host-session"

// Options configure a [Manager]. A nil *Options means the defaults.
type Options struct {
	// CookieName names the session cookie. Default: [DefaultCookieName].
	CookieName string
	// SameSite is the cookie's SameSite attribute: Lax or Strict (Strict
	// also withholds the cookie when the user follows a link from another
	// site). Default: [http.SameSiteLaxMode].
	SameSite http.SameSite
	// IdleTTL is how long a session lives without a request.
	// Default: the store's default.
	IdleTTL time.Duration
	// Lifetime is the absolute limit of a session, whatever its activity.
	// Default: 0 (none).
	Lifetime time.Duration
}

// Manager ties HTTP requests to sessions in a [coord.SessionStore].
// A Manager is safe for concurrent use by multiple goroutines.
type Manager struct {
	store    coord.SessionStore
	name     string
	sameSite http.SameSite
	opts     []coord.SessionOption
}

// New returns a Manager on store. SameSite may only be Lax or Strict;
// anything else is taken as Lax.
func New(store coord.SessionStore, o *Options) *Manager {
	m := &Manager{store: store, name: DefaultCookieName, sameSite: http.SameSiteLaxMode}
	if o == nil {
		return m
	}
	if o.CookieName != "" {
		m.name = o.CookieName
	}
	if o.SameSite == http.SameSiteStrictMode {
		m.sameSite = o.SameSite
	}
	if o.IdleTTL > 0 {
		m.opts = append(m.opts, coord.WithIdleTTL(o.IdleTTL))
	}
	if o.Lifetime > 0 {
		m.opts = append(m.opts, coord.WithLifetime(o.Lifetime))
	}
	return m
}

type ctxKey struct{}

// FromContext returns the session [Manager.Middleware] loaded for the
// request, if there is one.
func FromContext(ctx context.Context) (*coord.Session, bool) {
	s, ok := ctx.Value(ctxKey{}).(*coord.Session)
	return s, ok && s != nil
}

// setCookie sends the session's token, valid until its expiry.
func (m *Manager) setCookie(w http.ResponseWriter, s *coord.Session) {
	c := &http.Cookie{
		Name:     m.name,
		Value:    s.ID,
		Path:     "/",
		Secure:   true,
		HttpOnly: true,
		SameSite: m.sameSite,
	}
	if !s.ExpiresAt.IsZero() {
		c.Expires = s.ExpiresAt
	}
	http.SetCookie(w, c)
}

// clearCookie tells the browser to drop the session cookie.
func (m *Manager) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: m.name, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: m.sameSite,
	})
}

// token returns the request's session token, or "".
func (m *Manager) token(r *http.Request) string {
	c, err := r.Cookie(m.name)
	if err != nil {
		return ""
	}
	return c.Value
}

// Middleware loads the request's session (touching it, so its idle
// expiry slides) into the request context for [FromContext]. A missing,
// expired, revoked or forged token is dropped from the browser and the
// request goes on without a session; a store failure answers 503.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := m.token(r)
		if tok == "" {
			next.ServeHTTP(w, r)
			return
		}
		s, err := m.store.Touch(r.Context(), tok)
		switch {
		case err == nil:
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, s))
		case errors.Is(err, coord.ErrNotFound), errors.Is(err, coord.ErrInvalid):
			m.clearCookie(w)
		default:
			http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Require answers 401 to a request without a session; it must run inside
// [Manager.Middleware].
func (m *Manager) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := FromContext(r.Context()); !ok {
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Login starts a session for userID, to be called once the user has
// proved who they are. If the request carries a live session of the same
// user, that session gets a new token (Rotate) and data merged in; any
// other session the browser carries is ended and a new one created.
// Either way the token the browser had before is dead afterwards. The
// new token is set in the cookie.
func (m *Manager) Login(w http.ResponseWriter, r *http.Request, userID string, data map[string]any) (*coord.Session, error) {
	ctx := r.Context()
	if tok := m.token(r); tok != "" {
		old, err := m.store.Get(ctx, tok)
		switch {
		case err == nil && old.UserID == userID:
			s, err := m.store.Rotate(ctx, tok)
			if err != nil {
				return nil, fmt.Errorf("httpsession: login: %w", err)
			}
			if len(data) > 0 {
				if err := m.store.Update(ctx, s.ID, data); err != nil {
					return nil, fmt.Errorf("httpsession: login: %w", err)
				}
			}
			m.setCookie(w, s)
			return s, nil
		case err == nil:
			if err := m.store.Delete(ctx, tok); err != nil {
				return nil, fmt.Errorf("httpsession: login: %w", err)
			}
		case !errors.Is(err, coord.ErrNotFound) && !errors.Is(err, coord.ErrInvalid):
			return nil, fmt.Errorf("httpsession: login: %w", err)
		}
	}
	s, err := m.store.Create(ctx, userID, data, m.opts...)
	if err != nil {
		return nil, fmt.Errorf("httpsession: login: %w", err)
	}
	m.setCookie(w, s)
	return s, nil
}

// Logout ends the request's session and drops the cookie.
func (m *Manager) Logout(w http.ResponseWriter, r *http.Request) error {
	m.clearCookie(w)
	tok := m.token(r)
	if tok == "" {
		return nil
	}
	if err := m.store.Delete(r.Context(), tok); err != nil && !errors.Is(err, coord.ErrInvalid) {
		return fmt.Errorf("httpsession: logout: %w", err)
	}
	return nil
}

// LogoutEverywhere ends every session of the request's user, on every
// instance and every device, drops this browser's cookie and returns how
// many sessions ended. It needs a session (see [Manager.Middleware]).
func (m *Manager) LogoutEverywhere(w http.ResponseWriter, r *http.Request) (int, error) {
	s, ok := FromContext(r.Context())
	if !ok {
		return 0, fmt.Errorf("httpsession: logout everywhere: no session: %w", coord.ErrNotFound)
	}
	m.clearCookie(w)
	n, err := m.store.DeleteByUser(r.Context(), s.UserID)
	if err != nil {
		return n, fmt.Errorf("httpsession: logout everywhere: %w", err)
	}
	return n, nil
}

// Sessions lists the live sessions of userID, oldest first. Their ID is
// empty; Handle names each one.
func (m *Manager) Sessions(ctx context.Context, userID string) ([]*coord.Session, error) {
	return m.store.ByUser(ctx, userID)
}

// Revoke ends the session of userID named by handle. A handle of another
// user's session gives an error wrapping [coord.ErrNotFound].
func (m *Manager) Revoke(ctx context.Context, userID, handle string) error {
	return m.store.Revoke(ctx, userID, handle)
}
