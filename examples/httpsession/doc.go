// Package httpsession is an example of net/http session handling on a
// [coord.SessionStore], so that every instance behind a load balancer
// knows every session and "log out everywhere" reaches them all.
//
// [Manager] puts the session token in a cookie that scripts cannot read
// (HttpOnly), that travels only over HTTPS (Secure), that other sites'
// forms and scripts do not get sent with (SameSite=Lax by default, Strict
// on request) and whose "__Host-" name makes the browser refuse it from a
// sub-domain or without Secure. [Manager.Middleware] loads the session of
// each request (sliding its idle expiry) into the request's context;
// [Manager.Require] answers 401 without one.
//
// At login the token changes: [Manager.Login] rotates a session the
// browser already has ([coord.SessionStore.Rotate]), so a token planted
// before login (session fixation) or seen before it is dead afterwards.
// [Manager.Logout] ends one session; [Manager.LogoutEverywhere] ends every
// session of the user ([coord.SessionStore.DeleteByUser]). Sessions are
// listed by handle ([coord.SessionStore.ByUser]), never by token, and one
// can be ended by its handle ([Manager.Revoke]).
//
// [NewServer] wires these into a small JSON API (POST /login, GET /me,
// GET /sessions, POST /sessions/revoke, POST /logout, POST /logout-all);
// its test walks through login, an authenticated request, rotation and
// logging out everywhere on the memory backend.
//
// Tokens never appear in logs or responses other than the Set-Cookie
// header.
package httpsession
