package robustness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cgn-bot/coord"
)

func TestErrString(t *testing.T) {
	for _, c := range []struct {
		err  error
		mark string
	}{
		{fmt.Errorf("%w: coord/redis: acquire: TRYAGAIN Multiple keys request during rehashing of slot", coord.ErrUnavailable), ""},
		{fmt.Errorf("coord/redis: %q is held: %w", "r", coord.ErrNotAcquired), ""},
		{coord.ErrExpired, ""},
		{fmt.Errorf("coord/redis: acquire: %w", context.DeadlineExceeded), ""},
		{fmt.Errorf("%w: coord/redis: bad fence", coord.ErrInvalid), MarkInvalid},
		{errors.New("TRYAGAIN Multiple keys request during rehashing of slot"), MarkRaw},
	} {
		s := ErrString(c.err)
		if want := c.mark + c.err.Error(); s != want {
			t.Errorf("ErrString(%v) = %q, want %q", c.err, s, want)
		}
	}
	if ErrString(nil) != "" {
		t.Error("ErrString(nil) is not empty")
	}
}

func TestCheckErrorClass(t *testing.T) {
	ops := []Op{
		{Kind: KindRW, Key: "rw0", Err: ErrString(fmt.Errorf("%w: x", coord.ErrUnavailable))},
		{Kind: KindPermit, Key: "s0", RelErr: ErrString(errors.New("TRYAGAIN"))},
		{Kind: KindLeader, Key: "lead", Err: "RunElected: " + ErrString(fmt.Errorf("%w: y", coord.ErrInvalid))},
		{Kind: KindRead, Key: "k0", Err: ErrString(errors.New("the store said no"))}, // not coord's alone
	}
	f := checkErrorClass(ops)
	if f.Count != 2 || !strings.Contains(f.Problems[0], "TRYAGAIN") || !strings.Contains(f.Problems[1], "lead") {
		t.Errorf("finding %+v, want the permit's release and the leadership", f)
	}
}
