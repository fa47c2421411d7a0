package memory

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

// handleKey is a session's key in the store: the bytes of its handle,
// the first 128 bits of the SHA-256 of its token.
type handleKey [16]byte

// sessionRec is one stored session. Its data values are never handed
// out: readers get copies.
type sessionRec struct {
	key    handleKey
	handle string
	user   string
	data   map[string]json.RawMessage
	size   int // bytes of keys and values in data
	// keys, offs and blob are data laid flat for fast copies out:
	// the value of keys[i] is blob[offs[i]:offs[i+1]].
	keys     []string
	offs     []int
	blob     []byte
	created  time.Time
	accessed time.Time
	expires  time.Time
	deadline time.Time // zero: none
	idle     time.Duration
	seq      uint64 // creation order, to break ties of created
	heapIdx  int
	// prev and next link the sessions in creation order.
	prev, next *sessionRec
}

func (s *sessionRec) liveAt(now time.Time) bool { return now.Before(s.expires) }

// sessionStore is the hub's sessions: a map by handle, a per-user index,
// a min-heap by expiry that lets Count, Stats and Cleanup drop what
// expired without scanning every session, and a list in creation order
// whose head is the oldest.
type sessionStore struct {
	mu             sync.RWMutex
	byKey          map[handleKey]*sessionRec
	byUser         map[string]map[*sessionRec]struct{}
	heap           timeHeap[*sessionRec]
	seq            uint64
	oldest, newest *sessionRec
	base           time.Time // set once, by the first init; see now
}

func (st *sessionStore) init() {
	st.byKey = make(map[handleKey]*sessionRec)
	st.byUser = make(map[string]map[*sessionRec]struct{})
	if st.base.IsZero() {
		st.base = time.Now()
	}
}

// now returns the current time for expiry checks with one read of the
// monotonic clock, where time.Now reads the wall clock too. Its monotonic
// reading is exact, and expiry times carry one, so comparing them with it
// is comparing monotonic readings, as with time.Now. Its wall clock is
// base's plus the elapsed time: never store or return it.
func (st *sessionStore) now() time.Time {
	return st.base.Add(time.Since(st.base))
}

// insertLocked adds rec to every index.
func (st *sessionStore) insertLocked(rec *sessionRec) {
	st.byKey[rec.key] = rec
	u := st.byUser[rec.user]
	if u == nil {
		u = make(map[*sessionRec]struct{})
		st.byUser[rec.user] = u
	}
	u[rec] = struct{}{}
	st.heap.push(rec)
	rec.prev = st.newest
	if st.newest != nil {
		st.newest.next = rec
	} else {
		st.oldest = rec
	}
	st.newest = rec
}

// removeLocked drops rec from every index.
func (st *sessionStore) removeLocked(rec *sessionRec) {
	delete(st.byKey, rec.key)
	if u := st.byUser[rec.user]; u != nil {
		delete(u, rec)
		if len(u) == 0 {
			delete(st.byUser, rec.user)
		}
	}
	if rec.heapIdx >= 0 {
		st.heap.remove(rec.heapIdx)
	}
	if rec.prev != nil {
		rec.prev.next = rec.next
	} else {
		st.oldest = rec.next
	}
	if rec.next != nil {
		rec.next.prev = rec.prev
	} else {
		st.newest = rec.prev
	}
	rec.prev, rec.next = nil, nil
}

// purgeLocked removes the sessions expired by now and returns how many.
func (st *sessionStore) purgeLocked(now time.Time) int {
	n := 0
	for len(st.heap) > 0 && !st.heap[0].liveAt(now) {
		st.removeLocked(st.heap[0])
		n++
	}
	return n
}

// needsPurge reports, under the read lock, whether anything expired.
func (st *sessionStore) needsPurgeRLocked(now time.Time) bool {
	return len(st.heap) > 0 && !st.heap[0].liveAt(now)
}

// count returns the number of live sessions.
func (st *sessionStore) count(now time.Time) int64 {
	st.mu.RLock()
	if !st.needsPurgeRLocked(now) {
		n := len(st.byKey)
		st.mu.RUnlock()
		return int64(n)
	}
	st.mu.RUnlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.purgeLocked(now)
	return int64(len(st.byKey))
}

// Sessions is a [Backend]'s view of its hub's sessions, a
// [coord.SessionStore]. Sessions are keyed by their handle (a SHA-256 of
// the token); tokens are never kept. Data is copied in and out, so no
// caller can change stored state through a value it passed or got.
//
// A Sessions is safe for concurrent use by multiple goroutines.
type Sessions struct{ n *Backend }

// keyOf checks the shape of a session token and returns its key.
func keyOf(token string) (handleKey, error) {
	if !validToken(token) {
		return handleKey{}, errMalformed()
	}
	k, _ := lookupKey(token)
	return k, nil
}

// tokenLen is the length of a session token.
const tokenLen = len(secret.SessionTokenPrefix) + 43

// lookupKey returns the key of a token of the right length without
// checking its characters, for a lookup: a token whose key finds a
// session is one the store issued (a key is 128 bits of its SHA-256), so
// it is well formed, and only a lookup that finds nothing needs
// validToken to tell a malformed token from a missing session (see
// notFound). ok is false for a token of another length.
func lookupKey(token string) (k handleKey, ok bool) {
	if len(token) != tokenLen {
		return k, false
	}
	var buf [tokenLen]byte
	sum := sha256.Sum256(buf[:copy(buf[:], token)])
	copy(k[:], sum[:16])
	return k, true
}

// notFound returns the error of a lookup of token (see lookupKey) that
// found no live session: [coord.ErrInvalid] for a malformed token,
// [coord.ErrNotFound] otherwise.
func notFound(token string) error {
	if !validToken(token) {
		return errMalformed()
	}
	return errNoSession()
}

func errMalformed() error {
	return fmt.Errorf("%w: coord/memory: malformed session token", coord.ErrInvalid)
}

// validToken is [secret.ValidSessionToken] without its allocation: the
// prefix, then 43 characters of unpadded base64url whose unused low bits
// are zero, as a strict decoder requires.
func validToken(s string) bool {
	const n = tokenLen
	if len(s) != n || s[:len(secret.SessionTokenPrefix)] != secret.SessionTokenPrefix {
		return false
	}
	// Without a branch per character: ok keeps bit 0 while every
	// character is in the alphabet, all collects the bits of every
	// character to reject those from 128 up.
	ok, all := uint64(1), byte(0)
	for i := len(secret.SessionTokenPrefix); i < n; i++ {
		c := s[i]
		set := uint64(b64Low)
		if c >= 64 {
			set = b64High
		}
		ok &= set >> (c & 63)
		all |= c
	}
	// 43 characters carry 258 bits: the last two must be zero.
	return ok&1 == 1 && all < 128 && b64val(s[n-1])&3 == 0
}

// The base64url alphabet as bit sets: b64Low of the characters below 64
// ('-' and the digits), b64High of those from 64 to 127, bit c-64.
const (
	b64Low  = 1<<'-' | (1<<10-1)<<'0'
	b64High = (1<<26-1)<<('A'-64) | 1<<('_'-64) | (1<<26-1)<<('a'-64)
)

func b64val(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

func errNoSession() error {
	return fmt.Errorf("%w: coord/memory: no such session", coord.ErrNotFound)
}

func (ss *Sessions) check(what string) error {
	if ss.n.closed.Load() {
		return errClosed(what)
	}
	return nil
}

// flatten lays rec.data out in keys, offs and blob.
func (rec *sessionRec) flatten() {
	total := 0
	for _, v := range rec.data {
		total += len(v)
	}
	rec.keys = make([]string, 0, len(rec.data))
	rec.offs = make([]int, 1, len(rec.data)+1)
	rec.blob = make([]byte, 0, total)
	for k, v := range rec.data {
		rec.keys = append(rec.keys, k)
		rec.blob = append(rec.blob, v...)
		rec.offs = append(rec.offs, len(rec.blob))
	}
}

// snapshot copies rec out, with token as its ID. All values share one
// new buffer.
func (rec *sessionRec) snapshot(token string) *coord.Session {
	buf := bytes.Clone(rec.blob) // not zeroed before the copy, unlike make
	data := make(map[string]json.RawMessage, len(rec.keys))
	for i, k := range rec.keys {
		data[k] = json.RawMessage(buf[rec.offs[i]:rec.offs[i+1]:rec.offs[i+1]])
	}
	return &coord.Session{
		ID:             token,
		Handle:         rec.handle,
		UserID:         rec.user,
		Data:           data,
		CreatedAt:      rec.created,
		LastAccessedAt: rec.accessed,
		ExpiresAt:      rec.expires,
		Deadline:       rec.deadline,
	}
}

// Create starts a session for userID. See [coord.SessionStore.Create].
func (ss *Sessions) Create(ctx context.Context, userID string, data map[string]any, opts ...coord.SessionOption) (*coord.Session, error) {
	h := ss.n.hub
	if err := driver.ValidateName("user ID", userID); err != nil {
		return nil, err
	}
	o, err := driver.NewSessionOptions(h.sessDef, opts...)
	if err != nil {
		return nil, err
	}
	sets, _, err := driver.EncodeData(data, false, h.maxPayload)
	if err != nil {
		return nil, err
	}
	if err := ss.check("Create"); err != nil {
		return nil, err
	}
	size := 0
	for k, v := range sets {
		size += len(k) + len(v)
	}
	token := secret.SessionToken()
	key, _ := keyOf(token)
	rec := &sessionRec{
		key:     key,
		handle:  hex.EncodeToString(key[:]),
		user:    userID,
		data:    sets,
		size:    size,
		idle:    o.IdleTTL,
		heapIdx: -1,
	}
	rec.flatten()
	st := &h.sessions
	st.mu.Lock()
	// The time is read under the lock, so creation order is list order.
	now := time.Now()
	rec.created, rec.accessed, rec.expires = now, now, now.Add(o.IdleTTL)
	if o.Lifetime > 0 {
		rec.deadline = now.Add(o.Lifetime)
		if rec.deadline.Before(rec.expires) {
			rec.expires = rec.deadline
		}
	}
	st.seq++
	rec.seq = st.seq
	// Each Create removes up to two expired sessions, so memory stays
	// bounded even if nobody calls Count, Stats or Cleanup.
	for i := 0; i < 2 && len(st.heap) > 0 && !st.heap[0].liveAt(now); i++ {
		st.removeLocked(st.heap[0])
	}
	st.insertLocked(rec)
	out := rec.snapshot(token)
	st.mu.Unlock()
	return out, nil
}

// lookupRLocked returns the live session with key k, or nil.
func (st *sessionStore) lookupRLocked(k handleKey, now time.Time) *sessionRec {
	rec := st.byKey[k]
	if rec == nil || !rec.liveAt(now) {
		return nil
	}
	return rec
}

// Get returns the session with token id without touching it. It checks
// the token's shape only when the lookup finds nothing (see lookupKey).
func (ss *Sessions) Get(ctx context.Context, id string) (*coord.Session, error) {
	k, ok := lookupKey(id)
	if !ok {
		return nil, errMalformed()
	}
	if err := ss.check("Get"); err != nil {
		if !validToken(id) {
			return nil, errMalformed()
		}
		return nil, err
	}
	st := &ss.n.hub.sessions
	now := st.now()
	st.mu.RLock()
	defer st.mu.RUnlock()
	rec := st.lookupRLocked(k, now)
	if rec == nil {
		return nil, notFound(id)
	}
	return rec.snapshot(id), nil
}

// Touch slides the session's idle expiry, sets LastAccessedAt to now and
// returns the session.
func (ss *Sessions) Touch(ctx context.Context, id string) (*coord.Session, error) {
	k, err := keyOf(id)
	if err != nil {
		return nil, err
	}
	if err := ss.check("Touch"); err != nil {
		return nil, err
	}
	st := &ss.n.hub.sessions
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.lookupRLocked(k, now)
	if rec == nil {
		return nil, errNoSession()
	}
	rec.accessed = now
	st.setExpiresLocked(rec, now.Add(rec.idle))
	return rec.snapshot(id), nil
}

// setExpiresLocked sets rec's expiry to at, capped by its deadline.
func (st *sessionStore) setExpiresLocked(rec *sessionRec, at time.Time) {
	if !rec.deadline.IsZero() && rec.deadline.Before(at) {
		at = rec.deadline
	}
	rec.expires = at
	st.heap.fix(rec.heapIdx)
}

// Update merges data into the session's data atomically; a nil value
// deletes its key. The merged data may not exceed the hub's MaxPayload.
func (ss *Sessions) Update(ctx context.Context, id string, data map[string]any) error {
	k, err := keyOf(id)
	if err != nil {
		return err
	}
	h := ss.n.hub
	sets, dels, err := driver.EncodeData(data, true, h.maxPayload)
	if err != nil {
		return err
	}
	if err := ss.check("Update"); err != nil {
		return err
	}
	st := &h.sessions
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.lookupRLocked(k, now)
	if rec == nil {
		return errNoSession()
	}
	size := rec.size
	for key, v := range sets {
		if old, ok := rec.data[key]; ok {
			size -= len(key) + len(old)
		}
		size += len(key) + len(v)
	}
	for _, key := range dels {
		if old, ok := rec.data[key]; ok {
			size -= len(key) + len(old)
		}
	}
	if size > h.maxPayload {
		return fmt.Errorf("%w: coord/memory: session data would be %d bytes, over the limit of %d", coord.ErrInvalid, size, h.maxPayload)
	}
	for key, v := range sets {
		rec.data[key] = v
	}
	for _, key := range dels {
		delete(rec.data, key)
	}
	rec.size = size
	rec.flatten()
	return nil
}

// Delete ends the session with token id; a missing one is not an error.
func (ss *Sessions) Delete(ctx context.Context, id string) error {
	k, err := keyOf(id)
	if err != nil {
		return err
	}
	if err := ss.check("Delete"); err != nil {
		return err
	}
	st := &ss.n.hub.sessions
	st.mu.Lock()
	defer st.mu.Unlock()
	if rec := st.byKey[k]; rec != nil {
		st.removeLocked(rec)
	}
	return nil
}

// Exists reports whether the session with token id is live.
func (ss *Sessions) Exists(ctx context.Context, id string) (bool, error) {
	k, err := keyOf(id)
	if err != nil {
		return false, err
	}
	if err := ss.check("Exists"); err != nil {
		return false, err
	}
	st := &ss.n.hub.sessions
	now := st.now()
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.lookupRLocked(k, now) != nil, nil
}

// Extend sets the session's idle expiry to ttl from now, capped by its
// deadline. It does not change the idle TTL later touches use.
func (ss *Sessions) Extend(ctx context.Context, id string, ttl time.Duration) error {
	k, err := keyOf(id)
	if err != nil {
		return err
	}
	if err := driver.ValidateTTL("session TTL", ttl); err != nil {
		return err
	}
	if err := ss.check("Extend"); err != nil {
		return err
	}
	st := &ss.n.hub.sessions
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.lookupRLocked(k, now)
	if rec == nil {
		return errNoSession()
	}
	st.setExpiresLocked(rec, now.Add(ttl))
	return nil
}

// Rotate gives the session a new token; the old one is dead at once.
// User, data, creation time, expiry and deadline are kept;
// LastAccessedAt becomes now.
func (ss *Sessions) Rotate(ctx context.Context, id string) (*coord.Session, error) {
	k, err := keyOf(id)
	if err != nil {
		return nil, err
	}
	if err := ss.check("Rotate"); err != nil {
		return nil, err
	}
	token := secret.SessionToken()
	nk, _ := keyOf(token)
	st := &ss.n.hub.sessions
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.lookupRLocked(k, now)
	if rec == nil {
		return nil, errNoSession()
	}
	delete(st.byKey, rec.key)
	rec.key = nk
	rec.handle = hex.EncodeToString(nk[:])
	rec.accessed = now
	st.byKey[nk] = rec
	return rec.snapshot(token), nil
}

// ByUser returns the live sessions of userID, oldest first, with an
// empty ID and their Handle set.
func (ss *Sessions) ByUser(ctx context.Context, userID string) ([]*coord.Session, error) {
	if err := driver.ValidateName("user ID", userID); err != nil {
		return nil, err
	}
	if err := ss.check("ByUser"); err != nil {
		return nil, err
	}
	st := &ss.n.hub.sessions
	now := time.Now()
	st.mu.RLock()
	recs := make([]*sessionRec, 0, len(st.byUser[userID]))
	for rec := range st.byUser[userID] {
		if rec.liveAt(now) {
			recs = append(recs, rec)
		}
	}
	slices.SortFunc(recs, func(a, b *sessionRec) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	out := make([]*coord.Session, len(recs))
	for i, rec := range recs {
		out[i] = rec.snapshot("")
	}
	st.mu.RUnlock()
	return out, nil
}

// Revoke ends the live session of userID named by handle. A handle of
// another user's session or of no session gives [coord.ErrNotFound]; a
// malformed one [coord.ErrInvalid].
func (ss *Sessions) Revoke(ctx context.Context, userID, handle string) error {
	if err := driver.ValidateName("user ID", userID); err != nil {
		return err
	}
	if !secret.ValidHandle(handle) {
		return fmt.Errorf("%w: coord/memory: malformed session handle", coord.ErrInvalid)
	}
	if err := ss.check("Revoke"); err != nil {
		return err
	}
	var k handleKey
	if _, err := hex.Decode(k[:], []byte(handle)); err != nil {
		return fmt.Errorf("%w: coord/memory: malformed session handle", coord.ErrInvalid)
	}
	st := &ss.n.hub.sessions
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.lookupRLocked(k, now)
	if rec == nil || rec.user != userID {
		return errNoSession()
	}
	st.removeLocked(rec)
	return nil
}

// DeleteByUser ends every session of userID and returns how many live
// sessions it ended.
func (ss *Sessions) DeleteByUser(ctx context.Context, userID string) (int, error) {
	if err := driver.ValidateName("user ID", userID); err != nil {
		return 0, err
	}
	if err := ss.check("DeleteByUser"); err != nil {
		return 0, err
	}
	st := &ss.n.hub.sessions
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for rec := range st.byUser[userID] {
		if rec.liveAt(now) {
			n++
		}
		st.removeLocked(rec)
	}
	return n, nil
}

// Count returns the number of live sessions.
func (ss *Sessions) Count(ctx context.Context) (int64, error) {
	if err := ss.check("Count"); err != nil {
		return 0, err
	}
	return ss.n.hub.sessions.count(time.Now()), nil
}

// Stats returns counts over the live sessions.
func (ss *Sessions) Stats(ctx context.Context) (coord.SessionStats, error) {
	if err := ss.check("Stats"); err != nil {
		return coord.SessionStats{}, err
	}
	st := &ss.n.hub.sessions
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.purgeLocked(now)
	out := coord.SessionStats{Sessions: int64(len(st.byKey)), Users: int64(len(st.byUser))}
	if st.oldest != nil {
		out.OldestCreatedAt = st.oldest.created
	}
	return out, nil
}

// Cleanup removes the sessions that expired and returns how many it
// removed. Lookups, listings and counts honour expiry without it; Count,
// Stats and Create also remove what expired as they go, so Cleanup may
// find nothing left to do.
func (ss *Sessions) Cleanup(ctx context.Context) (int, error) {
	if err := ss.check("Cleanup"); err != nil {
		return 0, err
	}
	st := &ss.n.hub.sessions
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.purgeLocked(time.Now()), nil
}
