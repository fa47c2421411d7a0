package logging_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/mock/gomock"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/secret"
	"github.com/cgn-bot/coord/middleware/logging"
)

// TestLevelPerOutcome checks the level of an operation's record for each
// kind of outcome, as docs/LOGGING.md lists them: expected outcomes of
// normal running at Debug, failures at Warn.
func TestLevelPerOutcome(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want slog.Level
	}{
		{"ok", nil, slog.LevelDebug},
		{"not acquired, tried once", coord.ErrNotAcquired, slog.LevelDebug},
		{"not acquired, waited until the deadline", errors.Join(coord.ErrNotAcquired, context.DeadlineExceeded), slog.LevelDebug},
		{"canceled by the caller", fmt.Errorf("acquire: %w", context.Canceled), slog.LevelDebug},
		{"backend unavailable", fmt.Errorf("%w: dial tcp: connection refused", coord.ErrUnavailable), slog.LevelWarn},
		{"deadline exceeded", context.DeadlineExceeded, slog.LevelWarn},
		{"invalid", coord.ErrInvalid, slog.LevelWarn},
		{"closed", coord.ErrClosed, slog.LevelWarn},
		{"other", errors.New("boom"), slog.LevelWarn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cp := newCapture(slog.LevelDebug)
			mk := newMocks(t)
			if c.err == nil {
				lk, _ := newLock(t, "job", secret.LockToken(), 1)
				mk.locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(lk, nil)
			} else {
				mk.locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(nil, c.err)
			}
			_, _ = logging.New(slog.New(cp), nil).Locker(mk.locker).Acquire(t.Context(), "job")
			recs := cp.find("coord lock_acquire")
			if len(recs) != 1 || recs[0].Level != c.want {
				t.Errorf("records %v; want one at %v", recs, c.want)
			}
		})
	}
}

func TestLevelSessionNotFoundAndExpiredRelease(t *testing.T) {
	cp := newCapture(slog.LevelDebug)
	mk := newMocks(t)
	b := logging.New(slog.New(cp), nil).Backend(mk.backend)
	ctx := t.Context()
	mk.sessions.EXPECT().Touch(gomock.Any(), "gone").Return(nil, coord.ErrNotFound)
	mk.sessions.EXPECT().Update(gomock.Any(), "down", gomock.Any()).Return(coord.ErrUnavailable)
	_, _ = b.Sessions().Touch(ctx, "gone")
	_ = b.Sessions().Update(ctx, "down", map[string]any{"k": 1})
	if r := cp.find("coord session_touch"); len(r) != 1 || r[0].Level != slog.LevelDebug {
		t.Errorf("Touch of an expired session: %v; want one record at DEBUG", r)
	}
	if r := cp.find("coord session_update"); len(r) != 1 || r[0].Level != slog.LevelWarn {
		t.Errorf("Update with the backend down: %v; want one record at WARN", r)
	}

	// A Release after expiry: the operation's record is an expected
	// outcome, the loss of the lease is one ERROR record.
	lk, done := newLock(t, "job", secret.LockToken(), 7)
	mk.locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(lk, nil)
	lk.EXPECT().Release(gomock.Any()).Return(fmt.Errorf("%w: release", coord.ErrExpired))
	got, err := b.Locker().Acquire(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	close(done)
	_ = got.Release(ctx)
	if r := cp.find("coord lock_release"); len(r) != 1 || r[0].Level != slog.LevelDebug {
		t.Errorf("Release after expiry: %v; want one record at DEBUG", r)
	}
	if r := cp.find("coord lease lost"); len(r) != 1 || r[0].Level != slog.LevelError {
		t.Errorf("lease lost: %v; want one record at ERROR", r)
	}
}

func TestExpectedLevelOption(t *testing.T) {
	cp := newCapture(slog.LevelInfo)
	mk := newMocks(t)
	s := logging.New(slog.New(cp), &logging.Options{Expected: slog.LevelInfo}).Sessions(mk.sessions)
	mk.sessions.EXPECT().Get(gomock.Any(), "gone").Return(nil, coord.ErrNotFound)
	_, _ = s.Get(t.Context(), "gone")
	if r := cp.find("coord session_get"); len(r) != 1 || r[0].Level != slog.LevelInfo {
		t.Errorf("records %v; want one at INFO", r)
	}
}

// TestHealthErrorTextOnce checks that the record of a Health that is not
// healthy carries the backend's Error as it is, without a second "backend
// unavailable" in front of it.
func TestHealthErrorTextOnce(t *testing.T) {
	const text = "coord: backend unavailable: coord/redis: ping: dial tcp 127.0.0.1:6379: connect: connection refused"
	cp := newCapture(slog.LevelDebug)
	mk := newMocks(t)
	mk.backend.EXPECT().Health(gomock.Any()).Return(coord.Health{Status: coord.Unhealthy, Backend: "redis", Error: text, Sessions: -1})
	mk.backend.EXPECT().Health(gomock.Any()).Return(coord.Health{Status: coord.Degraded, Backend: "redis", Sessions: -1})
	b := logging.New(slog.New(cp), nil).Backend(mk.backend)
	_ = b.Health(t.Context())
	_ = b.Health(t.Context())
	recs := cp.find("coord health")
	if len(recs) != 2 {
		t.Fatalf("%d health records; want 2", len(recs))
	}
	if v, _ := attr(recs[0], "error"); v.String() != text {
		t.Errorf("error = %q; want exactly %q", v, text)
	}
	if v, _ := attr(recs[0], "outcome"); v.String() != "unavailable" || recs[0].Level != slog.LevelWarn {
		t.Errorf("outcome %v at %v; want unavailable at WARN", v, recs[0].Level)
	}
	if v, _ := attr(recs[1], "error"); v.String() != coord.ErrUnavailable.Error() {
		t.Errorf("error of a degraded Health without a reason = %q; want %q", v, coord.ErrUnavailable.Error())
	}
	if strings.Count(cp.output(), "backend unavailable: coord: backend unavailable") != 0 {
		t.Errorf("the error text repeats itself:\n%s", cp.output())
	}
}

// TestHealthWarnsOnChange checks that a probe polling Health during an
// outage gives one warning when the status changes, not one per call.
func TestHealthWarnsOnChange(t *testing.T) {
	cp := newCapture(slog.LevelDebug)
	mk := newMocks(t)
	down := coord.Health{Status: coord.Unhealthy, Backend: "redis", Error: "coord: backend unavailable: coord/redis: ping: refused", Sessions: -1}
	slow := coord.Health{Status: coord.Degraded, Backend: "redis", Error: "coord/redis: subscriber connection reconnecting", Sessions: -1}
	up := coord.Health{Status: coord.Healthy, Backend: "redis", Sessions: 0}
	seq := []coord.Health{up, down, down, down, slow, slow, up, down}
	for _, h := range seq {
		mk.backend.EXPECT().Health(gomock.Any()).Return(h)
	}
	b := logging.New(slog.New(cp), nil).Backend(mk.backend)
	for range seq {
		_ = b.Health(t.Context())
	}
	recs := cp.find("coord health")
	if len(recs) != len(seq) {
		t.Fatalf("%d records; want %d", len(recs), len(seq))
	}
	want := []slog.Level{slog.LevelDebug, slog.LevelWarn, slog.LevelDebug, slog.LevelDebug, slog.LevelWarn, slog.LevelDebug, slog.LevelDebug, slog.LevelWarn}
	for i, r := range recs {
		if r.Level != want[i] {
			t.Errorf("record %d (%s) at %v; want %v", i, seq[i].Status, r.Level, want[i])
		}
	}
	if v, _ := attr(recs[4], "previous"); v.String() != "unhealthy" {
		t.Errorf("previous = %q on the change to degraded; want unhealthy", v)
	}
}
