package sessionapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/httpsession"
)

// Authenticate checks a login form and returns the user it proves, or an
// error. The example server takes it as a parameter: checking passwords
// is not coord's job.
type Authenticate func(r *http.Request) (userID string, err error)

// SessionInfo is one entry of GET /sessions: what a user sees of their
// sessions, without tokens.
type SessionInfo struct {
	// Handle names the session for POST /sessions/revoke.
	Handle string `json:"handle"`
	// Current marks the session of the request itself.
	Current bool `json:"current"`
	// CreatedAt is when the session was created.
	CreatedAt time.Time `json:"createdAt"`
	// LastAccessedAt is the session's last request.
	LastAccessedAt time.Time `json:"lastAccessedAt"`
}

// NewServer returns an HTTP API on m, whose store is store:
//
//	POST /login            auth(r) proves the user; starts or rotates the session
//	GET  /me               the user of the session (401 without one)
//	GET  /sessions         the user's sessions, by handle
//	POST /sessions/revoke  ends the session named by the form value "handle"
//	POST /logout           ends this session
//	POST /logout-all       ends every session of the user
//
// State-changing routes are POST only, and cross-origin browser requests
// to them are refused (403) by [http.CrossOriginProtection].
func NewServer(m *httpsession.Manager, store coord.SessionStore, auth Authenticate) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user, err := auth(r)
		if err != nil {
			http.Error(w, "login failed", http.StatusUnauthorized)
			return
		}
		s := httpsession.FromContext(r.Context())
		if err := s.Login(r.Context(), user); err != nil {
			fail(w, err)
			return
		}
		if err := s.Put("loginAt", time.Now().UTC().Format(time.RFC3339)); err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, map[string]any{"user": s.UserID(), "handle": s.Handle()})
	})
	mux.Handle("GET /me", require(func(w http.ResponseWriter, r *http.Request, s *httpsession.Session) {
		writeJSON(w, map[string]any{"user": s.UserID(), "handle": s.Handle()})
	}))
	mux.Handle("GET /sessions", require(func(w http.ResponseWriter, r *http.Request, s *httpsession.Session) {
		list, err := store.ByUser(r.Context(), s.UserID())
		if err != nil {
			fail(w, err)
			return
		}
		out := make([]SessionInfo, 0, len(list))
		for _, x := range list {
			out = append(out, SessionInfo{Handle: x.Handle, Current: x.Handle == s.Handle(), CreatedAt: x.CreatedAt, LastAccessedAt: x.LastAccessedAt})
		}
		writeJSON(w, out)
	}))
	mux.Handle("POST /sessions/revoke", require(func(w http.ResponseWriter, r *http.Request, s *httpsession.Session) {
		if err := store.Revoke(r.Context(), s.UserID(), r.FormValue("handle")); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := httpsession.FromContext(r.Context()).Logout(r.Context()); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("POST /logout-all", require(func(w http.ResponseWriter, r *http.Request, s *httpsession.Session) {
		n, err := s.LogoutEverywhere(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, map[string]int{"ended": n})
	}))
	return http.NewCrossOriginProtection().Handler(m.LoadAndSave(mux))
}

// require answers 401 to a request without a logged-in session.
func require(h func(http.ResponseWriter, *http.Request, *httpsession.Session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		if s.UserID() == "" {
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		h(w, r, s)
	})
}

// fail answers with the status that fits err, never with its text (which
// could name internals).
func fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, coord.ErrNotFound):
		http.Error(w, "not found", http.StatusNotFound)
	case errors.Is(err, coord.ErrInvalid):
		http.Error(w, "bad request", http.StatusBadRequest)
	default:
		http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
