// Package sessionapi is an example JSON API on package
// [github.com/cgn-bot/coord/httpsession]: sessions every instance behind a
// load balancer knows, a cookie that follows the session's idle expiry,
// login that rotates the token, a list of the user's sessions by
// non-secret handle, revocation by handle, logout and logout everywhere.
//
// [NewServer] wires these into POST /login, GET /me, GET /sessions,
// POST /sessions/revoke, POST /logout and POST /logout-all, behind
// [net/http.CrossOriginProtection] so that other sites cannot make the
// browser send the state-changing requests. Its test walks through two
// instances, two devices, rotation and logging out everywhere on the
// memory backend.
//
// Tokens never appear in logs or responses other than the Set-Cookie
// header.
package sessionapi
