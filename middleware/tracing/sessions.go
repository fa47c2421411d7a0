package tracing

import (
	"context"
	"time"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/trace"
)

// Sessions decorates next with a span per call, with the outcome and,
// for ByUser, DeleteByUser, Count and Cleanup, the count. No session ID,
// handle, user ID or data is recorded. A nil t or next gives next
// unchanged.
func (t *Tracer) Sessions(next coord.SessionStore) coord.SessionStore {
	if t == nil || next == nil {
		return next
	}
	return &sessions{t: t, next: next}
}

type sessions struct {
	t    *Tracer
	next coord.SessionStore
}

var _ coord.SessionStore = (*sessions)(nil)

// Unwrap returns the decorated SessionStore.
func (s *sessions) Unwrap() coord.SessionStore { return s.next }

// As forwards to the decorated SessionStore (see coord.As).
func (s *sessions) As(target any) bool { return coord.As(s.next, target) }

func (s *sessions) start(ctx context.Context, op string) (context.Context, trace.Span) {
	return s.t.start(ctx, op, trace.SpanKindClient)
}

func (s *sessions) Create(ctx context.Context, userID string, data map[string]any, opts ...coord.SessionOption) (*coord.Session, error) {
	ctx, span := s.start(ctx, "sessions.create")
	sess, err := s.next.Create(ctx, userID, data, opts...)
	end(span, err)
	return sess, err
}

func (s *sessions) Get(ctx context.Context, id string) (*coord.Session, error) {
	ctx, span := s.start(ctx, "sessions.get")
	sess, err := s.next.Get(ctx, id)
	end(span, err)
	return sess, err
}

func (s *sessions) Touch(ctx context.Context, id string) (*coord.Session, error) {
	ctx, span := s.start(ctx, "sessions.touch")
	sess, err := s.next.Touch(ctx, id)
	end(span, err)
	return sess, err
}

func (s *sessions) Update(ctx context.Context, id string, data map[string]any) error {
	ctx, span := s.start(ctx, "sessions.update")
	err := s.next.Update(ctx, id, data)
	end(span, err)
	return err
}

func (s *sessions) Delete(ctx context.Context, id string) error {
	ctx, span := s.start(ctx, "sessions.delete")
	err := s.next.Delete(ctx, id)
	end(span, err)
	return err
}

func (s *sessions) Exists(ctx context.Context, id string) (bool, error) {
	ctx, span := s.start(ctx, "sessions.exists")
	ok, err := s.next.Exists(ctx, id)
	end(span, err)
	return ok, err
}

func (s *sessions) Extend(ctx context.Context, id string, ttl time.Duration) error {
	ctx, span := s.start(ctx, "sessions.extend")
	err := s.next.Extend(ctx, id, ttl)
	end(span, err)
	return err
}

func (s *sessions) Rotate(ctx context.Context, id string) (*coord.Session, error) {
	ctx, span := s.start(ctx, "sessions.rotate")
	sess, err := s.next.Rotate(ctx, id)
	end(span, err)
	return sess, err
}

func (s *sessions) ByUser(ctx context.Context, userID string) ([]*coord.Session, error) {
	ctx, span := s.start(ctx, "sessions.by_user")
	list, err := s.next.ByUser(ctx, userID)
	end(span, err, AttrCount.Int(len(list)))
	return list, err
}

func (s *sessions) Revoke(ctx context.Context, userID, handle string) error {
	ctx, span := s.start(ctx, "sessions.revoke")
	err := s.next.Revoke(ctx, userID, handle)
	end(span, err)
	return err
}

func (s *sessions) DeleteByUser(ctx context.Context, userID string) (int, error) {
	ctx, span := s.start(ctx, "sessions.delete_by_user")
	n, err := s.next.DeleteByUser(ctx, userID)
	end(span, err, AttrCount.Int(n))
	return n, err
}

func (s *sessions) Count(ctx context.Context) (int64, error) {
	ctx, span := s.start(ctx, "sessions.count")
	n, err := s.next.Count(ctx)
	end(span, err, AttrCount.Int64(n))
	return n, err
}

func (s *sessions) Stats(ctx context.Context) (coord.SessionStats, error) {
	ctx, span := s.start(ctx, "sessions.stats")
	st, err := s.next.Stats(ctx)
	end(span, err, AttrCount.Int64(st.Sessions))
	return st, err
}

func (s *sessions) Cleanup(ctx context.Context) (int, error) {
	ctx, span := s.start(ctx, "sessions.cleanup")
	n, err := s.next.Cleanup(ctx)
	end(span, err, AttrCount.Int(n))
	return n, err
}
