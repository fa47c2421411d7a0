package metrics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRateLimiterMetrics(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	n := memory.NewHub(nil).New(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	b := m.Backend(n)
	ctx := t.Context()
	login := coord.Limit{Name: "login", Rate: 2, Period: time.Hour}
	for range 3 {
		if _, err := b.RateLimiter().Allow(ctx, "u", login, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.RateLimiter().Allow(ctx, "w", coord.Limit{Rate: 1, Period: time.Hour}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RateLimiter().Allow(ctx, "", login, 1); err == nil {
		t.Fatal("Allow with an empty key: no error")
	}
	expect(t, reg, 2, "coord_rate_limit_decisions_total", "limit", "login", "decision", "allowed")
	expect(t, reg, 1, "coord_rate_limit_decisions_total", "limit", "login", "decision", "denied")
	expect(t, reg, 1, "coord_rate_limit_decisions_total", "limit", "default", "decision", "allowed")
	expect(t, reg, 1, "coord_operation_errors_total", "op", "rate_allow", "kind", "invalid")
	expect(t, reg, 4, "coord_operation_duration_seconds", "op", "rate_allow", "result", "ok")

	// Names past the bound count as "other": the label stays bounded.
	for i := range 100 {
		l := coord.Limit{Name: fmt.Sprintf("n%d", i), Rate: 1, Period: time.Hour}
		if _, err := b.RateLimiter().Allow(ctx, "v", l, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := seriesOf(t, reg, "coord_rate_limit_decisions_total"); got > 2*65 {
		t.Fatalf("%d series of rate_limit_decisions_total after 102 limit names, want at most %d", got, 2*65)
	}
	v, ok := value(t, reg, "coord_rate_limit_decisions_total", "limit", "other", "decision", "denied")
	if !ok || v == 0 {
		t.Fatalf("no denial counted under limit=\"other\" (%v, %v)", v, ok)
	}
}

func seriesOf(t *testing.T, reg prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}
