package metrics

import (
	"context"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Sessions decorates next with the latency and errors of each operation.
// A nil m or next gives next unchanged.
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

func (s *sessions) Create(ctx context.Context, userID string, data map[string]any, opts ...coord.SessionOption) (sess *coord.Session, err error) {
	defer s.m.done(obs.SessionCreate, s.m.clock.Now(), &err)
	return s.next.Create(ctx, userID, data, opts...)
}

func (s *sessions) Get(ctx context.Context, id string) (sess *coord.Session, err error) {
	defer s.m.done(obs.SessionGet, s.m.clock.Now(), &err)
	return s.next.Get(ctx, id)
}

func (s *sessions) Touch(ctx context.Context, id string) (sess *coord.Session, err error) {
	defer s.m.done(obs.SessionTouch, s.m.clock.Now(), &err)
	return s.next.Touch(ctx, id)
}

func (s *sessions) Update(ctx context.Context, id string, data map[string]any) (err error) {
	defer s.m.done(obs.SessionUpdate, s.m.clock.Now(), &err)
	return s.next.Update(ctx, id, data)
}

func (s *sessions) Delete(ctx context.Context, id string) (err error) {
	defer s.m.done(obs.SessionDelete, s.m.clock.Now(), &err)
	return s.next.Delete(ctx, id)
}

func (s *sessions) Exists(ctx context.Context, id string) (ok bool, err error) {
	defer s.m.done(obs.SessionExists, s.m.clock.Now(), &err)
	return s.next.Exists(ctx, id)
}

func (s *sessions) Extend(ctx context.Context, id string, ttl time.Duration) (err error) {
	defer s.m.done(obs.SessionExtend, s.m.clock.Now(), &err)
	return s.next.Extend(ctx, id, ttl)
}

func (s *sessions) Rotate(ctx context.Context, id string) (sess *coord.Session, err error) {
	defer s.m.done(obs.SessionRotate, s.m.clock.Now(), &err)
	return s.next.Rotate(ctx, id)
}

func (s *sessions) ByUser(ctx context.Context, userID string) (list []*coord.Session, err error) {
	defer s.m.done(obs.SessionByUser, s.m.clock.Now(), &err)
	return s.next.ByUser(ctx, userID)
}

func (s *sessions) Revoke(ctx context.Context, userID, handle string) (err error) {
	defer s.m.done(obs.SessionRevoke, s.m.clock.Now(), &err)
	return s.next.Revoke(ctx, userID, handle)
}

func (s *sessions) DeleteByUser(ctx context.Context, userID string) (n int, err error) {
	defer s.m.done(obs.SessionDeleteByUser, s.m.clock.Now(), &err)
	return s.next.DeleteByUser(ctx, userID)
}

func (s *sessions) Count(ctx context.Context) (n int64, err error) {
	defer s.m.done(obs.SessionCount, s.m.clock.Now(), &err)
	return s.next.Count(ctx)
}

func (s *sessions) Stats(ctx context.Context) (st coord.SessionStats, err error) {
	defer s.m.done(obs.SessionStats, s.m.clock.Now(), &err)
	return s.next.Stats(ctx)
}

func (s *sessions) Cleanup(ctx context.Context) (n int, err error) {
	defer s.m.done(obs.SessionCleanup, s.m.clock.Now(), &err)
	return s.next.Cleanup(ctx)
}
