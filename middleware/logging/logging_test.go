package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/coordmock"
	"github.com/cgn-bot/coord/internal/secret"
	"github.com/cgn-bot/coord/middleware/logging"
	"go.uber.org/goleak"

	"github.com/cgn-bot/coord/internal/coordtest"
	"go.uber.org/mock/gomock"
)

func TestMain(m *testing.M) {
	coordtest.DefaultParallel(coordtest.SuiteParallel)
	goleak.VerifyTestMain(m)
}

// capture is a slog handler that keeps every record, in JSON and in the
// text format, so a test can search all that was written.
type capture struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	records []slog.Record
	json    slog.Handler
	text    slog.Handler
	level   slog.Level
}

func newCapture(level slog.Level) *capture {
	c := &capture{level: level}
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	c.json = slog.NewJSONHandler(&c.buf, opts)
	c.text = slog.NewTextHandler(&c.buf, opts)
	return c
}

func (c *capture) Enabled(_ context.Context, l slog.Level) bool { return l >= c.level }
func (c *capture) Handle(ctx context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r.Clone())
	if err := c.json.Handle(ctx, r); err != nil {
		return err
	}
	return c.text.Handle(ctx, r)
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { panic("not used") }
func (c *capture) WithGroup(string) slog.Handler      { panic("not used") }

func (c *capture) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// find returns the records with message msg.
func (c *capture) find(msg string) []slog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []slog.Record
	for _, r := range c.records {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	return out
}

func attr(r slog.Record, key string) (slog.Value, bool) {
	var v slog.Value
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value, true
			return false
		}
		return true
	})
	return v, found
}

type mocks struct {
	backend  *coordmock.MockBackend
	locker   *coordmock.MockLocker
	sessions *coordmock.MockSessionStore
	inv      *coordmock.MockInvalidator
	bus      *coordmock.MockEventBus
}

func newMocks(t *testing.T) *mocks {
	ctrl := gomock.NewController(t)
	m := &mocks{
		backend:  coordmock.NewMockBackend(ctrl),
		locker:   coordmock.NewMockLocker(ctrl),
		sessions: coordmock.NewMockSessionStore(ctrl),
		inv:      coordmock.NewMockInvalidator(ctrl),
		bus:      coordmock.NewMockEventBus(ctrl),
	}
	m.backend.EXPECT().Locker().Return(m.locker).AnyTimes()
	m.backend.EXPECT().Sessions().Return(m.sessions).AnyTimes()
	m.backend.EXPECT().Invalidator().Return(m.inv).AnyTimes()
	m.backend.EXPECT().Events().Return(m.bus).AnyTimes()
	m.backend.EXPECT().InstanceID().Return("instance-1").AnyTimes()
	return m
}

func newLock(t *testing.T, resource, token string, fence int64) (*coordmock.MockLock, chan struct{}) {
	lk := coordmock.NewMockLock(gomock.NewController(t))
	done := make(chan struct{})
	lk.EXPECT().Done().Return(done).AnyTimes()
	lk.EXPECT().Resource().Return(resource).AnyTimes()
	lk.EXPECT().Token().Return(token).AnyTimes()
	lk.EXPECT().Fence().Return(fence).AnyTimes()
	return lk, done
}

// TestSecretsNeverInClear runs every kind of operation that handles a
// token or session data, successful and failing, at Debug level, and
// proves that no token and no piece of data appears in what was written,
// while the tags of the tokens do.
func TestSecretsNeverInClear(t *testing.T) {
	c := newCapture(slog.LevelDebug)
	mk := newMocks(t)
	b := logging.New(slog.New(c), nil).Backend(mk.backend)
	ctx := t.Context()

	lockToken := secret.LockToken()
	sessToken := secret.SessionToken()
	rotated := secret.SessionToken()
	handle := secret.Handle(sessToken)
	const dataValue = "4111-1111-1111-1111"     // a session data value
	const dataKey = "card"                      // data keys are not logged either
	const payload = "payload-never-logged-8d1f" // event payload and metadata
	data := map[string]any{dataKey: dataValue}
	stored := &coord.Session{
		ID: sessToken, Handle: handle, UserID: "u1",
		Data: map[string]json.RawMessage{dataKey: json.RawMessage(`"` + dataValue + `"`)},
	}

	// Locks: acquire, extend, TTL, release, a failed release, a loss.
	lk, _ := newLock(t, "nightly", lockToken, 42)
	mk.locker.EXPECT().Acquire(gomock.Any(), "nightly", gomock.Any()).Return(lk, nil)
	lk.EXPECT().Extend(gomock.Any(), gomock.Any()).Return(nil)
	lk.EXPECT().TTL(gomock.Any()).Return(time.Second, nil)
	lk.EXPECT().Release(gomock.Any()).Return(nil)
	l, err := b.Locker().Acquire(ctx, "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if l.Token() != lockToken {
		t.Error("the decorated lock changed the token")
	}
	_ = l.Extend(ctx, time.Minute)
	_, _ = l.TTL(ctx)
	_ = l.Release(ctx)

	lost, done := newLock(t, "hourly", lockToken, 43)
	mk.locker.EXPECT().Acquire(gomock.Any(), "hourly", gomock.Any()).Return(lost, nil)
	lost.EXPECT().Release(gomock.Any()).Return(errors.New("coord: lock not held: token mismatch"))
	l2, _ := b.Locker().Acquire(ctx, "hourly")
	close(done)
	_ = l2.Release(ctx)

	// Sessions: every method that takes a token or data.
	s := mk.sessions
	s.EXPECT().Create(gomock.Any(), "u1", gomock.Any()).Return(stored, nil)
	s.EXPECT().Get(gomock.Any(), sessToken).Return(stored, nil)
	s.EXPECT().Touch(gomock.Any(), sessToken).Return(stored, nil)
	s.EXPECT().Update(gomock.Any(), sessToken, gomock.Any()).Return(nil)
	s.EXPECT().Update(gomock.Any(), sessToken, gomock.Any()).Return(coord.ErrInvalid)
	s.EXPECT().Exists(gomock.Any(), sessToken).Return(true, nil)
	s.EXPECT().Extend(gomock.Any(), sessToken, gomock.Any()).Return(nil)
	rotatedSess := *stored
	rotatedSess.ID = rotated
	s.EXPECT().Rotate(gomock.Any(), sessToken).Return(&rotatedSess, nil)
	s.EXPECT().Get(gomock.Any(), sessToken).Return(nil, coord.ErrNotFound)
	s.EXPECT().Delete(gomock.Any(), rotated).Return(nil)
	s.EXPECT().ByUser(gomock.Any(), "u1").Return([]*coord.Session{{Handle: handle, UserID: "u1", Data: stored.Data}}, nil)
	s.EXPECT().Revoke(gomock.Any(), "u1", handle).Return(nil)
	s.EXPECT().Revoke(gomock.Any(), "u1", sessToken).Return(coord.ErrNotFound) // a token where a handle goes
	ss := b.Sessions()
	_, _ = ss.Create(ctx, "u1", data)
	_, _ = ss.Get(ctx, sessToken)
	_, _ = ss.Touch(ctx, sessToken)
	_ = ss.Update(ctx, sessToken, data)
	_ = ss.Update(ctx, sessToken, data)
	_, _ = ss.Exists(ctx, sessToken)
	_ = ss.Extend(ctx, sessToken, time.Hour)
	_, _ = ss.Rotate(ctx, sessToken)
	_, _ = ss.Get(ctx, sessToken)
	_ = ss.Delete(ctx, rotated)
	_, _ = ss.ByUser(ctx, "u1")
	_ = ss.Revoke(ctx, "u1", handle)
	_ = ss.Revoke(ctx, "u1", sessToken)

	// Invalidations and events carry metadata and payloads.
	mk.inv.EXPECT().Invalidate(gomock.Any(), "user:1", gomock.Any()).Return(nil)
	mk.bus.EXPECT().Publish(gomock.Any(), "topic", gomock.Any()).Return(nil)
	_ = b.Invalidator().Invalidate(ctx, "user:1", payload)
	_ = b.Events().Publish(ctx, "topic", payload)

	out := c.output()
	for name, s := range map[string]string{
		"lock token": lockToken, "session token": sessToken, "rotated session token": rotated,
		"session data value": dataValue, "session data key": `"` + dataKey + `"`, "payload": payload,
	} {
		if strings.Contains(out, s) {
			t.Errorf("the %s appears in the log", name)
		}
	}
	for name, s := range map[string]string{
		"lock token tag": secret.Redact(lockToken), "session token tag": secret.Redact(sessToken),
		"rotated token tag": secret.Redact(rotated), "handle": handle, "resource": "nightly",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("the %s does not appear in the log", name)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}

func TestLevels(t *testing.T) {
	c := newCapture(slog.LevelDebug)
	mk := newMocks(t)
	l := logging.New(slog.New(c), nil).Locker(mk.locker)
	ctx := t.Context()

	lk, done := newLock(t, "job", secret.LockToken(), 1)
	mk.locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(lk, nil)
	mk.locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(nil, coord.ErrNotAcquired)
	lk.EXPECT().Release(gomock.Any()).Return(coord.ErrExpired)

	got, err := l.Acquire(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "job"); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("Acquire = %v; want ErrNotAcquired", err)
	}
	close(done)
	if err := got.Release(ctx); !errors.Is(err, coord.ErrExpired) {
		t.Fatalf("Release = %v; want ErrExpired", err)
	}

	acq := c.find("coord lock_acquire")
	if len(acq) != 2 {
		t.Fatalf("%d acquire records; want 2", len(acq))
	}
	if acq[0].Level != slog.LevelDebug {
		t.Errorf("success logged at %v; want DEBUG", acq[0].Level)
	}
	if acq[1].Level != slog.LevelDebug {
		t.Errorf("not acquired (an expected outcome) logged at %v; want DEBUG", acq[1].Level)
	}
	for _, key := range []string{"op", "outcome", "duration"} {
		if _, ok := attr(acq[1], key); !ok {
			t.Errorf("failure record has no %s", key)
		}
	}
	if v, _ := attr(acq[1], "outcome"); v.String() != "not_acquired" {
		t.Errorf("outcome = %v; want not_acquired", v)
	}
	if v, _ := attr(acq[1], "error"); !strings.Contains(v.String(), "not acquired") {
		t.Errorf("error = %q", v)
	}
	lostRecs := c.find("coord lease lost")
	if len(lostRecs) != 1 || lostRecs[0].Level != slog.LevelError {
		t.Fatalf("lease lost records = %v; want one at ERROR", lostRecs)
	}
	if v, _ := attr(lostRecs[0], "resource"); v.String() != "job" {
		t.Errorf("lease lost resource = %v", v)
	}
	rel := c.find("coord lock_release")
	if len(rel) != 1 || rel[0].Level != slog.LevelDebug {
		t.Errorf("release records = %v; want one at DEBUG (the loss is the ERROR record)", rel)
	}
}

func TestLevelOptions(t *testing.T) {
	c := newCapture(slog.LevelDebug)
	mk := newMocks(t)
	var lv slog.LevelVar
	lv.Set(slog.LevelInfo)
	inv := logging.New(slog.New(c), &logging.Options{Success: &lv, Failure: slog.LevelError}).Invalidator(mk.inv)
	mk.inv.EXPECT().Invalidate(gomock.Any(), "k", gomock.Any()).Return(nil)
	mk.inv.EXPECT().Invalidate(gomock.Any(), "k", gomock.Any()).Return(coord.ErrUnavailable)
	_ = inv.Invalidate(t.Context(), "k", nil)
	_ = inv.Invalidate(t.Context(), "k", nil)
	recs := c.find("coord invalidate")
	if len(recs) != 2 || recs[0].Level != slog.LevelInfo || recs[1].Level != slog.LevelError {
		t.Errorf("records = %v; want INFO then ERROR", recs)
	}
}

// TestDisabled checks that nothing is written below the logger's level
// and that a failure is still written at Warn when Debug is off.
func TestDisabled(t *testing.T) {
	c := newCapture(slog.LevelInfo)
	mk := newMocks(t)
	b := logging.New(slog.New(c), nil).Backend(mk.backend)
	mk.sessions.EXPECT().Get(gomock.Any(), "a").Return(&coord.Session{}, nil)
	mk.sessions.EXPECT().Get(gomock.Any(), "b").Return(nil, coord.ErrUnavailable)
	mk.sessions.EXPECT().Get(gomock.Any(), "c").Return(nil, coord.ErrNotFound)
	_, _ = b.Sessions().Get(t.Context(), "a")
	_, _ = b.Sessions().Get(t.Context(), "b")
	_, _ = b.Sessions().Get(t.Context(), "c")
	recs := c.find("coord session_get")
	if len(recs) != 1 || recs[0].Level != slog.LevelWarn {
		t.Errorf("records = %v; want the failure only", recs)
	}

	off := newCapture(slog.LevelError + 1)
	lk, _ := newLock(t, "r", "t", 1)
	mk.locker.EXPECT().Acquire(gomock.Any(), "r", gomock.Any()).Return(lk, nil)
	got, _ := logging.New(slog.New(off), nil).Locker(mk.locker).Acquire(t.Context(), "r")
	if got != coord.Lock(lk) {
		t.Error("with every level off, Acquire still decorated the lock")
	}
	if out := off.output(); out != "" {
		t.Errorf("wrote %q with every level off", out)
	}
}

func TestPurgeLogged(t *testing.T) {
	c := newCapture(slog.LevelDebug)
	mk := newMocks(t)
	inv := logging.New(slog.New(c), nil).Invalidator(mk.inv)
	var handler func(coord.Invalidation)
	mk.inv.EXPECT().Subscribe(gomock.Any(), gomock.Any()).DoAndReturn(
		func(_ context.Context, fn func(coord.Invalidation), _ ...coord.SubscribeOption) (coord.Subscription, error) {
			handler = fn
			return nil, nil
		})
	n := 0
	if _, err := inv.Subscribe(t.Context(), func(coord.Invalidation) { n++ }); err != nil {
		t.Fatal(err)
	}
	handler(coord.Invalidation{Kind: coord.KeyInvalidation, Key: "k"})
	handler(coord.Invalidation{Kind: coord.PurgeAll, Reason: "overflow"})
	if n != 2 {
		t.Errorf("handler called %d times; want 2", n)
	}
	recs := c.find("coord invalidation purge")
	if len(recs) != 1 || recs[0].Level != slog.LevelWarn {
		t.Fatalf("purge records = %v; want one at WARN", recs)
	}
	if v, _ := attr(recs[0], "reason"); v.String() != "overflow" {
		t.Errorf("reason = %v", v)
	}
	// The purge that ends a gap is recovery: INFO, not WARN.
	handler(coord.Invalidation{Kind: coord.PurgeAll, Reason: coord.ReasonReconnect})
	recs = c.find("coord invalidation purge")
	if len(recs) != 2 || recs[1].Level != slog.LevelInfo {
		t.Fatalf("purge records = %v; want the reconnect one at INFO", recs)
	}
}

func TestNotConfigured(t *testing.T) {
	m := logging.New(nil, nil)
	if m != nil {
		t.Fatalf("New(nil) = %v; want nil", m)
	}
	mk := newMocks(t)
	if m.Backend(mk.backend) != coord.Backend(mk.backend) ||
		m.Locker(mk.locker) != coord.Locker(mk.locker) ||
		m.Sessions(mk.sessions) != coord.SessionStore(mk.sessions) ||
		m.Invalidator(mk.inv) != coord.Invalidator(mk.inv) ||
		m.Events(mk.bus) != coord.EventBus(mk.bus) {
		t.Error("a nil Middleware changed what it decorates")
	}
}

type asBackend struct{ *coordmock.MockBackend }

func (asBackend) As(target any) bool {
	if p, ok := target.(*int); ok {
		*p = 7
		return true
	}
	return false
}

func TestUnwrapAndAs(t *testing.T) {
	mk := newMocks(t)
	inner := asBackend{mk.backend}
	b := logging.New(slog.New(newCapture(slog.LevelDebug)), nil).Backend(inner)
	var n int
	if !coord.As(b, &n) || n != 7 {
		t.Error("coord.As does not reach through the decorator")
	}
	if u, ok := b.(interface{ Unwrap() coord.Backend }); !ok || u.Unwrap() != coord.Backend(inner) {
		t.Error("Unwrap does not return the decorated backend")
	}
	if u, ok := b.Sessions().(interface{ Unwrap() coord.SessionStore }); !ok || u.Unwrap() != coord.SessionStore(mk.sessions) {
		t.Error("Sessions().Unwrap does not return the decorated store")
	}
}

// The decorators have the shape of middleware.
var (
	_ func(coord.Backend) coord.Backend           = (*logging.Middleware)(nil).Backend
	_ func(coord.Locker) coord.Locker             = (*logging.Middleware)(nil).Locker
	_ func(coord.SessionStore) coord.SessionStore = (*logging.Middleware)(nil).Sessions
	_ func(coord.Invalidator) coord.Invalidator   = (*logging.Middleware)(nil).Invalidator
	_ func(coord.EventBus) coord.EventBus         = (*logging.Middleware)(nil).Events
)
