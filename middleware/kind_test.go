package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestErrorKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{coord.ErrExpired, "expired"},
		{fmt.Errorf("release %q: %w", "r", coord.ErrExpired), "expired"},
		{coord.ErrNotHeld, "not_held"},
		{errors.Join(coord.ErrNotAcquired, context.Canceled), "not_acquired"},
		{errors.Join(coord.ErrNotAcquired, context.DeadlineExceeded), "not_acquired"},
		{fmt.Errorf("%w on %q", coord.ErrLeaseLost, "r"), "lease_lost"},
		{coord.ErrNotFound, "not_found"},
		{coord.ErrClosed, "closed"},
		{fmt.Errorf("%w: name is empty", coord.ErrInvalid), "invalid"},
		{fmt.Errorf("%w: dial tcp: refused", coord.ErrUnavailable), "unavailable"},
		{errors.Join(coord.ErrRateLimited, context.DeadlineExceeded), "rate_limited"},
		{context.Canceled, "canceled"},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), "deadline_exceeded"},
		{errors.New("something else entirely"), "other"},
	} {
		if got := middleware.ErrorKind(c.err); got != c.want {
			t.Errorf("ErrorKind(%v) = %q; want %q", c.err, got, c.want)
		}
	}
}

func ExampleErrorKind() {
	err := fmt.Errorf("release %q: %w", "nightly", coord.ErrExpired)
	fmt.Println(middleware.ErrorKind(err), middleware.ErrorKind(nil))
	// Output: expired ok
}

func TestIsExpected(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{coord.ErrNotAcquired, true},
		{errors.Join(coord.ErrNotAcquired, context.DeadlineExceeded), true},
		{fmt.Errorf("get: %w", coord.ErrNotFound), true},
		{coord.ErrExpired, true},
		{coord.ErrNotHeld, true},
		{context.Canceled, true},
		{coord.ErrLeaseLost, false},
		{coord.ErrUnavailable, false},
		{coord.ErrInvalid, false},
		{coord.ErrClosed, false},
		{context.DeadlineExceeded, false},
		{errors.New("other"), false},
	} {
		if got := middleware.IsExpected(c.err); got != c.want {
			t.Errorf("IsExpected(%v) = %v; want %v", c.err, got, c.want)
		}
	}
}
