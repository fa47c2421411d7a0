package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

func sessionCases() []testCase {
	return []testCase{
		{name: "TokenShape", run: testTokenShape},
		{name: "ForgedTokenNotFound", run: testForgedTokenNotFound},
		{name: "MalformedTokenInvalid", run: testMalformedTokenInvalid},
		{name: "CRUD", run: testSessionCRUD},
		{name: "SharedAcrossInstances", run: testSessionShared},
		{name: "GetDoesNotTouch", run: testGetDoesNotTouch},
		{name: "TouchSlidesExpiry", run: testTouchSlides},
		{name: "IdleExpiry", run: testIdleExpiry},
		{name: "LifetimeCapsTouchAndExtend", run: testLifetimeCaps},
		{name: "Extend", run: testSessionExtend},
		{name: "UpdateMerges", run: testUpdateMerges},
		{name: "ConcurrentMergeLosesNothing", run: testConcurrentMerge},
		{name: "UpdateLimitsTotalData", run: testUpdateLimitsTotal},
		{name: "ValuesRoundTrip", run: testValuesRoundTrip},
		{name: "NoAliasing", run: testNoAliasing},
		{name: "Rotate", run: testRotate},
		{name: "ConcurrentRotateOnce", run: testConcurrentRotateOnce},
		{name: "NoResurrectionRacingDelete", run: testNoResurrection},
		{name: "ByUser", run: testByUser},
		{name: "Revoke", run: testRevoke},
		{name: "DeleteByUser", run: testDeleteByUser},
		{name: "CountAndStats", run: testCountAndStats},
		{name: "ListsRightAfterExpiry", run: testListsAfterExpiry},
		{name: "ConcurrentCreate", run: testConcurrentCreate},
		{name: "BadInput", run: testSessionBadInput},
	}
}

func countOf(t *testing.T, s coord.SessionStore) int64 {
	t.Helper()
	n, err := s.Count(ctxOf(t))
	must(t, err, "Count")
	return n
}

// near reports whether a and b are at most d apart.
func near(a, b time.Time, d time.Duration) bool {
	diff := a.Sub(b)
	return diff <= d && diff >= -d
}

func testTokenShape(t *testing.T, h Harness) {
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	seen := map[string]bool{}
	handles := map[string]bool{}
	for i := 0; i < 100; i++ {
		s, err := ins[i%2].Sessions().Create(ctx, "u", nil)
		must(t, err, "Create")
		if !secret.ValidSessionToken(s.ID) {
			t.Fatalf("token %s does not have the shape of a 256-bit session token", secret.Redact(s.ID))
		}
		if s.Handle == "" || s.Handle == s.ID || strings.Contains(s.ID, s.Handle) || strings.Contains(s.Handle, s.ID[len(secret.SessionTokenPrefix):]) {
			t.Fatalf("Handle must name the session without revealing its token")
		}
		if seen[s.ID] || handles[s.Handle] {
			t.Fatalf("a token or handle repeated after %d sessions", i+1)
		}
		seen[s.ID], handles[s.Handle] = true, true
		// The handle is not a token.
		if _, err := ins[0].Sessions().Get(ctx, s.Handle); err == nil {
			t.Fatalf("Get with a session's handle succeeded")
		}
	}
	list, err := ins[0].Sessions().ByUser(ctx, "u")
	must(t, err, "ByUser")
	if len(list) != 100 {
		t.Fatalf("ByUser returned %d sessions, want 100", len(list))
	}
	for _, s := range list {
		if s.ID != "" {
			t.Fatalf("ByUser returned a token")
		}
		if !handles[s.Handle] {
			t.Fatalf("ByUser returned a handle Create did not")
		}
	}
}

func testForgedTokenNotFound(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	s := ins[0].Sessions()
	real, err := s.Create(ctx, "u", map[string]any{"a": 1})
	must(t, err, "Create")
	forged := secret.SessionToken()
	// A token one character off a real one is well-formed but not issued.
	b := []byte(real.ID)
	last := len(b) - 2
	if b[last] == 'A' {
		b[last] = 'B'
	} else {
		b[last] = 'A'
	}
	for _, tok := range []string{forged, string(b)} {
		if !secret.ValidSessionToken(tok) {
			t.Fatalf("test bug: token not well-formed")
		}
		notFound := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, coord.ErrNotFound) {
				t.Errorf("%s with a token never issued: %v, want ErrNotFound", what, err)
			}
		}
		_, err := s.Get(ctx, tok)
		notFound("Get", err)
		_, err = s.Touch(ctx, tok)
		notFound("Touch", err)
		notFound("Update", s.Update(ctx, tok, map[string]any{"adopted": true}))
		notFound("Extend", s.Extend(ctx, tok, tm.held))
		_, err = s.Rotate(ctx, tok)
		notFound("Rotate", err)
		if ok, err := s.Exists(ctx, tok); err != nil || ok {
			t.Errorf("Exists with a token never issued = %v, %v", ok, err)
		}
		if err := s.Delete(ctx, tok); err != nil {
			t.Errorf("Delete with a token never issued: %v, want nil", err)
		}
		// Still not adopted after all that.
		if _, err := ins[1].Sessions().Get(ctx, tok); !errors.Is(err, coord.ErrNotFound) {
			t.Errorf("a token never issued was adopted: Get = %v", err)
		}
	}
	if n := countOf(t, s); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
	got, err := s.Get(ctx, real.ID)
	must(t, err, "Get")
	if _, ok := got.Data["adopted"]; ok || len(got.Data) != 1 {
		t.Errorf("operations on forged tokens changed a real session: %v", got.Data)
	}
}

func testMalformedTokenInvalid(t *testing.T, h Harness) {
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	s := in.Sessions()
	real, err := s.Create(ctx, "u", map[string]any{"a": 1})
	must(t, err, "Create")
	bad := map[string]string{
		"empty":        "",
		"short":        "abc",
		"wrong prefix": "s9." + real.ID[len(secret.SessionTokenPrefix):],
		"no prefix":    real.ID[len(secret.SessionTokenPrefix):],
		"too long":     real.ID + "A",
		"truncated":    real.ID[:len(real.ID)-1],
		"bad alphabet": real.ID[:len(real.ID)-1] + "+",
		"control char": real.ID[:len(real.ID)-1] + "\n",
		"handle":       real.Handle,
		"huge":         strings.Repeat("s", 4096),
	}
	for label, tok := range bad {
		invalid := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, coord.ErrInvalid) {
				t.Errorf("%s with a malformed token (%s): %v, want ErrInvalid", what, label, err)
			}
		}
		_, err := s.Get(ctx, tok)
		invalid("Get", err)
		_, err = s.Touch(ctx, tok)
		invalid("Touch", err)
		invalid("Update", s.Update(ctx, tok, map[string]any{"b": 1}))
		invalid("Extend", s.Extend(ctx, tok, tm.held))
		_, err = s.Rotate(ctx, tok)
		invalid("Rotate", err)
		_, err = s.Exists(ctx, tok)
		invalid("Exists", err)
		if err := s.Delete(ctx, tok); err != nil && !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Delete with a malformed token (%s): %v, want nil or ErrInvalid", label, err)
		}
	}
	got, err := s.Get(ctx, real.ID)
	must(t, err, "Get")
	if len(got.Data) != 1 {
		t.Errorf("malformed tokens changed a session: %v", got.Data)
	}
}

func testSessionCRUD(t *testing.T, h Harness) {
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	s := in.Sessions()
	before := time.Now()
	created, err := s.Create(ctx, "user-1", map[string]any{"name": "Ann", "n": 3, "skip": nil}, coord.WithIdleTTL(tm.held))
	must(t, err, "Create")
	if created.UserID != "user-1" {
		t.Errorf("UserID = %q", created.UserID)
	}
	if !near(created.CreatedAt, before, tm.drift) || !near(created.LastAccessedAt, created.CreatedAt, tm.stamp) {
		t.Errorf("CreatedAt %v / LastAccessedAt %v not about now", created.CreatedAt, created.LastAccessedAt)
	}
	if !near(created.ExpiresAt, created.CreatedAt.Add(tm.held), tm.stamp) {
		t.Errorf("ExpiresAt = %v, want CreatedAt + %v", created.ExpiresAt, tm.held)
	}
	if !created.Deadline.IsZero() {
		t.Errorf("Deadline = %v without a lifetime, want zero", created.Deadline)
	}
	want := map[string]string{"name": `"Ann"`, "n": `3`}
	checkData(t, "Create's result", created.Data, want)
	got, err := s.Get(ctx, created.ID)
	must(t, err, "Get")
	if got.ID != created.ID || got.Handle != created.Handle || got.UserID != "user-1" {
		t.Errorf("Get returned ID/Handle/UserID that differ from Create's")
	}
	if !got.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("Get's CreatedAt %v differs from Create's %v", got.CreatedAt, created.CreatedAt)
	}
	checkData(t, "Get", got.Data, want)
	if ok, err := s.Exists(ctx, created.ID); err != nil || !ok {
		t.Errorf("Exists = %v, %v", ok, err)
	}
	must(t, s.Update(ctx, created.ID, map[string]any{"n": 4, "new": []int{1, 2}}), "Update")
	got, err = s.Get(ctx, created.ID)
	must(t, err, "Get")
	checkData(t, "Get after Update", got.Data, map[string]string{"name": `"Ann"`, "n": `4`, "new": `[1,2]`})
	must(t, s.Delete(ctx, created.ID), "Delete")
	if _, err := s.Get(ctx, created.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if ok, err := s.Exists(ctx, created.ID); err != nil || ok {
		t.Errorf("Exists after Delete = %v, %v", ok, err)
	}
	if err := s.Update(ctx, created.ID, map[string]any{"x": 1}); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Update after Delete: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, created.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Update after Delete resurrected the session")
	}
	must(t, s.Delete(ctx, created.ID), "Delete of a deleted session")
	if n := countOf(t, s); n != 0 {
		t.Errorf("Count = %d after Delete, want 0", n)
	}
	var d struct{ A int }
	if err := got.Decode("missing", &d); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Decode of a missing field: %v, want ErrNotFound", err)
	}
}

func checkData(t *testing.T, what string, got map[string]json.RawMessage, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: data has %d fields %v, want %d %v", what, len(got), rawKeys(got), len(want), want)
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("%s: field %q = %s, want %s", what, k, got[k], v)
		}
	}
}

func rawKeys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func testSessionShared(t *testing.T, h Harness) {
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	s, err := ins[0].Sessions().Create(ctx, "u", map[string]any{"a": 1})
	must(t, err, "Create")
	got, err := ins[1].Sessions().Get(ctx, s.ID)
	must(t, err, "Get on another instance")
	checkData(t, "Get on another instance", got.Data, map[string]string{"a": "1"})
	must(t, ins[2].Sessions().Update(ctx, s.ID, map[string]any{"b": 2}), "Update on a third instance")
	got, err = ins[0].Sessions().Get(ctx, s.ID)
	must(t, err, "Get")
	checkData(t, "Get after a remote Update", got.Data, map[string]string{"a": "1", "b": "2"})
	must(t, ins[1].Sessions().Delete(ctx, s.ID), "Delete")
	if _, err := ins[2].Sessions().Get(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Get after a remote Delete: %v", err)
	}
}

func testGetDoesNotTouch(t *testing.T, h Harness) {
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	s, err := in.Sessions().Create(ctx, "u", nil, coord.WithIdleTTL(tm.held))
	must(t, err, "Create")
	hold(ctx, tm.apart)
	_, err = in.Sessions().Get(ctx, s.ID)
	must(t, err, "Get")
	if _, err := in.Sessions().Exists(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	got, err := in.Sessions().Get(ctx, s.ID)
	must(t, err, "Get")
	if !got.LastAccessedAt.Equal(s.LastAccessedAt) || !got.ExpiresAt.Equal(s.ExpiresAt) {
		t.Errorf("Get/Exists touched the session: LastAccessedAt %v -> %v, ExpiresAt %v -> %v",
			s.LastAccessedAt, got.LastAccessedAt, s.ExpiresAt, got.ExpiresAt)
	}
	touched, err := in.Sessions().Touch(ctx, s.ID)
	must(t, err, "Touch")
	if !touched.LastAccessedAt.After(s.LastAccessedAt) || !touched.ExpiresAt.After(s.ExpiresAt) {
		t.Errorf("Touch %v later did not move LastAccessedAt (%v -> %v) and ExpiresAt (%v -> %v)", tm.apart,
			s.LastAccessedAt, touched.LastAccessedAt, s.ExpiresAt, touched.ExpiresAt)
	}
	if touched.ID != s.ID {
		t.Errorf("Touch returned another ID")
	}
	if !touched.CreatedAt.Equal(s.CreatedAt) {
		t.Errorf("Touch changed CreatedAt")
	}
}

func testTouchSlides(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	idle := tm.idle
	s, err := ins[0].Sessions().Create(ctx, "u", map[string]any{"a": 1}, coord.WithIdleTTL(idle))
	must(t, err, "Create")
	prev := s
	start := time.Now()
	lastTouch := start // before the previous touch (or the creation) was asked for
	stalls := 0
	for time.Since(start) < 3*idle {
		hold(ctx, idle/10)
		asked := time.Now()
		got, err := ins[1].Sessions().Touch(ctx, s.ID)
		if errors.Is(err, coord.ErrNotFound) && asked.Sub(lastTouch) >= idle && stalls < 3 {
			// The machine stalled past the idle TTL between two touches:
			// the session rightly expired. Start again with a new one.
			stalls++
			t.Logf("stalled %v between touches (idle TTL %v): a new session", asked.Sub(lastTouch), idle)
			s, err = ins[0].Sessions().Create(ctx, "u", map[string]any{"a": 1}, coord.WithIdleTTL(idle))
			must(t, err, "Create")
			prev, start, lastTouch = s, time.Now(), time.Now()
			continue
		}
		if err != nil {
			t.Fatalf("Touch %v after creation with idle TTL %v (%v after the previous touch was asked): %v", time.Since(start), idle, asked.Sub(lastTouch), err)
		}
		lastTouch = asked
		if got.LastAccessedAt.Before(prev.LastAccessedAt) || !got.ExpiresAt.After(prev.ExpiresAt) {
			t.Fatalf("Touch did not slide: LastAccessedAt %v -> %v, ExpiresAt %v -> %v",
				prev.LastAccessedAt, got.LastAccessedAt, prev.ExpiresAt, got.ExpiresAt)
		}
		if !near(got.ExpiresAt, got.LastAccessedAt.Add(idle), tm.stamp) {
			t.Fatalf("ExpiresAt %v is not LastAccessedAt %v + idle TTL", got.ExpiresAt, got.LastAccessedAt)
		}
		prev = got
	}
	if !prev.LastAccessedAt.After(s.LastAccessedAt) {
		t.Errorf("LastAccessedAt did not move")
	}
	got, err := ins[0].Sessions().Get(ctx, s.ID)
	must(t, err, "Get")
	if !got.LastAccessedAt.Equal(prev.LastAccessedAt) {
		t.Errorf("another instance sees LastAccessedAt %v, want %v", got.LastAccessedAt, prev.LastAccessedAt)
	}
	if !got.ExpiresAt.Equal(prev.ExpiresAt) {
		t.Errorf("another instance sees ExpiresAt %v, want %v", got.ExpiresAt, prev.ExpiresAt)
	}
}

// expiresWithin waits until id is gone from s, at most tm.gone after its
// ExpiresAt, and not before (tm.early aside).
func expiresWithin(t *testing.T, tm timing, s coord.SessionStore, sess *coord.Session) {
	t.Helper()
	ctx := ctxOf(t)
	slack := tm.gone
	if _, err := s.Get(ctx, sess.ID); err != nil && time.Now().Before(sess.ExpiresAt.Add(-tm.early)) {
		t.Fatalf("session gone before its ExpiresAt: %v", err)
	}
	eventually(t, time.Until(sess.ExpiresAt)+slack, func() bool {
		_, err := s.Get(ctx, sess.ID)
		return errors.Is(err, coord.ErrNotFound)
	}, "session expires at %v (+%v)", sess.ExpiresAt, slack)
}

func testIdleExpiry(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	s, err := ins[0].Sessions().Create(ctx, "u", map[string]any{"a": 1}, coord.WithIdleTTL(tm.lease))
	must(t, err, "Create")
	keep, err := ins[0].Sessions().Create(ctx, "u", nil, coord.WithIdleTTL(tm.held))
	must(t, err, "Create")
	if ok, err := ins[1].Sessions().Exists(ctx, s.ID); err != nil || !ok {
		t.Fatalf("Exists right after Create = %v, %v", ok, err)
	}
	expiresWithin(t, tm, ins[1].Sessions(), s)
	st := ins[1].Sessions()
	if ok, err := st.Exists(ctx, s.ID); err != nil || ok {
		t.Errorf("Exists after expiry = %v, %v", ok, err)
	}
	if _, err := st.Touch(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Touch after expiry: %v, want ErrNotFound", err)
	}
	if err := st.Update(ctx, s.ID, map[string]any{"b": 1}); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Update after expiry: %v, want ErrNotFound", err)
	}
	if err := st.Extend(ctx, s.ID, tm.held); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Extend after expiry: %v, want ErrNotFound", err)
	}
	if _, err := st.Rotate(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Rotate after expiry: %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("an expired session came back: %v", err)
	}
	if _, err := st.Get(ctx, keep.ID); err != nil {
		t.Errorf("a live session is gone: %v", err)
	}
}

func testLifetimeCaps(t *testing.T, h Harness) {
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	st := in.Sessions()
	idle, life := tm.lease, 2*tm.lease
	s, err := st.Create(ctx, "u", map[string]any{"a": 1}, coord.WithIdleTTL(idle), coord.WithLifetime(life))
	must(t, err, "Create")
	if !near(s.Deadline, s.CreatedAt.Add(life), tm.stamp) {
		t.Fatalf("Deadline = %v, want CreatedAt %v + %v", s.Deadline, s.CreatedAt, life)
	}
	must(t, st.Extend(ctx, s.ID, tm.held), "Extend")
	got, err := st.Get(ctx, s.ID)
	must(t, err, "Get")
	if got.ExpiresAt.After(s.Deadline) {
		t.Errorf("Extend(%v) moved ExpiresAt %v past the Deadline %v", tm.held, got.ExpiresAt, s.Deadline)
	}
	if !got.Deadline.Equal(s.Deadline) {
		t.Errorf("Extend changed the Deadline from %v to %v", s.Deadline, got.Deadline)
	}
	// Touch all along: the session still ends at its deadline.
	for {
		hold(ctx, tm.poll)
		got, err := st.Touch(ctx, s.ID)
		if errors.Is(err, coord.ErrNotFound) {
			break
		}
		must(t, err, "Touch")
		if got.ExpiresAt.After(s.Deadline) {
			t.Fatalf("Touch moved ExpiresAt %v past the Deadline %v", got.ExpiresAt, s.Deadline)
		}
		if time.Now().After(s.Deadline.Add(tm.gone)) {
			t.Fatalf("Touch still succeeds %v after the session's Deadline %v", tm.gone, s.Deadline)
		}
	}
	if time.Now().Before(s.Deadline.Add(-tm.early)) {
		t.Errorf("session ended at %v, before its Deadline %v while touched", time.Now(), s.Deadline)
	}
	if err := st.Extend(ctx, s.ID, tm.held); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Extend past the Deadline: %v, want ErrNotFound", err)
	}
}

func testSessionExtend(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	s, err := ins[0].Sessions().Create(ctx, "u", nil, coord.WithIdleTTL(tm.short))
	must(t, err, "Create")
	must(t, ins[1].Sessions().Extend(ctx, s.ID, tm.held), "Extend")
	got, err := ins[0].Sessions().Get(ctx, s.ID)
	must(t, err, "Get")
	if !near(got.ExpiresAt, time.Now().Add(tm.held), tm.drift) {
		t.Errorf("ExpiresAt after Extend(%v) = %v, want about %v", tm.held, got.ExpiresAt, time.Now().Add(tm.held))
	}
	hold(ctx, 3*tm.short) // past the first idle TTL
	if _, err := ins[0].Sessions().Get(ctx, s.ID); err != nil {
		t.Errorf("an extended session expired at its first idle TTL: %v", err)
	}
	// Extend may shorten, too.
	must(t, ins[1].Sessions().Extend(ctx, s.ID, tm.short), "Extend")
	got, err = ins[0].Sessions().Get(ctx, s.ID)
	if err == nil {
		expiresWithin(t, tm, ins[0].Sessions(), got)
	}
}

func testUpdateMerges(t *testing.T, h Harness) {
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	st := in.Sessions()
	s, err := st.Create(ctx, "u", map[string]any{"a": 1, "b": "x", "c": true}, coord.WithIdleTTL(tm.held))
	must(t, err, "Create")
	hold(ctx, tm.apart)
	must(t, st.Update(ctx, s.ID, map[string]any{"b": "y", "d": map[string]any{"e": 1}}), "Update")
	must(t, st.Update(ctx, s.ID, map[string]any{"a": nil, "zz": nil}), "Update with nil")
	must(t, st.Update(ctx, s.ID, map[string]any{"c": json.RawMessage("null")}), "Update with JSON null")
	must(t, st.Update(ctx, s.ID, map[string]any{}), "empty Update")
	got, err := st.Get(ctx, s.ID)
	must(t, err, "Get")
	checkData(t, "after merges", got.Data, map[string]string{"b": `"y"`, "d": `{"e":1}`})
	if !got.ExpiresAt.Equal(s.ExpiresAt) || !got.LastAccessedAt.Equal(s.LastAccessedAt) {
		t.Errorf("Update changed expiry: ExpiresAt %v -> %v, LastAccessedAt %v -> %v", s.ExpiresAt, got.ExpiresAt, s.LastAccessedAt, got.LastAccessedAt)
	}
}

func testConcurrentMerge(t *testing.T, h Harness) {
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	const rounds, writers = 30, 6
	for r := 0; r < rounds; r++ {
		s, err := ins[0].Sessions().Create(ctx, "u", map[string]any{"base": r})
		must(t, err, "Create")
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, writers)
		for w := 0; w < writers; w++ {
			wg.Go(func() {
				<-start
				for i := 0; i < 3; i++ {
					field := fmt.Sprintf("w%d", w)
					if err := ins[w%2].Sessions().Update(ctx, s.ID, map[string]any{field: i, fmt.Sprintf("%s-%d", field, i): r}); err != nil {
						errs[w] = err
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			must(t, err, "concurrent Update")
		}
		got, err := ins[1].Sessions().Get(ctx, s.ID)
		must(t, err, "Get")
		want := map[string]string{"base": fmt.Sprint(r)}
		for w := 0; w < writers; w++ {
			want[fmt.Sprintf("w%d", w)] = "2"
			for i := 0; i < 3; i++ {
				want[fmt.Sprintf("w%d-%d", w, i)] = fmt.Sprint(r)
			}
		}
		if len(got.Data) != len(want) {
			t.Fatalf("round %d: %d fields after concurrent merges from two instances, want %d: an update was lost", r, len(got.Data), len(want))
		}
		checkData(t, fmt.Sprintf("round %d", r), got.Data, want)
		if t.Failed() {
			return
		}
	}
}

// dataSize is the size the data limit counts: keys and encoded values.
func dataSize(d map[string]json.RawMessage) int {
	n := 0
	for k, v := range d {
		n += len(k) + len(v)
	}
	return n
}

// jsonString returns a value that encodes to exactly n bytes (n >= 2).
func jsonString(n int) string { return strings.Repeat("x", n-2) }

func testUpdateLimitsTotal(t *testing.T, h Harness) {
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	st := ins[0].Sessions()
	const limit = driver.DefaultMaxPayload
	big := jsonString(900 << 10)
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid (the session's data would pass %d bytes)", what, err, limit)
		}
	}
	size := func(what string, id string) int {
		t.Helper()
		got, err := ins[1].Sessions().Get(ctx, id)
		must(t, err, "Get "+what)
		n := dataSize(got.Data)
		if n > limit {
			t.Errorf("%s: the session holds %d bytes of data, over the limit of %d", what, n, limit)
		}
		return n
	}

	// Updates that each fit but together do not: the first only.
	s, err := st.Create(ctx, "u", map[string]any{"a": 1})
	must(t, err, "Create")
	ok := 0
	for i := range 5 {
		err := ins[i%2].Sessions().Update(ctx, s.ID, map[string]any{fmt.Sprintf("big%d", i): big})
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, coord.ErrInvalid):
			t.Fatalf("Update %d: %v, want nil or ErrInvalid", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of 5 Updates of 900 KiB each succeeded, want 1 (a %d-byte limit on the session's data)", ok, limit)
	}
	size("after five updates", s.ID)

	// Replacing a value is not growth; deleting one makes room, in the
	// same Update or an earlier one.
	must(t, st.Update(ctx, s.ID, map[string]any{"big0": big[1:] + "y"}), "Update replacing the big value")
	invalid("Update adding a second big value", st.Update(ctx, s.ID, map[string]any{"big1": big}))
	must(t, st.Update(ctx, s.ID, map[string]any{"big0": nil, "big1": big}), "Update deleting one big value and adding another")
	must(t, st.Update(ctx, s.ID, map[string]any{"big1": nil}), "Update deleting the big value")
	must(t, st.Update(ctx, s.ID, map[string]any{"big2": big}), "Update adding a big value after a delete")
	got, err := st.Get(ctx, s.ID)
	must(t, err, "Get")
	if len(got.Data) != 2 || len(got.Data["big2"]) != len(big)+2 || string(got.Data["a"]) != "1" {
		t.Errorf("after the refused and the accepted updates: fields %v", rawKeys(got.Data))
	}

	// The limit itself is allowed, one byte more is not.
	e, err := st.Create(ctx, "u", nil)
	must(t, err, "Create")
	must(t, st.Update(ctx, e.ID, map[string]any{"k": jsonString(limit - 1)}), "Update to exactly the limit")
	invalid("Update one field past the limit", st.Update(ctx, e.ID, map[string]any{"z": 1}))
	must(t, st.Update(ctx, e.ID, map[string]any{"k": jsonString(limit - 3), "z": 1}), "Update replacing and adding to exactly the limit")
	if n := size("at the limit", e.ID); n != limit {
		t.Errorf("at the limit the session holds %d bytes, want %d", n, limit)
	}

	// Concurrent merges from two instances cannot pass it together.
	for round := range 5 {
		c, err := st.Create(ctx, "u", nil)
		must(t, err, "Create")
		half := jsonString(600 << 10)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		start := make(chan struct{})
		for w := range 4 {
			wg.Go(func() {
				<-start
				err := ins[w%2].Sessions().Update(ctx, c.ID, map[string]any{fmt.Sprintf("w%d", w): half})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, coord.ErrInvalid):
					t.Errorf("concurrent Update: %v, want nil or ErrInvalid", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if ok != 1 {
			t.Fatalf("round %d: %d of 4 concurrent Updates of 600 KiB succeeded, want 1", round, ok)
		}
		size(fmt.Sprintf("round %d", round), c.ID)
	}
}

func testValuesRoundTrip(t *testing.T, h Harness) {
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	values := map[string]any{
		"snowflake": int64(1234567890123456789),
		"maxint":    int64(math.MaxInt64),
		"minint":    int64(math.MinInt64),
		"maxuint":   uint64(math.MaxUint64),
		"float":     0.1,
		"neg":       -42,
		"zero":      0,
		"empty":     "",
		"unicode":   "héllo ☃ 名前 😀",
		"escapes":   "quote\" backslash\\ nl\n tab\t <html>&amp; \u2028 nul\u0000",
		"bool":      false,
		"nested":    map[string]any{"list": []any{1, "two", []int{3}}, "obj": map[string]any{"deep": map[string]any{"x": nil}}},
		"emptyobj":  map[string]any{},
		"emptylist": []int{},
		"raw":       json.RawMessage(`{ "b" : [1, 2.50, 1e3] , "a":"x" }`),
		"big":       json.RawMessage(`123456789012345678901234567890`),
	}
	s, err := ins[0].Sessions().Create(ctx, "u", values)
	must(t, err, "Create")
	check := func(what string, got *coord.Session) {
		t.Helper()
		for k, v := range values {
			want, err := driver.EncodePayload(v, 0)
			must(t, err, "EncodePayload")
			if string(got.Data[k]) != string(want) {
				t.Errorf("%s: field %q = %s, want %s", what, k, got.Data[k], want)
			}
		}
	}
	check("Create's result", s)
	got, err := ins[1].Sessions().Get(ctx, s.ID)
	must(t, err, "Get")
	check("Get on another instance", got)
	var id int64
	must(t, got.Decode("snowflake", &id), "Decode")
	if id != 1234567890123456789 {
		t.Errorf("snowflake decoded as %d", id)
	}
	var u uint64
	must(t, got.Decode("maxuint", &u), "Decode")
	if u != math.MaxUint64 {
		t.Errorf("maxuint decoded as %d", u)
	}
	// Update with the same values on a fresh session round-trips too.
	s2, err := ins[1].Sessions().Create(ctx, "u", nil)
	must(t, err, "Create")
	must(t, ins[0].Sessions().Update(ctx, s2.ID, values), "Update")
	got, err = ins[1].Sessions().Touch(ctx, s2.ID)
	must(t, err, "Touch")
	check("Touch after Update", got)
}

func testNoAliasing(t *testing.T, h Harness) {
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	st := in.Sessions()
	nested := map[string]any{"x": 1}
	data := map[string]any{"a": nested, "b": "b"}
	s, err := st.Create(ctx, "u", data)
	must(t, err, "Create")
	data["c"] = 3
	nested["x"] = 2
	s.Data["a"][1] = 'Z'
	s.Data["d"] = json.RawMessage("4")
	got, err := st.Get(ctx, s.ID)
	must(t, err, "Get")
	checkData(t, "Get after the caller changed its maps", got.Data, map[string]string{"a": `{"x":1}`, "b": `"b"`})
	got.Data["b"] = json.RawMessage(`"changed"`)
	delete(got.Data, "a")
	got.UserID = "other"
	again, err := st.Get(ctx, s.ID)
	must(t, err, "Get")
	checkData(t, "Get after the caller changed a returned session", again.Data, map[string]string{"a": `{"x":1}`, "b": `"b"`})
	if again.UserID != "u" {
		t.Errorf("UserID changed to %q through a returned session", again.UserID)
	}
	list, err := st.ByUser(ctx, "u")
	must(t, err, "ByUser")
	if len(list) == 1 && list[0].Data != nil {
		list[0].Data["b"] = json.RawMessage("1")
	}
	again, err = st.Get(ctx, s.ID)
	must(t, err, "Get")
	checkData(t, "Get after the caller changed a listed session", again.Data, map[string]string{"a": `{"x":1}`, "b": `"b"`})
}

func testRotate(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	s, err := ins[0].Sessions().Create(ctx, "u", map[string]any{"a": 1, "big": int64(1234567890123456789)}, coord.WithIdleTTL(tm.held), coord.WithLifetime(2*tm.held))
	must(t, err, "Create")
	hold(ctx, tm.apart)
	r, err := ins[1].Sessions().Rotate(ctx, s.ID)
	must(t, err, "Rotate")
	if r.ID == s.ID || r.Handle == s.Handle {
		t.Fatalf("Rotate kept the token or handle")
	}
	if !secret.ValidSessionToken(r.ID) {
		t.Fatalf("Rotate's token does not have the shape of a session token")
	}
	if r.UserID != s.UserID || !r.CreatedAt.Equal(s.CreatedAt) || !r.Deadline.Equal(s.Deadline) {
		t.Errorf("Rotate changed UserID, CreatedAt or Deadline: %+v -> %+v", s, r)
	}
	checkData(t, "Rotate's result", r.Data, map[string]string{"a": "1", "big": "1234567890123456789"})
	for _, in := range ins {
		if _, err := in.Sessions().Get(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
			t.Errorf("old token after Rotate: %v, want ErrNotFound", err)
		}
		got, err := in.Sessions().Get(ctx, r.ID)
		must(t, err, "Get with the new token")
		checkData(t, "Get with the new token", got.Data, map[string]string{"a": "1", "big": "1234567890123456789"})
	}
	if _, err := ins[0].Sessions().Rotate(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Rotate of the old token again: %v, want ErrNotFound", err)
	}
	if err := ins[0].Sessions().Update(ctx, s.ID, map[string]any{"x": 1}); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Update with the old token: %v, want ErrNotFound", err)
	}
	if n := countOf(t, ins[0].Sessions()); n != 1 {
		t.Errorf("Count after Rotate = %d, want 1", n)
	}
	list, err := ins[0].Sessions().ByUser(ctx, "u")
	must(t, err, "ByUser")
	if len(list) != 1 || list[0].Handle != r.Handle {
		t.Errorf("ByUser after Rotate lists %d sessions (want the rotated one only)", len(list))
	}
}

// createSpaced creates n sessions for userID with distinct creation times.
func createSpaced(t *testing.T, tm timing, st coord.SessionStore, userID string, n int, opts ...coord.SessionOption) []*coord.Session {
	t.Helper()
	var out []*coord.Session
	for i := 0; i < n; i++ {
		if i > 0 {
			hold(ctxOf(t), tm.apart)
		}
		s, err := st.Create(ctxOf(t), userID, map[string]any{"i": i}, opts...)
		must(t, err, "Create")
		out = append(out, s)
	}
	return out
}

func testByUser(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	u1 := createSpaced(t, tm, ins[0].Sessions(), "u1", 3)
	_ = createSpaced(t, tm, ins[1].Sessions(), "u2", 1)
	list, err := ins[1].Sessions().ByUser(ctx, "u1")
	must(t, err, "ByUser")
	if len(list) != 3 {
		t.Fatalf("ByUser(u1) = %d sessions, want 3", len(list))
	}
	for i, s := range list {
		if s.Handle != u1[i].Handle {
			t.Errorf("ByUser[%d] is not the %d-th oldest session", i, i)
		}
		if s.ID != "" {
			t.Errorf("ByUser[%d] carries a token", i)
		}
		if s.UserID != "u1" || !s.CreatedAt.Equal(u1[i].CreatedAt) {
			t.Errorf("ByUser[%d] = %+v", i, s)
		}
		checkData(t, "ByUser", s.Data, map[string]string{"i": fmt.Sprint(i)})
	}
	none, err := ins[0].Sessions().ByUser(ctx, "nobody")
	must(t, err, "ByUser of a user without sessions")
	if len(none) != 0 {
		t.Errorf("ByUser(nobody) = %d sessions", len(none))
	}
}

func testRevoke(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	st := ins[0].Sessions()
	a := createSpaced(t, tm, st, "alice", 2)
	b := createSpaced(t, tm, st, "bob", 1)
	if err := ins[1].Sessions().Revoke(ctx, "bob", a[0].Handle); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Revoke of alice's session as bob: %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctx, a[0].ID); err != nil {
		t.Fatalf("Revoke as another user ended the session: %v", err)
	}
	if err := ins[1].Sessions().Revoke(ctx, "alice", secret.Handle(secret.SessionToken())); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Revoke of an unknown handle: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "xyz", a[0].ID} {
		if err := st.Revoke(ctx, "alice", bad); !errors.Is(err, coord.ErrInvalid) && !errors.Is(err, coord.ErrNotFound) {
			t.Errorf("Revoke with a malformed handle: %v, want ErrInvalid or ErrNotFound", err)
		}
	}
	if n := countOf(t, st); n != 3 {
		t.Fatalf("refused Revokes changed Count to %d", n)
	}
	must(t, ins[1].Sessions().Revoke(ctx, "alice", a[0].Handle), "Revoke")
	if _, err := st.Get(ctx, a[0].ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Get of a revoked session: %v", err)
	}
	for _, s := range []*coord.Session{a[1], b[0]} {
		if _, err := st.Get(ctx, s.ID); err != nil {
			t.Errorf("Revoke ended another session: %v", err)
		}
	}
	list, err := st.ByUser(ctx, "alice")
	must(t, err, "ByUser")
	if len(list) != 1 || list[0].Handle != a[1].Handle {
		t.Errorf("ByUser after Revoke lists %d sessions", len(list))
	}
	if err := st.Revoke(ctx, "alice", a[0].Handle); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("second Revoke: %v, want ErrNotFound", err)
	}
}

func testDeleteByUser(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	a := createSpaced(t, tm, ins[0].Sessions(), "alice", 3)
	b := createSpaced(t, tm, ins[1].Sessions(), "bob", 2)
	n, err := ins[1].Sessions().DeleteByUser(ctx, "alice")
	must(t, err, "DeleteByUser")
	if n != 3 {
		t.Errorf("DeleteByUser = %d, want 3", n)
	}
	for _, s := range a {
		if _, err := ins[0].Sessions().Get(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
			t.Errorf("a session of a user logged out everywhere: %v", err)
		}
	}
	for _, s := range b {
		if _, err := ins[0].Sessions().Get(ctx, s.ID); err != nil {
			t.Errorf("DeleteByUser ended another user's session: %v", err)
		}
	}
	if list, err := ins[0].Sessions().ByUser(ctx, "alice"); err != nil || len(list) != 0 {
		t.Errorf("ByUser after DeleteByUser = %d, %v", len(list), err)
	}
	if c := countOf(t, ins[0].Sessions()); c != 2 {
		t.Errorf("Count after DeleteByUser = %d, want 2", c)
	}
	n, err = ins[0].Sessions().DeleteByUser(ctx, "alice")
	must(t, err, "DeleteByUser again")
	if n != 0 {
		t.Errorf("second DeleteByUser = %d, want 0", n)
	}
	// A new session after logout-everywhere works as usual.
	s, err := ins[0].Sessions().Create(ctx, "alice", nil)
	must(t, err, "Create")
	if list, err := ins[1].Sessions().ByUser(ctx, "alice"); err != nil || len(list) != 1 || list[0].Handle != s.Handle {
		t.Errorf("ByUser after a new login = %d, %v", len(list), err)
	}
}

func testCountAndStats(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	st := ins[0].Sessions()
	stats, err := st.Stats(ctx)
	must(t, err, "Stats")
	if stats.Sessions != 0 || stats.Users != 0 || !stats.OldestCreatedAt.IsZero() {
		t.Errorf("Stats of an empty store = %+v", stats)
	}
	a := createSpaced(t, tm, st, "alice", 2)
	_ = createSpaced(t, tm, ins[1].Sessions(), "bob", 1)
	_ = createSpaced(t, tm, ins[1].Sessions(), "carol", 2)
	if n := countOf(t, ins[1].Sessions()); n != 5 {
		t.Errorf("Count = %d, want 5", n)
	}
	stats, err = ins[1].Sessions().Stats(ctx)
	must(t, err, "Stats")
	if stats.Sessions != 5 || stats.Users != 3 || !near(stats.OldestCreatedAt, a[0].CreatedAt, tm.stamp) {
		t.Errorf("Stats = %+v, want 5 sessions, 3 users, oldest %v", stats, a[0].CreatedAt)
	}
	must(t, st.Delete(ctx, a[0].ID), "Delete")
	stats, err = st.Stats(ctx)
	must(t, err, "Stats")
	if stats.Sessions != 4 || stats.Users != 3 || !near(stats.OldestCreatedAt, a[1].CreatedAt, tm.stamp) {
		t.Errorf("Stats after Delete = %+v, want 4 sessions, 3 users, oldest %v", stats, a[1].CreatedAt)
	}
	must(t, st.Delete(ctx, a[1].ID), "Delete")
	stats, err = st.Stats(ctx)
	must(t, err, "Stats")
	if stats.Sessions != 3 || stats.Users != 2 {
		t.Errorf("Stats after alice's last session ended = %+v, want 3 sessions, 2 users", stats)
	}
	if hl := ins[0].Health(ctx); hl.Sessions != -1 && hl.Sessions != 3 {
		t.Errorf("Health.Sessions = %d, want 3 or -1 (unknown)", hl.Sessions)
	}
}

func testListsAfterExpiry(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	st := ins[0].Sessions()
	long := createSpaced(t, tm, st, "alice", 1, coord.WithIdleTTL(tm.held))
	// renewed, and the spacing of the creates: the four creates and the
	// count fit in it on a loaded machine.
	ttl := tm.renewed + tm.apart
	_ = createSpaced(t, tm, st, "bob", 1, coord.WithIdleTTL(ttl))
	short := createSpaced(t, tm, st, "alice", 2, coord.WithIdleTTL(ttl))
	if n := countOf(t, st); n != 4 {
		t.Fatalf("Count = %d, want 4", n)
	}
	for _, s := range short {
		expiresWithin(t, tm, ins[1].Sessions(), s)
	}
	// Right after expiry, with no Cleanup: every view agrees.
	other := ins[1].Sessions()
	last := short[len(short)-1].ExpiresAt.Add(tm.apart) // bob's expired by then too
	hold(ctx, time.Until(last))
	eventually(t, tm.lists, func() bool { return countOf(t, other) == 1 },
		"Count drops to 1 right after sessions expired (got %d)", func() any { return countOf(t, other) })
	list, err := other.ByUser(ctx, "alice")
	must(t, err, "ByUser")
	if len(list) != 1 || list[0].Handle != long[0].Handle {
		t.Errorf("ByUser after expiry lists %d sessions, want the live one", len(list))
	}
	if list, err := other.ByUser(ctx, "bob"); err != nil || len(list) != 0 {
		t.Errorf("ByUser(bob) after expiry = %d, %v", len(list), err)
	}
	stats, err := other.Stats(ctx)
	must(t, err, "Stats")
	if stats.Sessions != 1 || stats.Users != 1 || !near(stats.OldestCreatedAt, long[0].CreatedAt, tm.stamp) {
		t.Errorf("Stats after expiry = %+v, want 1 session of 1 user", stats)
	}
	if err := other.Revoke(ctx, "alice", short[0].Handle); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Revoke of an expired session: %v, want ErrNotFound", err)
	}
	n, err := other.DeleteByUser(ctx, "alice")
	must(t, err, "DeleteByUser")
	if n != 1 {
		t.Errorf("DeleteByUser after expiry = %d, want 1 (expired sessions are not counted)", n)
	}
	if _, err := st.Cleanup(ctx); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
	if n := countOf(t, st); n != 0 {
		t.Errorf("Count after Cleanup = %d, want 0", n)
	}
	// Cleanup never removes a live session.
	live, err := st.Create(ctx, "carol", nil)
	must(t, err, "Create")
	if _, err := other.Cleanup(ctx); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
	if _, err := st.Get(ctx, live.ID); err != nil {
		t.Errorf("Cleanup removed a live session: %v", err)
	}
}

func testConcurrentCreate(t *testing.T, h Harness) {
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	var failed error
	for w := 0; w < 6; w++ {
		wg.Go(func() {
			for i := 0; i < 20; i++ {
				s, err := ins[w%3].Sessions().Create(ctx, fmt.Sprintf("user-%d", w%4), map[string]any{"w": w})
				mu.Lock()
				if err != nil {
					failed = err
				} else {
					ids[s.ID] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	must(t, failed, "concurrent Create")
	if len(ids) != 120 {
		t.Errorf("%d distinct tokens from 120 concurrent creations", len(ids))
	}
	if n := countOf(t, ins[0].Sessions()); n != 120 {
		t.Errorf("Count = %d, want 120", n)
	}
	stats, err := ins[1].Sessions().Stats(ctx)
	must(t, err, "Stats")
	if stats.Users != 4 {
		t.Errorf("Stats.Users = %d, want 4", stats.Users)
	}
}

func testSessionBadInput(t *testing.T, h Harness) {
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	st := in.Sessions()
	s, err := st.Create(ctx, "u", map[string]any{"a": 1}, coord.WithIdleTTL(tm.held))
	must(t, err, "Create")
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	for label, n := range badNames() {
		_, err := st.Create(ctx, n, nil)
		invalid("Create with user ID "+label, err)
		_, err = st.Create(ctx, "u", map[string]any{n: 1})
		invalid("Create with data key "+label, err)
		invalid("Update with data key "+label, st.Update(ctx, s.ID, map[string]any{n: 1, "b": 2}))
		_, err = st.ByUser(ctx, n)
		invalid("ByUser with user ID "+label, err)
		_, err = st.DeleteByUser(ctx, n)
		invalid("DeleteByUser with user ID "+label, err)
		invalid("Revoke with user ID "+label, st.Revoke(ctx, n, s.Handle))
	}
	huge := strings.Repeat("x", driver.DefaultMaxPayload)
	badData := map[string]map[string]any{
		"a channel":         {"c": make(chan int)},
		"a function":        {"f": func() {}},
		"NaN":               {"n": math.NaN()},
		"+Inf":              {"n": math.Inf(1)},
		"invalid raw JSON":  {"r": json.RawMessage(`{"a":`)},
		"a value over 1MiB": {"h": huge},
		"data over 1MiB":    {"h1": huge[:driver.DefaultMaxPayload/2], "h2": huge[:driver.DefaultMaxPayload/2], "h3": "x"},
	}
	for label, d := range badData {
		_, err := st.Create(ctx, "u", d)
		invalid("Create with "+label, err)
		withGood := map[string]any{"b": 2}
		for k, v := range d {
			withGood[k] = v
		}
		invalid("Update with "+label, st.Update(ctx, s.ID, withGood))
	}
	// Bad input, refused before any timing: a zero, a negative and a
	// sub-millisecond duration.
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} {
		_, err := st.Create(ctx, "u", nil, coord.WithIdleTTL(d))
		invalid(fmt.Sprintf("Create with idle TTL %v", d), err)
		_, err = st.Create(ctx, "u", nil, coord.WithLifetime(d))
		invalid(fmt.Sprintf("Create with lifetime %v", d), err)
		invalid(fmt.Sprintf("Extend(%v)", d), st.Extend(ctx, s.ID, d))
	}
	// Nothing changed.
	if n := countOf(t, st); n != 1 {
		t.Errorf("refused Creates changed Count to %d", n)
	}
	got, err := st.Get(ctx, s.ID)
	must(t, err, "Get")
	checkData(t, "after refused Updates", got.Data, map[string]string{"a": "1"})
	if !got.ExpiresAt.Equal(s.ExpiresAt) {
		t.Errorf("a refused Extend changed ExpiresAt from %v to %v", s.ExpiresAt, got.ExpiresAt)
	}
}

func testConcurrentRotateOnce(t *testing.T, h Harness) {
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	for round := 0; round < 20; round++ {
		s, err := ins[0].Sessions().Create(ctx, "u", map[string]any{"r": round})
		must(t, err, "Create")
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var rotated []*coord.Session
		for g := 0; g < 6; g++ {
			wg.Go(func() {
				<-start
				r, err := ins[g%2].Sessions().Rotate(ctx, s.ID)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					rotated = append(rotated, r)
				case !errors.Is(err, coord.ErrNotFound):
					t.Errorf("concurrent Rotate: %v, want nil or ErrNotFound", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(rotated) != 1 {
			t.Fatalf("round %d: %d of 6 concurrent Rotates of one token succeeded, want exactly 1", round, len(rotated))
		}
		list, err := ins[1].Sessions().ByUser(ctx, "u")
		must(t, err, "ByUser")
		if len(list) != 1 || list[0].Handle != rotated[0].Handle {
			t.Fatalf("round %d: after concurrent Rotates the user has %d sessions, want the one rotated", round, len(list))
		}
		must(t, ins[0].Sessions().Delete(ctx, rotated[0].ID), "Delete")
	}
}

func testNoResurrection(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	for round := 0; round < 30; round++ {
		s, err := ins[0].Sessions().Create(ctx, "u", map[string]any{"a": 1})
		must(t, err, "Create")
		start := make(chan struct{})
		var wg sync.WaitGroup
		ops := []func(st coord.SessionStore) error{
			func(st coord.SessionStore) error { return st.Delete(ctx, s.ID) },
			func(st coord.SessionStore) error { return st.Update(ctx, s.ID, map[string]any{"b": 2}) },
			func(st coord.SessionStore) error { _, err := st.Touch(ctx, s.ID); return err },
			func(st coord.SessionStore) error { return st.Extend(ctx, s.ID, tm.held) },
			func(st coord.SessionStore) error { return st.Update(ctx, s.ID, map[string]any{"a": nil}) },
		}
		for i, op := range ops {
			wg.Go(func() {
				<-start
				if err := op(ins[i%2].Sessions()); err != nil && !errors.Is(err, coord.ErrNotFound) {
					t.Errorf("operation %d racing Delete: %v, want nil or ErrNotFound", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if _, err := ins[1].Sessions().Get(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
			t.Fatalf("round %d: a session deleted while it was updated, touched and extended is back: Get = %v", round, err)
		}
		if n := countOf(t, ins[0].Sessions()); n != 0 {
			t.Fatalf("round %d: Count = %d after Delete, want 0", round, n)
		}
		if list, err := ins[0].Sessions().ByUser(ctx, "u"); err != nil || len(list) != 0 {
			t.Fatalf("round %d: ByUser after Delete = %d, %v", round, len(list), err)
		}
	}
}
