package logging

import (
	"context"
	"log/slog"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/secret"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Sessions decorates next with logging. Session tokens are logged only as
// an 8-character tag of their SHA-256 (attribute session), handles and
// user IDs as they are, and session data never: only its number of
// fields. A nil m or next gives next unchanged.
func (m *Middleware) Sessions(next coord.SessionStore) coord.SessionStore {
	if m == nil || next == nil {
		return next
	}
	return &sessions{m: m, next: next}
}

type sessions struct {
	m    *Middleware
	next coord.SessionStore
}

var _ coord.SessionStore = (*sessions)(nil)

// Unwrap returns the decorated SessionStore.
func (s *sessions) Unwrap() coord.SessionStore { return s.next }

// As forwards to the decorated SessionStore (see coord.As).
func (s *sessions) As(target any) bool { return coord.As(s.next, target) }

// token returns the attribute that names a session token.
func token(key, id string) slog.Attr { return slog.String(key, secret.Redact(id)) }

// described returns the non-secret attributes of a session.
func described(attrs []slog.Attr, sess *coord.Session) []slog.Attr {
	if sess == nil {
		return attrs
	}
	return append(attrs,
		name("user_id", sess.UserID),
		name("handle", sess.Handle),
		slog.Int("fields", len(sess.Data)),
	)
}

func (s *sessions) Create(ctx context.Context, userID string, data map[string]any, opts ...coord.SessionOption) (*coord.Session, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Create(ctx, userID, data, opts...)
	}
	start := m.clock.Now()
	sess, err := s.next.Create(ctx, userID, data, opts...)
	m.done(ctx, obs.SessionCreate, start, err, func() []slog.Attr {
		if sess == nil {
			return []slog.Attr{name("user_id", userID), slog.Int("fields", len(data))}
		}
		return described([]slog.Attr{token("session", sess.ID)}, sess)
	})
	return sess, err
}

func (s *sessions) Get(ctx context.Context, id string) (*coord.Session, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Get(ctx, id)
	}
	start := m.clock.Now()
	sess, err := s.next.Get(ctx, id)
	m.done(ctx, obs.SessionGet, start, err, func() []slog.Attr {
		return described([]slog.Attr{token("session", id)}, sess)
	})
	return sess, err
}

func (s *sessions) Touch(ctx context.Context, id string) (*coord.Session, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Touch(ctx, id)
	}
	start := m.clock.Now()
	sess, err := s.next.Touch(ctx, id)
	m.done(ctx, obs.SessionTouch, start, err, func() []slog.Attr {
		return described([]slog.Attr{token("session", id)}, sess)
	})
	return sess, err
}

func (s *sessions) Update(ctx context.Context, id string, data map[string]any) error {
	m := s.m
	if !m.on(ctx) {
		return s.next.Update(ctx, id, data)
	}
	start := m.clock.Now()
	err := s.next.Update(ctx, id, data)
	m.done(ctx, obs.SessionUpdate, start, err, func() []slog.Attr {
		return []slog.Attr{token("session", id), slog.Int("fields", len(data))}
	})
	return err
}

func (s *sessions) Delete(ctx context.Context, id string) error {
	m := s.m
	if !m.on(ctx) {
		return s.next.Delete(ctx, id)
	}
	start := m.clock.Now()
	err := s.next.Delete(ctx, id)
	m.done(ctx, obs.SessionDelete, start, err, func() []slog.Attr {
		return []slog.Attr{token("session", id)}
	})
	return err
}

func (s *sessions) Exists(ctx context.Context, id string) (bool, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Exists(ctx, id)
	}
	start := m.clock.Now()
	ok, err := s.next.Exists(ctx, id)
	m.done(ctx, obs.SessionExists, start, err, func() []slog.Attr {
		return []slog.Attr{token("session", id), slog.Bool("exists", ok)}
	})
	return ok, err
}

func (s *sessions) Extend(ctx context.Context, id string, ttl time.Duration) error {
	m := s.m
	if !m.on(ctx) {
		return s.next.Extend(ctx, id, ttl)
	}
	start := m.clock.Now()
	err := s.next.Extend(ctx, id, ttl)
	m.done(ctx, obs.SessionExtend, start, err, func() []slog.Attr {
		return []slog.Attr{token("session", id), slog.Duration("ttl", ttl)}
	})
	return err
}

func (s *sessions) Rotate(ctx context.Context, id string) (*coord.Session, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Rotate(ctx, id)
	}
	start := m.clock.Now()
	sess, err := s.next.Rotate(ctx, id)
	m.done(ctx, obs.SessionRotate, start, err, func() []slog.Attr {
		attrs := []slog.Attr{token("session", id)}
		if sess != nil {
			attrs = append(attrs, token("new_session", sess.ID))
		}
		return described(attrs, sess)
	})
	return sess, err
}

func (s *sessions) ByUser(ctx context.Context, userID string) ([]*coord.Session, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.ByUser(ctx, userID)
	}
	start := m.clock.Now()
	list, err := s.next.ByUser(ctx, userID)
	m.done(ctx, obs.SessionByUser, start, err, func() []slog.Attr {
		return []slog.Attr{name("user_id", userID), slog.Int("count", len(list))}
	})
	return list, err
}

func (s *sessions) Revoke(ctx context.Context, userID, handle string) error {
	m := s.m
	if !m.on(ctx) {
		return s.next.Revoke(ctx, userID, handle)
	}
	start := m.clock.Now()
	err := s.next.Revoke(ctx, userID, handle)
	m.done(ctx, obs.SessionRevoke, start, err, func() []slog.Attr {
		return []slog.Attr{name("user_id", userID), name("handle", handle)}
	})
	return err
}

func (s *sessions) DeleteByUser(ctx context.Context, userID string) (int, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.DeleteByUser(ctx, userID)
	}
	start := m.clock.Now()
	n, err := s.next.DeleteByUser(ctx, userID)
	m.done(ctx, obs.SessionDeleteByUser, start, err, func() []slog.Attr {
		return []slog.Attr{name("user_id", userID), slog.Int("count", n)}
	})
	return n, err
}

func (s *sessions) Count(ctx context.Context) (int64, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Count(ctx)
	}
	start := m.clock.Now()
	n, err := s.next.Count(ctx)
	m.done(ctx, obs.SessionCount, start, err, func() []slog.Attr {
		return []slog.Attr{slog.Int64("count", n)}
	})
	return n, err
}

func (s *sessions) Stats(ctx context.Context) (coord.SessionStats, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Stats(ctx)
	}
	start := m.clock.Now()
	st, err := s.next.Stats(ctx)
	m.done(ctx, obs.SessionStats, start, err, func() []slog.Attr {
		return []slog.Attr{slog.Int64("sessions", st.Sessions), slog.Int64("users", st.Users)}
	})
	return st, err
}

func (s *sessions) Cleanup(ctx context.Context) (int, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Cleanup(ctx)
	}
	start := m.clock.Now()
	n, err := s.next.Cleanup(ctx)
	m.done(ctx, obs.SessionCleanup, start, err, func() []slog.Attr {
		return []slog.Attr{slog.Int("count", n)}
	})
	return n, err
}
