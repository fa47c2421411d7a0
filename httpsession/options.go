package httpsession

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cgn-bot/coord"
)

// Cookie names chosen when [CookieOptions.Name] is empty.
const (
	// HostCookieName is the default name of a Secure cookie with Path "/"
	// and no Domain. Browsers accept a "__Host-" cookie only with Secure,
	// Path=/ and no Domain, so neither a sub-domain nor a plain-HTTP page
	// can set or overwrite it.
	HostCookieName = "__Host-session"
	// SecureCookieName is the default name of a Secure cookie with a
	// Domain or a Path other than "/": browsers accept a "__Secure-"
	// cookie only with Secure.
	SecureCookieName = "__Secure-session"
	// InsecureCookieName is the default name of a cookie without Secure
	// (see [CookieOptions.Insecure]).
	InsecureCookieName = "session"
)

// DefaultAnonymousPrefix starts the user ID of an anonymous session; see
// [Options.AnonymousPrefix].
const DefaultAnonymousPrefix = "anon:"

// maxCookieRefresh caps the default [Options.CookieRefresh].
const maxCookieRefresh = time.Minute

// CookieOptions set the session cookie's name and attributes. The zero
// value is the safe default: a "__Host-" cookie, Secure, HttpOnly,
// SameSite=Lax, Path=/ and no Domain.
type CookieOptions struct {
	// Name names the cookie. A name starting with "__Host-" needs Secure,
	// Path "/" and no Domain; one starting with "__Secure-" needs Secure;
	// [New] refuses a name that breaks these rules, since browsers drop
	// such cookies silently. Default: [HostCookieName] when the cookie is
	// Secure with Path "/" and no Domain, else [SecureCookieName] when it
	// is Secure, else [InsecureCookieName].
	Name string
	// Domain is the cookie's Domain attribute, which makes browsers send
	// it to every sub-domain too. Default: none (this host only).
	Domain string
	// Path is the cookie's Path attribute. Default: "/".
	Path string
	// SameSite is the cookie's SameSite attribute: Lax sends it with
	// top-level navigations from other sites but not with their
	// sub-requests or form POSTs; Strict never sends it from another site;
	// None always sends it (it needs Secure, and CSRF protection is then
	// entirely the application's: see docs/SESSIONS.md).
	// http.SameSiteDefaultMode leaves the attribute out.
	// Default (zero): [http.SameSiteLaxMode].
	SameSite http.SameSite
	// Insecure leaves out the Secure attribute, so the cookie also
	// travels over plain HTTP. Only for development on http://localhost.
	// Default: false (Secure).
	Insecure bool
	// ScriptAccess leaves out the HttpOnly attribute, so page scripts can
	// read the token. Default: false (HttpOnly).
	ScriptAccess bool
	// Partitioned sets the Partitioned attribute (CHIPS): in a third-party
	// context the browser keeps a separate cookie per top-level site. It
	// needs Secure. Default: false.
	Partitioned bool
}

// Options configure a [Manager]. A nil *Options means the defaults.
type Options struct {
	// Cookie sets the session cookie's name and attributes.
	Cookie CookieOptions
	// IdleTTL is how long a session lives without a request; every
	// request through [Manager.LoadAndSave] slides it.
	// Default: [coord.DefaultSessionTTL] (24h).
	IdleTTL time.Duration
	// Lifetime is the absolute limit on a session's life from its creation
	// (or from login, which creates a new session), whatever its activity.
	// Default: 0 (none).
	Lifetime time.Duration
	// CookieRefresh is how far the session's expiry must have moved
	// from the expiry the browser's cookie carries before the cookie is
	// sent again. The browser's copy therefore never expires more than
	// CookieRefresh before the session itself. A negative value sends the
	// cookie on every request that has a session.
	// Default: a tenth of IdleTTL, at most one minute.
	CookieRefresh time.Duration
	// AnonymousPrefix starts the user ID under which a session is stored
	// before login, followed by 32 random hex digits, so each anonymous
	// session is its own "user" in [coord.SessionStore.ByUser] and
	// [coord.SessionStore.Stats]. [Session.Login] refuses user IDs with
	// this prefix. Default: [DefaultAnonymousPrefix].
	AnonymousPrefix string
	// ErrorHandler answers a request whose session could not be loaded
	// or saved because of the store (unreachable, closed, timed out), or
	// whose session changes were refused. It is never called for a bad
	// cookie, which gives a fresh anonymous session instead. err never
	// contains a session token.
	// Default: [DefaultErrorHandler].
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// DefaultErrorHandler answers 503 Service Unavailable (with Retry-After)
// when the store is unreachable, closed or timed out, and 500 Internal
// Server Error otherwise. The body is the status text: it does not
// reveal err.
func DefaultErrorHandler(w http.ResponseWriter, _ *http.Request, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, coord.ErrUnavailable) || errors.Is(err, coord.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, http.StatusText(code), code)
}

// config is a Manager's resolved options.
type config struct {
	cookie     http.Cookie // template: name and attributes
	idle       time.Duration
	refresh    time.Duration // < 0: every request
	anonPrefix string
	create     []coord.SessionOption
	onError    func(http.ResponseWriter, *http.Request, error)
}

// resolve applies the defaults to o and checks the result.
func resolve(o *Options) (config, error) {
	if o == nil {
		o = &Options{}
	}
	c := o.Cookie
	cfg := config{
		idle:       o.IdleTTL,
		anonPrefix: o.AnonymousPrefix,
		onError:    o.ErrorHandler,
	}
	if cfg.idle == 0 {
		cfg.idle = coord.DefaultSessionTTL
	}
	if err := coord.ValidateTTL("idle TTL", cfg.idle); err != nil {
		return cfg, fmt.Errorf("httpsession: %w", err)
	}
	cfg.create = append(cfg.create, coord.WithIdleTTL(cfg.idle))
	if o.Lifetime != 0 {
		if err := coord.ValidateTTL("lifetime", o.Lifetime); err != nil {
			return cfg, fmt.Errorf("httpsession: %w", err)
		}
		cfg.create = append(cfg.create, coord.WithLifetime(o.Lifetime))
	}
	cfg.refresh = o.CookieRefresh
	if cfg.refresh == 0 {
		cfg.refresh = min(cfg.idle/10, maxCookieRefresh)
	}
	if cfg.anonPrefix == "" {
		cfg.anonPrefix = DefaultAnonymousPrefix
	}
	if err := coord.ValidateName("anonymous prefix", cfg.anonPrefix); err != nil {
		return cfg, fmt.Errorf("httpsession: %w", err)
	}
	if cfg.onError == nil {
		cfg.onError = DefaultErrorHandler
	}

	path := c.Path
	if path == "" {
		path = "/"
	}
	sameSite := c.SameSite
	if sameSite == 0 {
		sameSite = http.SameSiteLaxMode
	}
	secure := !c.Insecure
	name := c.Name
	switch {
	case name != "":
	case secure && path == "/" && c.Domain == "":
		name = HostCookieName
	case secure:
		name = SecureCookieName
	default:
		name = InsecureCookieName
	}
	switch {
	case strings.HasPrefix(name, "__Host-") && (!secure || path != "/" || c.Domain != ""):
		return cfg, fmt.Errorf("%w: httpsession: a __Host- cookie needs Secure, Path \"/\" and no Domain", coord.ErrInvalid)
	case strings.HasPrefix(name, "__Secure-") && !secure:
		return cfg, fmt.Errorf("%w: httpsession: a __Secure- cookie needs Secure", coord.ErrInvalid)
	case sameSite == http.SameSiteNoneMode && !secure:
		return cfg, fmt.Errorf("%w: httpsession: SameSite=None needs Secure", coord.ErrInvalid)
	case c.Partitioned && !secure:
		return cfg, fmt.Errorf("%w: httpsession: a Partitioned cookie needs Secure", coord.ErrInvalid)
	}
	cfg.cookie = http.Cookie{
		Name:        name,
		Value:       "x",
		Path:        path,
		Domain:      c.Domain,
		Secure:      secure,
		HttpOnly:    !c.ScriptAccess,
		SameSite:    sameSite,
		Partitioned: c.Partitioned,
	}
	if err := cfg.cookie.Valid(); err != nil {
		return cfg, fmt.Errorf("%w: httpsession: cookie: %v", coord.ErrInvalid, err)
	}
	return cfg, nil
}
