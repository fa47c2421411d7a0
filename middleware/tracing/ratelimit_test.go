package tracing_test

import (
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/tracing"
	"go.opentelemetry.io/otel/codes"
)

// TestRateSpans: an allowed and a denied decision are both answers (no
// Error status); the denial's outcome is "rate_limited" with its retry
// time; bad input is a failure.
func TestRateSpans(t *testing.T) {
	r := newRecorder(t)
	_, a, _ := nodes(t, r)
	ctx := t.Context()
	l := coord.Limit{Name: "login", Rate: 1, Period: time.Hour}
	if _, err := a.RateLimiter().Allow(ctx, "user:1", l, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RateLimiter().Allow(ctx, "user:1", l, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RateLimiter().Allow(ctx, "user:1", l, 0); err == nil {
		t.Fatal("Allow of 0 events: no error")
	}
	s := r.spans("rate.allow")
	if len(s) != 3 {
		t.Fatalf("%d rate.allow spans, want 3 (all: %v)", len(s), r.names())
	}
	wantAttr(t, s[0], tracing.AttrOutcome, "ok")
	wantAttr(t, s[0], tracing.AttrAllowed, true)
	wantAttr(t, s[0], tracing.AttrLimit, "login")
	wantAttr(t, s[0], tracing.AttrKey, "user:1")
	wantAttr(t, s[1], tracing.AttrOutcome, "rate_limited")
	wantAttr(t, s[1], tracing.AttrAllowed, false)
	if v, ok := attr(s[1], tracing.AttrRetryAfterMS); !ok || v.AsFloat64() <= 0 {
		t.Fatalf("denied span: retry_after_ms %v, %v", v, ok)
	}
	for i := range 2 {
		if s[i].Status.Code == codes.Error {
			t.Fatalf("span %d of a decision has status Error", i)
		}
	}
	wantAttr(t, s[2], tracing.AttrOutcome, "invalid")
	if s[2].Status.Code != codes.Error {
		t.Fatal("span of bad input has no Error status")
	}
}
