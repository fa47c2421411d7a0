package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
	"github.com/cgn-bot/coord/internal/wire"
)

// Sessions is the Backend's [coord.SessionStore]. Each session is one
// hash keyed by its handle (the first 128 bits of the token's SHA-256; the
// token itself is never stored), with one field per data key ("d:<key>",
// the value's JSON) and meta fields ("_u" user, "_c" created, "_a" last
// access, "_e" expires, "_x" deadline or 0, "_i" idle TTL, all in server
// milliseconds, "_n" the data's size in bytes, for Update's limit, and
// "_f" the hash's field count as the scripts left it, so that a script
// that writes reads the field names only when something else added or
// removed one).
// The hash expires (PEXPIREAT) with the session, but a session is live
// only while "_e" and "_x" are ahead of the server's clock, so a key
// that lost its TTL (a restore, another tool) does not outlive it; meta
// fields of another shape, or fields that are neither "_..." nor "d:"
// and a name, make a session malformed ([coord.ErrInvalid]), and no
// method but the deleting ones writes to a malformed session. Three
// sorted sets index the live sessions by expiry, by user and by creation,
// and a hash counts each user's sessions; expired entries are removed by
// score, so Count is one ZCOUNT (no SCAN) and the indexes heal without
// keyspace notifications. Every script takes its time from the server's
// TIME. It is safe for concurrent use by multiple goroutines.
type Sessions struct {
	b *Backend
}

// pruneBatch is how many expired index entries one script removes.
const pruneBatch = 500

// As forwards to [Backend.As].
func (s *Sessions) As(target any) bool { return s.b.As(target) }

// handleOf checks the backend is open and token has the shape of a
// session token, before any Redis call, and returns its handle.
func (s *Sessions) handleOf(token string) (string, error) {
	if err := s.b.checkOpen(); err != nil {
		return "", err
	}
	if !secret.ValidSessionToken(token) {
		return "", fmt.Errorf("%w: coord/redis: malformed session token", coord.ErrInvalid)
	}
	return secret.Handle(token), nil
}

func notFound() error { return fmt.Errorf("%w: coord/redis: no such session", coord.ErrNotFound) }

func malformedSession(why string) error {
	return fmt.Errorf("%w: coord/redis: stored session is malformed: %s", coord.ErrInvalid, why)
}

// Create starts a session for userID with data.
func (s *Sessions) Create(ctx context.Context, userID string, data map[string]any, opts ...coord.SessionOption) (*coord.Session, error) {
	b := s.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("user ID", userID); err != nil {
		return nil, err
	}
	o, err := driver.NewSessionOptions(b.opts.SessionDefaults, opts...)
	if err != nil {
		return nil, err
	}
	sets, _, err := driver.EncodeData(data, false, b.opts.MaxPayload)
	if err != nil {
		return nil, err
	}
	args := make([]any, 4, 4+2*len(sets))
	args[0], args[2], args[3] = userID, ms(o.IdleTTL), ms(o.Lifetime)
	args = appendFields(args, sets)
	for range 3 {
		token := secret.SessionToken()
		h := secret.Handle(token)
		args[1] = h
		res, err := b.batch.run(ctx, b.sc.sessCreate, b.keys.sessionKeys(b.keys.sessionKey(h)), args...).Int64Slice()
		if err := b.fail(ctx, "create session", err); err != nil {
			return nil, err
		}
		if len(res) == 0 || res[0] == 0 {
			continue // a handle collision: 2^-128, but cheap to handle
		}
		if len(res) != 4 {
			return nil, fmt.Errorf("%w: coord/redis: create session: unexpected reply", coord.ErrUnavailable)
		}
		sess := &coord.Session{
			ID: token, Handle: h, UserID: userID, Data: sets,
			CreatedAt: time.UnixMilli(res[1]), LastAccessedAt: time.UnixMilli(res[1]),
			ExpiresAt: time.UnixMilli(res[2]),
		}
		if res[3] > 0 {
			sess.Deadline = time.UnixMilli(res[3])
		}
		return sess, nil
	}
	return nil, fmt.Errorf("%w: coord/redis: create session: no free handle", coord.ErrUnavailable)
}

// Get returns the session with token id without touching it: HGETALL
// and the server's TIME in one round trip. A session whose recorded
// expiry or deadline has passed by the server's clock is not found (and
// is deleted with its index entries, by the get script), even when its
// key has no TTL (written by another tool, or restored without one); one
// whose fields are not what this package writes is [coord.ErrInvalid].
func (s *Sessions) Get(ctx context.Context, id string) (*coord.Session, error) {
	h, err := s.handleOf(id)
	if err != nil {
		return nil, err
	}
	b := s.b
	clock := goredis.NewTimeCmd(ctx, "time")
	cmd := goredis.NewMapStringStringCmd(ctx, "hgetall", b.keys.sessionKey(h))
	err = b.batch.processPair(ctx, clock, cmd)
	if err == nil {
		err = clock.Err()
	}
	if goredis.HasErrorPrefix(err, "WRONGTYPE") {
		// The server answered: another tool's value under the key.
		b.setConnState(coord.Connected)
		return nil, malformedSession("not a hash")
	}
	if err := b.fail(ctx, "get session", err); err != nil {
		return nil, err
	}
	fields := cmd.Val()
	if len(fields) == 0 {
		return nil, notFound()
	}
	sess, err := parseSession(fields, id, h)
	if err != nil {
		return nil, err
	}
	if nearEnd(sess, clock.Val()) {
		// Expired, or about to: the script decides on the clock of the
		// session's own server (in a Cluster, TIME may have come from
		// another node) and deletes it if it has expired.
		return s.read(ctx, id, "get session", b.sc.sessGet)
	}
	return sess, nil
}

// clockMargin is how close to its expiry or deadline, by a TIME reply
// that may come from another server, a session read by Get or Exists is
// judged by the get script instead.
const clockMargin = time.Second

// nearEnd reports whether sess expires or reaches its deadline within
// clockMargin of the server time now (at millisecond resolution, as the
// scripts see it).
func nearEnd(sess *coord.Session, now time.Time) bool {
	limit := time.UnixMilli(now.UnixMilli()).Add(clockMargin)
	return !limit.Before(sess.ExpiresAt) || (!sess.Deadline.IsZero() && !limit.Before(sess.Deadline))
}

// Touch slides the session's idle expiry, sets LastAccessedAt, and
// returns it, in one script. An expired or malformed session is treated
// as by Get; a malformed one is left as it is.
func (s *Sessions) Touch(ctx context.Context, id string) (*coord.Session, error) {
	return s.read(ctx, id, "touch session", s.b.sc.sessTouch)
}

// read runs sc, the get or the touch script, for token id.
func (s *Sessions) read(ctx context.Context, id, what string, sc *goredis.Script) (*coord.Session, error) {
	h, err := s.handleOf(id)
	if err != nil {
		return nil, err
	}
	b := s.b
	fields, err := s.runFields(ctx, sc, b.keys.sessionKeys(b.keys.sessionKey(h)), h)
	if err := b.fail(ctx, what, err); err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, notFound()
	}
	if _, ok := fields["!"]; ok {
		return nil, malformedSession("bad meta fields or field names")
	}
	return parseSession(fields, id, h)
}

// runFields runs sc, a script that replies with field, value pairs,
// through the batcher, and reads the reply straight into a map (as
// HGETALL's is read, without a []any of it first). A server that does not
// have the script cached gets it loaded, and the call is made again.
func (s *Sessions) runFields(ctx context.Context, sc *goredis.Script, keys []string, args ...any) (map[string]string, error) {
	b := s.b
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", sc.Hash(), len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := goredis.NewMapStringStringCmd(ctx, cmdArgs...)
	err := b.batch.process(ctx, cmd)
	if goredis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := sc.Load(ctx, b.client).Err(); err != nil {
			return nil, err
		}
		cmd = goredis.NewMapStringStringCmd(ctx, cmdArgs...)
		err = b.batch.process(ctx, cmd)
	}
	return cmd.Val(), err
}

// fieldsOf turns a script's HGETALL reply into a map (or an error for the
// script's malformed-data code).
func fieldsOf(v any) (map[string]string, error) {
	switch t := v.(type) {
	case []any:
		if len(t)%2 != 0 {
			return nil, malformedSession("odd field list")
		}
		m := make(map[string]string, len(t)/2)
		for i := 0; i < len(t); i += 2 {
			k, ok1 := t[i].(string)
			val, ok2 := t[i+1].(string)
			if !ok1 || !ok2 {
				return nil, malformedSession("non-string field")
			}
			m[k] = val
		}
		return m, nil
	case int64:
		if t == -2 {
			return nil, fmt.Errorf("%w: coord/redis: rotate: new handle in use", coord.ErrUnavailable)
		}
		return nil, malformedSession("bad meta fields")
	}
	return nil, malformedSession(fmt.Sprintf("unexpected reply %T", v))
}

// parseSession validates a session hash read from Redis. Anything a
// foreign or older writer may have left that does not fit gives an error
// wrapping coord.ErrInvalid.
func parseSession(fields map[string]string, token, handle string) (*coord.Session, error) {
	// The data values share a buffer (each slice capped at its end, so an
	// append by the caller cannot run into the next one; when the buffer
	// grows, the values already sliced keep the old one).
	buf := make([]byte, 0, 512)
	sess := &coord.Session{ID: token, Handle: handle, Data: make(map[string]json.RawMessage, max(len(fields)-8, 0))}
	var c, a, e, x, i int64
	seen := 0
	for k, v := range fields {
		var dst *int64
		switch k {
		case "_u":
			sess.UserID = v
			continue
		case "_c":
			dst = &c
		case "_a":
			dst = &a
		case "_e":
			dst = &e
		case "_x":
			dst = &x
		case "_i":
			dst = &i
		case "_n":
			// The data's size, for Update: checked, not returned.
			if _, ok := parseMillis(v); !ok {
				return nil, malformedSession("field _n is not a size")
			}
			continue
		default:
			name, ok := strings.CutPrefix(k, "d:")
			switch {
			case ok:
				start := len(buf)
				buf = append(buf, v...)
				raw := buf[start:len(buf):len(buf)]
				if !validName(name) || !validJSON(raw) {
					return nil, malformedSession("a data field is not a name with a JSON value")
				}
				sess.Data[name] = raw
			case strings.HasPrefix(k, "_"):
				// A meta field of a later version: ignored.
			default:
				return nil, malformedSession("unknown field")
			}
			continue
		}
		num, ok := parseMillis(v)
		if !ok {
			return nil, malformedSession("field " + k + " is not a time")
		}
		*dst = num
		seen++
	}
	if !validName(sess.UserID) || seen != 5 || i < 1 {
		return nil, malformedSession("missing or bad meta fields")
	}
	sess.CreatedAt, sess.LastAccessedAt, sess.ExpiresAt = time.UnixMilli(c), time.UnixMilli(a), time.UnixMilli(e)
	if x > 0 {
		sess.Deadline = time.UnixMilli(x)
	}
	return sess, nil
}

// appendFields appends the hash fields and values of sets to args, as
// []byte: the field names ("d:<key>") share one buffer, and the values
// are passed as they are (go-redis writes a []byte argument as it
// writes a string, without a string copy of each).
func appendFields(args []any, sets map[string]json.RawMessage) []any {
	n := 0
	for k := range sets {
		n += 2 + len(k)
	}
	names := make([]byte, 0, n)
	for k, v := range sets {
		start := len(names)
		names = append(names, "d:"...)
		names = append(names, k...)
		args = append(args, names[start:len(names):len(names)], []byte(v))
	}
	return args
}

// Update merges data into the session in one script: HSET of the set
// fields and HDEL of the nil ones. A missing session is not re-created.
// The session's data after the merge (keys and values, in bytes) may not
// exceed [Options.MaxPayload]: the script checks it against the size the
// session's "_n" field keeps (counted from the hash when a session
// written by an older version has none), so concurrent merges cannot
// pass it together. An expired or malformed session is treated as by
// Get, and a malformed one is left as it is.
func (s *Sessions) Update(ctx context.Context, id string, data map[string]any) error {
	h, err := s.handleOf(id)
	if err != nil {
		return err
	}
	b := s.b
	sets, dels, err := driver.EncodeData(data, true, b.opts.MaxPayload)
	if err != nil {
		return err
	}
	args := make([]any, 0, 3+2*len(sets)+len(dels))
	args = append(args, h, b.opts.MaxPayload, len(sets))
	args = appendFields(args, sets)
	for _, k := range dels {
		args = append(args, "d:"+k)
	}
	n, err := b.batch.run(ctx, b.sc.sessUpdate, b.keys.sessionKeys(b.keys.sessionKey(h)), args...).Int64()
	if err := b.fail(ctx, "update session", err); err != nil {
		return err
	}
	switch n {
	case 1:
		return nil
	case 0:
		return notFound()
	case -2:
		return fmt.Errorf("%w: coord/redis: session data would be over the limit of %d bytes", coord.ErrInvalid, b.opts.MaxPayload)
	}
	return malformedSession("bad meta fields")
}

// Delete ends the session with token id; a missing or expired one is not
// an error. A malformed session is deleted too: ending it writes nothing
// over it, and it is the way out of one.
func (s *Sessions) Delete(ctx context.Context, id string) error {
	h, err := s.handleOf(id)
	if err != nil {
		return err
	}
	b := s.b
	err = b.batch.run(ctx, b.sc.sessDelete, b.keys.sessionKeys(b.keys.sessionKey(h)), h).Err()
	return b.fail(ctx, "delete session", err)
}

// Exists reports whether the session with token id is live. It reads
// the session as Get does, so an expired or malformed one is treated as
// by Get.
func (s *Sessions) Exists(ctx context.Context, id string) (bool, error) {
	switch _, err := s.Get(ctx, id); {
	case err == nil:
		return true, nil
	case errors.Is(err, coord.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// Extend sets the session's expiry to ttl from now, capped at its
// deadline. An expired or malformed session is treated as by Get, and a
// malformed one is left as it is.
func (s *Sessions) Extend(ctx context.Context, id string, ttl time.Duration) error {
	h, err := s.handleOf(id)
	if err != nil {
		return err
	}
	if err := driver.ValidateTTL("session TTL", ttl); err != nil {
		return err
	}
	b := s.b
	n, err := b.batch.run(ctx, b.sc.sessExtend, b.keys.sessionKeys(b.keys.sessionKey(h)), h, ms(ttl)).Int64()
	if err := b.fail(ctx, "extend session", err); err != nil {
		return err
	}
	switch n {
	case 1:
		return nil
	case 0:
		return notFound()
	}
	return malformedSession("bad meta fields")
}

// Rotate moves the session to a new token in one script (the old and the
// new key share a hash slot); the old token is dead at once. An expired
// or malformed session is treated as by Get, and a malformed one is left
// as it is.
func (s *Sessions) Rotate(ctx context.Context, id string) (*coord.Session, error) {
	h, err := s.handleOf(id)
	if err != nil {
		return nil, err
	}
	b := s.b
	// The script checks the meta fields and the field names, not the
	// data's JSON: the whole session is read and checked first, so a
	// malformed one is never moved to a token nobody holds.
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	token := secret.SessionToken()
	nh := secret.Handle(token)
	keys := b.keys.sessionKeys(b.keys.sessionKey(h), b.keys.sessionKey(nh))
	v, err := b.sc.sessRotate.Run(ctx, b.client, keys, h, nh).Result()
	if errors.Is(err, goredis.Nil) {
		b.setConnState(coord.Connected)
		return nil, notFound()
	}
	if err := b.fail(ctx, "rotate session", err); err != nil {
		return nil, err
	}
	fields, err := fieldsOf(v)
	if err != nil {
		return nil, err
	}
	return parseSession(fields, token, nh)
}

// members returns up to limit index members of userID (0: all).
func (s *Sessions) members(ctx context.Context, userID string, limit int64) ([]string, error) {
	b := s.b
	arg := goredis.ZRangeArgs{
		Key:   b.keys.sessByUser,
		Start: "[" + userID + "\x00",
		Stop:  "(" + userID + "\x01",
		ByLex: true,
		Count: limit,
	}
	ms, err := b.client.ZRangeArgs(ctx, arg).Result()
	if err := b.fail(ctx, "list sessions", err); err != nil {
		return nil, err
	}
	out := ms[:0]
	for _, m := range ms {
		if len(m) == len(userID)+33 && secret.ValidHandle(m[len(m)-32:]) {
			out = append(out, m)
		}
	}
	return out, nil
}

// ByUser returns the live sessions of userID, oldest first, without
// tokens. Sessions whose recorded expiry or deadline has passed by the
// server's clock are left out (and deleted with their index entries);
// a malformed one is [coord.ErrInvalid].
func (s *Sessions) ByUser(ctx context.Context, userID string) ([]*coord.Session, error) {
	b := s.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("user ID", userID); err != nil {
		return nil, err
	}
	members, err := s.members(ctx, userID, 0)
	if err != nil || len(members) == 0 {
		return nil, err
	}
	pipe := b.client.Pipeline()
	// The server's clock judges expiry, as in the scripts: a session
	// whose key outlived its recorded expiry (no TTL) is not listed.
	clock := pipe.Time(ctx)
	cmds := make([]*goredis.MapStringStringCmd, len(members))
	for i, m := range members {
		cmds[i] = pipe.HGetAll(ctx, b.keys.sessionKey(m[len(m)-32:]))
	}
	_, err = pipe.Exec(ctx)
	if err := b.fail(ctx, "list sessions", err); err != nil {
		return nil, err
	}
	now := time.UnixMilli(clock.Val().UnixMilli())
	out := make([]*coord.Session, 0, len(members))
	var gone []string
	for i, cmd := range cmds {
		fields := cmd.Val()
		if len(fields) == 0 {
			gone = append(gone, members[i])
			continue
		}
		sess, err := parseSession(fields, "", members[i][len(members[i])-32:])
		if err != nil {
			return nil, err
		}
		if sess.UserID != userID {
			continue
		}
		if !now.Before(sess.ExpiresAt) || (!sess.Deadline.IsZero() && !now.Before(sess.Deadline)) {
			gone = append(gone, members[i])
			continue
		}
		out = append(out, sess)
	}
	if len(gone) > 0 {
		// Heal the index: entries whose session vanished or expired
		// (the script deletes those, judging by its own clock).
		_, _ = s.remove(ctx, "prune", gone)
	}
	slices.SortFunc(out, func(x, y *coord.Session) int {
		return cmp.Or(x.CreatedAt.Compare(y.CreatedAt), cmp.Compare(x.Handle, y.Handle))
	})
	return out, nil
}

// remove runs the remove script over members ("delete" or "prune") and
// returns its count.
func (s *Sessions) remove(ctx context.Context, mode string, members []string) (int64, error) {
	b := s.b
	keys := b.keys.sessionKeys(b.keys.sessExp)
	args := make([]any, 0, 1+len(members))
	args = append(args, mode)
	for _, m := range members {
		keys = append(keys, b.keys.sessionKey(m[len(m)-32:]))
		args = append(args, m)
	}
	n, err := b.sc.sessRemove.Run(ctx, b.client, keys, args...).Int64()
	return n, b.fail(ctx, mode+" sessions", err)
}

// Revoke ends the session of userID named by handle.
func (s *Sessions) Revoke(ctx context.Context, userID, handle string) error {
	b := s.b
	if err := b.checkOpen(); err != nil {
		return err
	}
	if err := driver.ValidateName("user ID", userID); err != nil {
		return err
	}
	if !secret.ValidHandle(handle) {
		return fmt.Errorf("%w: coord/redis: malformed session handle", coord.ErrInvalid)
	}
	n, err := b.sc.sessDelete.Run(ctx, b.client, b.keys.sessionKeys(b.keys.sessionKey(handle)), handle, userID).Int64()
	if err := b.fail(ctx, "revoke session", err); err != nil {
		return err
	}
	if n != 1 {
		return notFound()
	}
	return nil
}

// maxSweeps bounds DeleteByUser against a user who logs in faster than
// the sweep deletes.
const maxSweeps = 1000

// DeleteByUser ends every session of userID, looping until the index has
// none left, so sessions created while it runs end too. It returns how
// many live sessions it ended (expired and malformed ones are deleted
// too, and not counted).
func (s *Sessions) DeleteByUser(ctx context.Context, userID string) (int, error) {
	b := s.b
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	if err := driver.ValidateName("user ID", userID); err != nil {
		return 0, err
	}
	total := 0
	for range maxSweeps {
		members, err := s.members(ctx, userID, pruneBatch)
		if err != nil {
			return total, err
		}
		if len(members) == 0 {
			return total, nil
		}
		n, err := s.remove(ctx, "delete", members)
		total += int(n)
		if err != nil {
			return total, err
		}
	}
	return total, fmt.Errorf("%w: coord/redis: delete by user: sessions keep appearing", coord.ErrUnavailable)
}

// Count returns the number of live sessions: one ZCOUNT in a script.
func (s *Sessions) Count(ctx context.Context) (int64, error) {
	b := s.b
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	n, err := b.sc.sessCount.Run(ctx, b.client, b.keys.sessionKeys(b.keys.sessExp)).Int64()
	if err := b.fail(ctx, "count sessions", err); err != nil {
		return 0, err
	}
	return n, nil
}

// stats runs the stats script until no expired entry is left.
func (s *Sessions) stats(ctx context.Context) (pruned int64, st coord.SessionStats, err error) {
	b := s.b
	for range maxSweeps {
		res, err := b.sc.sessStats.Run(ctx, b.client, b.keys.sessionKeys(b.keys.sessExp), pruneBatch).Int64Slice()
		if err := b.fail(ctx, "session stats", err); err != nil {
			return pruned, st, err
		}
		if len(res) != 5 {
			return pruned, st, fmt.Errorf("%w: coord/redis: session stats: unexpected reply", coord.ErrUnavailable)
		}
		pruned += res[1]
		if res[0] == 1 {
			continue
		}
		st = coord.SessionStats{Sessions: res[2], Users: res[3]}
		if res[4] >= 0 && res[2] > 0 {
			st.OldestCreatedAt = time.UnixMilli(res[4])
		}
		return pruned, st, nil
	}
	return pruned, st, fmt.Errorf("%w: coord/redis: session stats: too many expired sessions", coord.ErrUnavailable)
}

// Stats returns counts over all live sessions, after removing expired
// entries from the indexes.
func (s *Sessions) Stats(ctx context.Context) (coord.SessionStats, error) {
	if err := s.b.checkOpen(); err != nil {
		return coord.SessionStats{}, err
	}
	_, st, err := s.stats(ctx)
	return st, err
}

// Cleanup removes expired sessions' entries from the indexes, in batches
// of 500, and returns how many it removed.
func (s *Sessions) Cleanup(ctx context.Context) (int, error) {
	if err := s.b.checkOpen(); err != nil {
		return 0, err
	}
	n, _, err := s.stats(ctx)
	return int(n), err
}

// validName is driver.ValidateName("...", s) == nil, with a fast path for
// printable ASCII.
func validName(s string) bool {
	if len(s) == 0 || len(s) > coord.MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return driver.ValidateName("name", s) == nil
		}
	}
	return true
}

// maxMetaDigits is the longest number a meta field may hold: 15 decimal
// digits are exact in a Lua number, so the scripts and this reader judge
// every stored value alike (10^15 ms is more than 30,000 years).
const maxMetaDigits = 15

// parseMillis parses a meta field's time (or duration) in milliseconds:
// 1 to [maxMetaDigits] decimal digits, nothing else (no sign, no space),
// exactly what the scripts accept (session_lib.lua's num).
func parseMillis(v string) (int64, bool) {
	if len(v) == 0 || len(v) > maxMetaDigits {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// validJSON reports whether b is valid JSON, as json.Valid does. A
// scanner of its own accepts what sessions hold (scalars, and arrays and
// objects of them, nested up to maxScanDepth); anything it does not accept
// goes to json.Valid, which has the last word.
func validJSON(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch c := b[0]; {
	case c == '"':
		// A string without whitespace around it: the scan of the
		// string alone (the most common value).
		if i, ok := wire.ScanString(b, 0); ok && i == len(b) {
			return true
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if i, ok := wire.ScanNumber(b, 0); ok && i == len(b) {
			return true
		}
	}
	return scanJSON(b) || json.Valid(b)
}

// maxScanDepth bounds the nesting scanJSON follows (json.Valid allows
// more; deeper values go to it).
const maxScanDepth = 32

// scanJSON reports whether b is one JSON value with optional whitespace
// around it. It never accepts what json.Valid rejects; false means
// invalid or not scanned (too deep).
func scanJSON(b []byte) bool {
	i, ok := scanValue(b, skipSpace(b, 0), 0)
	return ok && skipSpace(b, i) == len(b)
}

// skipSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanValue scans the JSON value starting at b[i] and returns the index
// just past it.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; c {
	case '"':
		return wire.ScanString(b, i)
	case '[':
		if depth >= maxScanDepth {
			return i, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanValue(b, i, depth+1); !ok {
				return i, false
			}
			if i = skipSpace(b, i); i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ']':
				return i + 1, true
			case ',':
				i = skipSpace(b, i+1)
			default:
				return i, false
			}
		}
	case '{':
		if depth >= maxScanDepth {
			return i, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			var ok bool
			if i, ok = wire.ScanString(b, i); !ok {
				return i, false
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = scanValue(b, skipSpace(b, i+1), depth+1); !ok {
				return i, false
			}
			if i = skipSpace(b, i); i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '}':
				return i + 1, true
			case ',':
				i = skipSpace(b, i+1)
			default:
				return i, false
			}
		}
	case 't':
		return scanWord(b, i, "true")
	case 'f':
		return scanWord(b, i, "false")
	case 'n':
		return scanWord(b, i, "null")
	}
	return wire.ScanNumber(b, i)
}

// scanWord scans the literal w at b[i].
func scanWord(b []byte, i int, w string) (int, bool) {
	if len(b)-i >= len(w) && string(b[i:i+len(w)]) == w {
		return i + len(w), true
	}
	return i, false
}
