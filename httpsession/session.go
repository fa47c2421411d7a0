package httpsession

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
)

// ErrNoSession is wrapped by the errors of a nil *[Session]: the context
// did not come through [Manager.LoadAndSave] or [Manager.Load].
var ErrNoSession = errors.New("httpsession: no session in the context")

// ErrResponseStarted is wrapped (with [coord.ErrInvalid]) by the error of
// a Put, Remove, Login or RenewToken made after the response's header
// went out under [Manager.LoadAndSave]: its commit or its cookie would
// have nowhere to go. Make such changes before writing the response.
var ErrResponseStarted = errors.New("httpsession: the response has started")

// Session is one request's view of its session: the data loaded from the
// store, with the changes the request made staged on top until they are
// committed (see [Manager.LoadAndSave] and [Session.Commit]). A session
// is anonymous until [Session.Login]; an anonymous session is stored only
// once something is put into it.
//
// A Session is safe for concurrent use by the goroutines of its request.
// It holds the session token but never reveals it: no method returns it,
// and no error contains it.
type Session struct {
	m  *Manager
	mu sync.Mutex
	// token is the session's token; "" while nothing is stored.
	token string
	// snap is the stored session as loaded, rotated or created, with
	// committed changes applied; nil while token is "".
	snap *coord.Session
	// pending holds staged changes: a nil value deletes the key.
	pending map[string]json.RawMessage
	// incoming is the request's raw cookie value, and incomingToken its
	// token when it named a live session; sentExp is the expiry (Unix
	// seconds) the browser's cookie carries, 0 when unknown.
	incoming, incomingToken string
	sentExp                 int64
	// started is set once the response's header is out.
	started bool
}

func (s *Session) anonymousLocked() bool {
	return s.snap == nil || strings.HasPrefix(s.snap.UserID, s.m.cfg.anonPrefix)
}

// UserID returns the user the session belongs to, or "" for an anonymous
// session.
func (s *Session) UserID() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.anonymousLocked() {
		return ""
	}
	return s.snap.UserID
}

// Handle returns the session's non-secret handle (see
// [coord.Session.Handle]), for logs and listings; "" while the session is
// not stored.
func (s *Session) Handle() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil {
		return ""
	}
	return s.snap.Handle
}

// ExpiresAt returns when the session expires unless used again (its idle
// expiry, capped by its absolute deadline); zero while it is not stored.
func (s *Session) ExpiresAt() time.Time {
	if s == nil {
		return time.Time{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil {
		return time.Time{}
	}
	if d := s.snap.Deadline; !d.IsZero() && d.Before(s.snap.ExpiresAt) {
		return d
	}
	return s.snap.ExpiresAt
}

// raw returns the JSON of key, staged changes first.
func (s *Session) raw(key string) (json.RawMessage, error) {
	if s == nil {
		return nil, ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.pending[key]; ok {
		if v == nil {
			return nil, fieldMissing(key)
		}
		return v, nil
	}
	if s.snap != nil {
		if v, ok := s.snap.Data[key]; ok {
			return v, nil
		}
	}
	return nil, fieldMissing(key)
}

func fieldMissing(key string) error {
	return fmt.Errorf("httpsession: session has no field %q: %w", key, coord.ErrNotFound)
}

// kind names the JSON type of raw for an error message.
func kind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	if strings.ContainsAny(string(raw), ".eE") {
		return "a number with a fraction or exponent"
	}
	return "a number out of range"
}

// Get unmarshals the field key into v (as [encoding/json] does). The error
// wraps [coord.ErrNotFound] when the session has no such field and
// [coord.ErrInvalid] when the field does not fit v; it never contains
// the field's value.
func (s *Session) Get(key string, v any) error {
	raw, err := s.raw(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: httpsession: session field %q is %s, which does not fit %T", coord.ErrInvalid, key, kind(raw), v)
	}
	return nil
}

// typed reads the field key as a T, named want in errors.
func typed[T any](s *Session, key, want string) (T, error) {
	var v T
	raw, err := s.raw(key)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: httpsession: session field %q is %s, not %s", coord.ErrInvalid, key, kind(raw), want)
	}
	return v, nil
}

// GetString returns the string field key. The error wraps
// [coord.ErrNotFound] when there is no such field and [coord.ErrInvalid]
// when it is not a string.
func (s *Session) GetString(key string) (string, error) {
	return typed[string](s, key, "a string")
}

// GetInt64 returns the integer field key, exactly (a 64-bit snowflake ID
// survives). The error wraps [coord.ErrNotFound] when there is no such
// field and [coord.ErrInvalid] when it is not an integer that fits.
func (s *Session) GetInt64(key string) (int64, error) {
	return typed[int64](s, key, "an int64")
}

// GetInt returns the integer field key, like [Session.GetInt64] for an int.
func (s *Session) GetInt(key string) (int, error) {
	return typed[int](s, key, "an int")
}

// GetFloat64 returns the number field key. The error wraps
// [coord.ErrNotFound] when there is no such field and [coord.ErrInvalid]
// when it is not a number.
func (s *Session) GetFloat64(key string) (float64, error) {
	return typed[float64](s, key, "a float64")
}

// GetBool returns the boolean field key. The error wraps
// [coord.ErrNotFound] when there is no such field and [coord.ErrInvalid]
// when it is not a boolean.
func (s *Session) GetBool(key string) (bool, error) {
	return typed[bool](s, key, "a boolean")
}

// GetTime returns the time field key (put as a [time.Time], stored as
// RFC 3339 text). The error wraps [coord.ErrNotFound] when there is no
// such field and [coord.ErrInvalid] when it is not such a time.
func (s *Session) GetTime(key string) (time.Time, error) {
	return typed[time.Time](s, key, "an RFC 3339 time")
}

// Has reports whether the session has the field key.
func (s *Session) Has(key string) bool {
	_, err := s.raw(key)
	return err == nil
}

// Keys returns the names of the session's fields, sorted.
func (s *Session) Keys() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set := map[string]bool{}
	if s.snap != nil {
		for k := range s.snap.Data {
			set[k] = true
		}
	}
	for k, v := range s.pending {
		set[k] = v != nil
	}
	var keys []string
	for k, ok := range set {
		if ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Put stages the field key with value v (marshalled as JSON; a
// [json.RawMessage] goes as is; nil removes the field) for the next
// commit. An anonymous session not yet stored is created by that commit.
// The error wraps [coord.ErrInvalid] for a bad key or a value that
// cannot be encoded or is over the store's limit, and (with ErrInvalid)
// [ErrResponseStarted] once the response's header is out: nothing would
// commit the change, so make it before writing the response.
func (s *Session) Put(key string, v any) error {
	if s == nil {
		return ErrNoSession
	}
	if err := coord.ValidateName("session data key", key); err != nil {
		return fmt.Errorf("httpsession: put: %w", err)
	}
	raw, err := coord.EncodePayload(v, 0)
	if err != nil {
		return fmt.Errorf("httpsession: put %q: %w", key, err)
	}
	if string(raw) == "null" {
		raw = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("%w: put %q: %w", coord.ErrInvalid, key, ErrResponseStarted)
	}
	if s.pending == nil {
		s.pending = map[string]json.RawMessage{}
	}
	s.pending[key] = raw
	return nil
}

// Remove stages the removal of the field key, like Put(key, nil).
func (s *Session) Remove(key string) error {
	return s.Put(key, nil)
}

// Commit writes the staged changes to the store now: one atomic merge
// into the stored session (fields another instance changed meanwhile are
// kept), or the creation of a stored anonymous session. [Manager.LoadAndSave]
// commits by itself before the response's header; call Commit to see the
// error first, or outside LoadAndSave. The error wraps
// [coord.ErrNotFound] when the session ended meanwhile (the changes are
// dropped), or the store's error.
func (s *Session) Commit(ctx context.Context) error {
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitLocked(ctx)
}

func (s *Session) commitLocked(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	store := s.m.store
	if s.token == "" {
		data := s.setsLocked()
		if len(data) == 0 {
			s.pending = nil
			return nil
		}
		snap, err := store.Create(ctx, s.m.anonymousID(), data, s.m.cfg.create...)
		if err != nil {
			return fmt.Errorf("httpsession: create session: %w", err)
		}
		s.token, s.snap, s.pending = snap.ID, snap, nil
		return nil
	}
	data := make(map[string]any, len(s.pending))
	for k, v := range s.pending {
		if v == nil {
			data[k] = nil
		} else {
			data[k] = v
		}
	}
	if err := store.Update(ctx, s.token, data); err != nil {
		if errors.Is(err, coord.ErrNotFound) {
			s.token, s.snap, s.pending = "", nil, nil
		}
		return fmt.Errorf("httpsession: save session: %w", err)
	}
	if s.snap.Data == nil {
		s.snap.Data = map[string]json.RawMessage{}
	}
	for k, v := range s.pending {
		if v == nil {
			delete(s.snap.Data, k)
		} else {
			s.snap.Data[k] = v
		}
	}
	s.pending = nil
	return nil
}

// setsLocked returns the staged fields (not the removals), as data for
// Create.
func (s *Session) setsLocked() map[string]any {
	data := make(map[string]any, len(s.pending))
	for k, v := range s.pending {
		if v != nil {
			data[k] = v
		}
	}
	return data
}

// anonymousID returns a new user ID for an anonymous session.
func (m *Manager) anonymousID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return m.cfg.anonPrefix + hex.EncodeToString(b[:])
}

// Login makes the session userID's, to be called once the user has
// proved who they are, and gives it a new token, so a token planted or
// seen before login (session fixation) is worthless afterwards:
//
//   - A session of the same user is rotated ([coord.SessionStore.Rotate]):
//     same data and deadlines, new token. Staged changes stay staged. If
//     the session ended meanwhile, a new one is created.
//   - An anonymous session is deleted and a new session of userID
//     starts with its data and the staged changes.
//   - A session of another user is deleted; the new session of userID
//     starts with the staged changes only, never the other user's data.
//
// The previous session is deleted before the new one is created, so no
// failure leaves two; if the creation fails, the request goes on with an
// anonymous session not yet stored, with the data it would have carried
// staged. A new session gets fresh idle and absolute lifetimes. The
// cookie with the new token goes out with the response, so Login must
// come before the response's header (else the error wraps
// [ErrResponseStarted] and nothing changed). The error wraps [coord.ErrInvalid] for a bad user ID
// (or one with the anonymous prefix), or the store's error.
func (s *Session) Login(ctx context.Context, userID string) error {
	if s == nil {
		return ErrNoSession
	}
	if err := coord.ValidateName("user ID", userID); err != nil {
		return fmt.Errorf("httpsession: login: %w", err)
	}
	if strings.HasPrefix(userID, s.m.cfg.anonPrefix) {
		return fmt.Errorf("%w: httpsession: login: user ID has the anonymous prefix", coord.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("%w: login: %w", coord.ErrInvalid, ErrResponseStarted)
	}
	store := s.m.store
	if s.snap != nil && s.snap.UserID == userID {
		snap, err := store.Rotate(ctx, s.token)
		switch {
		case err == nil:
			s.token, s.snap = snap.ID, snap
			return nil
		case errors.Is(err, coord.ErrNotFound):
			// The session ended meanwhile (revoked, expired): the user
			// has just proved who they are, so start a new one.
			s.token, s.snap = "", nil
		default:
			return fmt.Errorf("httpsession: login: rotate: %w", err)
		}
	}
	// The previous session ends first, so its token is dead before a new
	// one exists and a failure leaves no second session behind.
	if s.snap != nil {
		if err := store.Delete(ctx, s.token); err != nil {
			return fmt.Errorf("httpsession: login: end the previous session: %w", err)
		}
		if s.anonymousLocked() {
			// Its data moves to the new session: stage it.
			merged := make(map[string]json.RawMessage, len(s.snap.Data)+len(s.pending))
			maps.Copy(merged, s.snap.Data)
			maps.Copy(merged, s.pending)
			s.pending = merged
		}
		s.token, s.snap = "", nil
	}
	snap, err := store.Create(ctx, userID, s.setsLocked(), s.m.cfg.create...)
	if err != nil {
		return fmt.Errorf("httpsession: login: %w", err)
	}
	s.token, s.snap, s.pending = snap.ID, snap, nil
	return nil
}

// RenewToken gives the stored session a new token
// ([coord.SessionStore.Rotate]): same user, data and deadlines, and the
// old token dead at once. Call it when the session's privileges change
// (a role granted, a password re-entered). A session not yet stored has
// no token to renew; RenewToken then does nothing. The cookie with the
// new token goes out with the response, so RenewToken must come before
// the response's header (else the error wraps [ErrResponseStarted]).
func (s *Session) RenewToken(ctx context.Context) error {
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == "" {
		return nil
	}
	if s.started {
		return fmt.Errorf("%w: renew token: %w", coord.ErrInvalid, ErrResponseStarted)
	}
	snap, err := s.m.store.Rotate(ctx, s.token)
	if err != nil {
		return fmt.Errorf("httpsession: renew token: %w", err)
	}
	s.token, s.snap = snap.ID, snap
	return nil
}

// Logout ends the session in the store ([coord.SessionStore.Delete]) and
// drops staged changes; the browser's cookie is cleared with the response
// (or, when the header is already out, at its next request, which finds
// the session gone). The request goes on with a fresh anonymous session.
// When the store fails the session is left as it was and the error
// wraps the store's.
func (s *Session) Logout(ctx context.Context) error {
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" {
		if err := s.m.store.Delete(ctx, s.token); err != nil {
			return fmt.Errorf("httpsession: logout: %w", err)
		}
	}
	s.token, s.snap, s.pending = "", nil, nil
	return nil
}

// LogoutEverywhere ends every session of the session's user, on every
// instance and device ([coord.SessionStore.DeleteByUser]), like Logout
// for this one, and returns how many sessions ended. For an anonymous
// session it ends just this one.
func (s *Session) LogoutEverywhere(ctx context.Context) (int, error) {
	if s == nil {
		return 0, ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	switch {
	case s.token == "":
	case s.anonymousLocked():
		if err := s.m.store.Delete(ctx, s.token); err != nil {
			return 0, fmt.Errorf("httpsession: logout everywhere: %w", err)
		}
		n = 1
	default:
		var err error
		if n, err = s.m.store.DeleteByUser(ctx, s.snap.UserID); err != nil {
			return n, fmt.Errorf("httpsession: logout everywhere: %w", err)
		}
	}
	s.token, s.snap, s.pending = "", nil, nil
	return n, nil
}

// finish commits the staged changes and adds the cookie headers to h;
// the response's header goes out next.
func (s *Session) finish(ctx context.Context, h http.Header) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.commitLocked(ctx)
	s.started = true
	if c := s.m.cookieFor(s, time.Now()); c != nil {
		setCookieHeaders(h, c)
	}
	return err
}
