package httpsession

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cgn-bot/coord"
)

// maxCookieValue bounds the cookie values worth a store lookup: a token
// and its expiry suffix are well under it.
const maxCookieValue = 256

// maxExpiry bounds the expiry suffix of a cookie value: the last second
// of year 9999, the last an Expires attribute can carry.
const maxExpiry = 253402300799

// expirySep separates the token from the expiry suffix in the cookie's
// value. Tokens are base64url with a "s1." prefix, so they never hold it.
const expirySep = "~"

// Manager ties HTTP requests to sessions in a [coord.SessionStore], through
// a cookie. A Manager is safe for concurrent use by multiple goroutines;
// one Manager serves every request of a service.
type Manager struct {
	store coord.SessionStore
	cfg   config
}

// New returns a Manager on store. The error, for options that browsers
// would refuse or that coord does not accept, wraps [coord.ErrInvalid].
func New(store coord.SessionStore, o *Options) (*Manager, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: httpsession: nil store", coord.ErrInvalid)
	}
	cfg, err := resolve(o)
	if err != nil {
		return nil, err
	}
	return &Manager{store: store, cfg: cfg}, nil
}

// CookieName returns the name of the session cookie.
func (m *Manager) CookieName() string { return m.cfg.cookie.Name }

type ctxKey struct{}

// FromContext returns the session that [Manager.LoadAndSave] or
// [Manager.Load] put into ctx, or nil. Every method of a nil *Session
// returns an error wrapping [ErrNoSession] or a zero value.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// parseCookie splits a cookie value into the token and the expiry (Unix
// seconds) the cookie was sent with; 0 when the value has no suffix or
// one that is not such a time.
func parseCookie(v string) (token string, sentExp int64) {
	i := strings.LastIndex(v, expirySep)
	if i < 0 {
		return v, 0
	}
	exp, err := strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil || exp <= 0 || exp > maxExpiry {
		return v[:i], 0 // a suffix of no use: the cookie is re-sent
	}
	return v[:i], exp
}

// Load returns a copy of ctx that carries the session named by
// cookieValue (the value of the session cookie, or a bare token) after
// sliding its idle expiry. An empty, malformed, expired, revoked or
// foreign value gives a fresh anonymous session, stored only once
// something is put into it. [Manager.LoadAndSave] calls Load for each
// request; tests call it to give a handler a session without cookies:
//
//	ctx, err := m.Load(ctx, "")        // an anonymous session
//	err = FromContext(ctx).Login(ctx, "alice")
//
// Outside LoadAndSave nothing commits the session's changes by itself:
// call [Session.Commit]. The error, when the store cannot be reached or
// failed, never contains the token.
func (m *Manager) Load(ctx context.Context, cookieValue string) (context.Context, error) {
	s, err := m.load(ctx, cookieValue)
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, ctxKey{}, s), nil
}

func (m *Manager) load(ctx context.Context, cookieValue string) (*Session, error) {
	s := &Session{m: m}
	if cookieValue == "" {
		return s, nil
	}
	s.incoming = cookieValue
	if len(cookieValue) > maxCookieValue {
		return s, nil
	}
	token, sentExp := parseCookie(cookieValue)
	snap, err := m.store.Touch(ctx, token)
	switch {
	case err == nil:
		s.token, s.snap, s.sentExp = token, snap, sentExp
		s.incomingToken = token
	case errors.Is(err, coord.ErrNotFound), errors.Is(err, coord.ErrInvalid):
		// A bad cookie: the request goes on with a fresh anonymous
		// session, and the browser's cookie is dropped unless a new
		// session replaces it.
	default:
		return nil, fmt.Errorf("httpsession: load session: %w", err)
	}
	return s, nil
}

// LoadAndSave is middleware that loads each request's session (see
// [Manager.Load]) into the request context for [FromContext], and saves
// it: just before the response's header is written (or when next returns
// without writing), staged changes are committed to the store and the
// cookie is sent when the browser needs it — a new token (new session,
// login, rotation), a dropped one (logout, bad cookie), or an expiry that
// moved by at least [Options.CookieRefresh]. A response that sets the
// cookie also gets "Vary: Cookie" and Cache-Control: no-cache="Set-Cookie",
// so shared caches neither serve it to others nor keep the token.
//
// When the store fails on load or commit, [Options.ErrorHandler] answers
// instead of next (or instead of what next was about to write) and the
// writes next makes afterwards are discarded, returning an error wrapping
// [ErrResponseFailed].
//
// The writer given to next implements [http.Flusher] (flushing commits
// first) and Unwrap, so [http.ResponseController] reaches the underlying
// writer's other features. A handler that hijacks the connection must
// call [Session.Commit] first.
func (m *Manager) LoadAndSave(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		value := ""
		if c, err := r.Cookie(m.cfg.cookie.Name); err == nil {
			value = c.Value
		}
		s, err := m.load(r.Context(), value)
		if err != nil {
			m.cfg.onError(w, r, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, s))
		sw := &sessionWriter{ResponseWriter: w, s: s, r: r}
		next.ServeHTTP(sw, r)
		sw.beforeHeader()
	})
}

// ErrResponseFailed is wrapped by the error a handler's Write gets after
// [Manager.LoadAndSave] could not save the session and answered with
// [Options.ErrorHandler] instead.
var ErrResponseFailed = errors.New("httpsession: the session could not be saved; the error handler answered")

// sessionWriter commits the session before the header goes out.
type sessionWriter struct {
	http.ResponseWriter
	s       *Session
	r       *http.Request
	written bool // the header is out, or the error handler answered
	failed  bool // the error handler answered
}

// beforeHeader commits the session and sets the cookie header, once; it
// reports whether the handler's response may go on.
func (w *sessionWriter) beforeHeader() bool {
	if w.written {
		return !w.failed
	}
	w.written = true
	if err := w.s.finish(w.r.Context(), w.ResponseWriter.Header()); err != nil {
		w.failed = true
		w.s.m.cfg.onError(w.ResponseWriter, w.r, err)
	}
	return !w.failed
}

// WriteHeader commits the session, then writes the header; an
// informational (1xx) header passes without a commit.
func (w *sessionWriter) WriteHeader(code int) {
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		if !w.written {
			w.ResponseWriter.WriteHeader(code)
		}
		return
	}
	if w.beforeHeader() {
		w.ResponseWriter.WriteHeader(code)
	}
}

// Write commits the session before the first bytes go out.
func (w *sessionWriter) Write(b []byte) (int, error) {
	if !w.beforeHeader() {
		return 0, ErrResponseFailed
	}
	return w.ResponseWriter.Write(b)
}

// Flush commits the session, then flushes the underlying writer.
func (w *sessionWriter) Flush() {
	if w.beforeHeader() {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Unwrap returns the underlying writer, for [http.ResponseController].
func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cookieFor returns the Set-Cookie to send for s, or nil.
func (m *Manager) cookieFor(s *Session, now time.Time) *http.Cookie {
	switch {
	case s.token == "" && s.incoming == "":
		return nil
	case s.token == "":
		c := m.cfg.cookie
		c.Value, c.MaxAge, c.Expires = "", -1, time.Unix(1, 0)
		return &c
	}
	exp := s.snap.ExpiresAt
	if !s.snap.Deadline.IsZero() && s.snap.Deadline.Before(exp) {
		exp = s.snap.Deadline
	}
	expUnix := exp.Unix() // rounded down: the cookie never outlives the session
	if s.token == s.incomingToken && m.cfg.refresh >= 0 && s.sentExp > 0 {
		moved := time.Duration(expUnix-s.sentExp) * time.Second
		if moved.Abs() < m.cfg.refresh {
			return nil
		}
	}
	c := m.cfg.cookie
	c.Value = s.token + expirySep + strconv.FormatInt(expUnix, 10)
	c.MaxAge = max(1, int(expUnix-now.Unix()))
	c.Expires = time.Unix(expUnix, 0)
	return &c
}

// setCookieHeaders adds c to h with the headers that keep shared caches
// from storing or serving it.
func setCookieHeaders(h http.Header, c *http.Cookie) {
	h.Add("Set-Cookie", c.String())
	addIfMissing(h, "Vary", "Cookie")
	addIfMissing(h, "Cache-Control", `no-cache="Set-Cookie"`)
}

func addIfMissing(h http.Header, key, value string) {
	for _, v := range h.Values(key) {
		if v == value {
			return
		}
	}
	h.Add(key, value)
}
