package logging

import (
	"context"
	"log/slog"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// msgStreamHandler is the record of a stream handler that failed (the
// entry stays pending and comes back after its claim time).
const msgStreamHandler = "coord: stream handler failed"

// Streams decorates next with logging: each operation with its stream
// (and group), and each handler failure of a subscription made through
// the decorator at the Failure level, with the entry's ID, its delivery
// count and the error. Payloads are never logged. A nil m or next gives
// next unchanged.
func (m *Middleware) Streams(next coord.Streams) coord.Streams {
	if m == nil || next == nil {
		return next
	}
	return &streams{m: m, next: next}
}

type streams struct {
	m    *Middleware
	next coord.Streams
}

var _ coord.Streams = (*streams)(nil)

// Unwrap returns the decorated Streams.
func (s *streams) Unwrap() coord.Streams { return s.next }

// As forwards to the decorated Streams (see coord.As).
func (s *streams) As(target any) bool { return coord.As(s.next, target) }

func (s *streams) Append(ctx context.Context, stream string, payload any) (string, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Append(ctx, stream, payload)
	}
	start := m.clock.Now()
	id, err := s.next.Append(ctx, stream, payload)
	m.done(ctx, obs.StreamAppend, start, err, func() []slog.Attr {
		return []slog.Attr{name("stream", stream), slog.String("id", id)}
	})
	return id, err
}

func (s *streams) Consume(ctx context.Context, stream, group string, fn func(context.Context, coord.StreamEntry) error, opts ...coord.ConsumeOption) (coord.Subscription, error) {
	m := s.m
	if !m.on(ctx) || fn == nil {
		return s.next.Consume(ctx, stream, group, fn, opts...)
	}
	handler := func(hctx context.Context, e coord.StreamEntry) error {
		err := fn(hctx, e)
		if err != nil {
			if lvl := m.failure.Level(); m.log.Enabled(hctx, lvl) {
				m.log.LogAttrs(hctx, lvl, msgStreamHandler, name("stream", e.Stream), name("group", group),
					slog.String("id", e.ID), slog.Int("deliveries", e.Deliveries), slog.String("error", err.Error()))
			}
		}
		return err
	}
	start := m.clock.Now()
	sub, err := s.next.Consume(ctx, stream, group, handler, opts...)
	m.done(ctx, obs.StreamConsume, start, err, func() []slog.Attr {
		return []slog.Attr{name("stream", stream), name("group", group)}
	})
	return sub, err
}

func (s *streams) Range(ctx context.Context, stream, from string, count int) ([]coord.StreamEntry, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Range(ctx, stream, from, count)
	}
	start := m.clock.Now()
	es, err := s.next.Range(ctx, stream, from, count)
	m.done(ctx, obs.StreamRange, start, err, func() []slog.Attr {
		return []slog.Attr{name("stream", stream), slog.String("from", from), slog.Int("count", count), slog.Int("entries", len(es))}
	})
	return es, err
}

func (s *streams) Info(ctx context.Context, stream string) (coord.StreamInfo, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Info(ctx, stream)
	}
	start := m.clock.Now()
	in, err := s.next.Info(ctx, stream)
	m.done(ctx, obs.StreamInfo, start, err, func() []slog.Attr {
		return []slog.Attr{name("stream", stream)}
	})
	return in, err
}

func (s *streams) DeadLetters(ctx context.Context, stream string, count int) ([]coord.StreamEntry, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.DeadLetters(ctx, stream, count)
	}
	start := m.clock.Now()
	es, err := s.next.DeadLetters(ctx, stream, count)
	m.done(ctx, obs.StreamDeadLetters, start, err, func() []slog.Attr {
		return []slog.Attr{name("stream", stream), slog.Int("entries", len(es))}
	})
	return es, err
}

func (s *streams) Trim(ctx context.Context, stream string, r coord.Retention) (int64, error) {
	m := s.m
	if !m.on(ctx) {
		return s.next.Trim(ctx, stream, r)
	}
	start := m.clock.Now()
	n, err := s.next.Trim(ctx, stream, r)
	m.done(ctx, obs.StreamTrim, start, err, func() []slog.Attr {
		return []slog.Attr{name("stream", stream), slog.Int64("dropped", n)}
	})
	return n, err
}
