package robustness

import (
	"context"
	"errors"
	"strings"

	"github.com/cgn-bot/coord"
)

// CheckErrorClass is the checker of the errors coord returned: every one
// wraps one of coord's sentinels, and none is ErrInvalid (the workload's
// arguments are valid whatever the deployment does).
const CheckErrorClass = "error-class"

// Marks that [ErrString] puts before an error's text.
const (
	MarkInvalid = "[invalid] " // the error wraps coord.ErrInvalid
	MarkRaw     = "[raw] "     // the error wraps none of coord's sentinels nor a ctx error
)

// coordSentinels are the errors every error of a backend wraps one of.
var coordSentinels = []error{coord.ErrNotAcquired, coord.ErrNotHeld, coord.ErrLeaseLost, coord.ErrNotFound,
	coord.ErrClosed, coord.ErrInvalid, coord.ErrUnavailable, coord.ErrUnsupported}

// ErrString is err's text for a history ("" for nil), marked with
// [MarkInvalid] or [MarkRaw] when coord returned an error it must not:
// one wrapping ErrInvalid, or one wrapping no sentinel (a ctx error of
// the caller's own is neither).
func ErrString(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if errors.Is(err, coord.ErrInvalid) {
		return MarkInvalid + s
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return s
	}
	for _, e := range coordSentinels {
		if errors.Is(err, e) {
			return s
		}
	}
	return MarkRaw + s
}

// errClassKinds are the operations whose errors come from coord alone
// (the others may carry the checking store's or a handler's).
var errClassKinds = map[string]bool{KindLease: true, KindRW: true, KindPermit: true, KindLeader: true, KindAppend: true}

// checkErrorClass: no lease, read-write lease, permit, leadership or
// append failed, nor released, with an error [ErrString] marked.
func checkErrorClass(ops []Op) Finding {
	c := collector{f: Finding{Checker: CheckErrorClass}}
	for _, op := range ops {
		if !errClassKinds[op.Kind] {
			continue
		}
		for _, e := range []string{op.Err, op.RelErr} {
			if strings.Contains(e, MarkInvalid) || strings.Contains(e, MarkRaw) {
				c.add("worker %d %s %s at %s: %s", op.Worker, op.Kind, op.Key, ts(op.Call), e)
			}
		}
	}
	return c.f
}
