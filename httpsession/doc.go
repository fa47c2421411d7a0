// Package httpsession keeps net/http sessions in a [coord.SessionStore],
// so that every instance of a service behind a load balancer knows every
// session, and logging out (or out everywhere) reaches them all.
//
//	m, err := httpsession.New(backend.Sessions(), nil)
//	...
//	http.ListenAndServeTLS(addr, cert, key, m.LoadAndSave(mux))
//
// and in a handler:
//
//	s := httpsession.FromContext(r.Context())
//	err := s.Put("theme", "dark")              // committed before the response
//	id, err := s.GetInt64("guildID")           // typed getters
//	err = s.Login(r.Context(), userID)         // new token: no session fixation
//	n, err := s.LogoutEverywhere(r.Context())  // every device, every instance
//
// # Loading and saving
//
// [Manager.LoadAndSave] loads each request's session, sliding its idle
// expiry in the store, and commits the request's changes just before the
// response's header is written, in one atomic merge that keeps fields
// other instances wrote meanwhile. A session is anonymous until
// [Session.Login], and an anonymous session is stored only once something
// is put into it. A missing, malformed, expired, revoked or foreign
// cookie gives a fresh anonymous session, never an error page; a store
// that cannot be reached gives [Options.ErrorHandler]'s answer (503 by
// default), never an anonymous session that would log the user out.
//
// # The cookie
//
// By default the cookie is named "__Host-session" and is Secure, HttpOnly
// and SameSite=Lax, with Path=/ and no Domain (see [CookieOptions]). Its
// Max-Age and Expires follow the session's idle expiry, capped by its
// absolute lifetime: it is sent again when the session's expiry has moved
// by at least [Options.CookieRefresh] (default: a tenth of the idle TTL,
// at most a minute) since the browser's copy was set, so an active user
// keeps the cookie as long as the session lives. The cookie's value is the
// session token followed by "~" and the Unix time of the expiry it was
// sent with, which is how the middleware knows how old the browser's copy
// is without a store write. The token carries 256 bits from crypto/rand
// (the store makes it); this package never logs it, puts it in an error or
// returns it.
//
// # Rotation and logout
//
// [Session.Login] and [Session.RenewToken] give the session a new token
// and kill the old one (on privilege changes too); [Session.Logout] ends
// the session; [Session.LogoutEverywhere] ends every session of the user
// ([coord.SessionStore.DeleteByUser]).
//
// # Tests
//
// [Manager.Load] puts a session into any context, so a handler can be
// tested without cookies; [Session.Commit] saves its changes.
//
// # CSRF
//
// SameSite=Lax stops other sites' forms and scripts from sending the
// cookie, but not sibling sub-domains (same site) or state changes made
// by GET. Wrap state-changing routes in [net/http.CrossOriginProtection]
// or use a token kept in the session; docs/SESSIONS.md has the details.
//
// # Errors
//
// Errors wrap the sentinels of package coord: [coord.ErrInvalid] for bad
// input or a field of the wrong type, [coord.ErrNotFound] for a missing
// field or a session that ended, [coord.ErrUnavailable] and
// [coord.ErrClosed] from the store; and this package's [ErrNoSession],
// [ErrResponseStarted] and [ErrResponseFailed].
package httpsession
