package redis

import (
	"testing"
	"time"
)

// permitWaiters returns a leaseWaits with one wake channel holding n
// permit waiters.
func permitWaiters(n int) (*leaseWaits, *waitChan, []*leaseWaiter) {
	lw := &leaseWaits{chans: map[string]*waitChan{}}
	wc := &waitChan{}
	lw.chans["ch"] = wc
	ws := make([]*leaseWaiter, n)
	for i := range ws {
		ws[i] = &leaseWaiter{role: rolePermit, wake: make(chan struct{}, 1), ttl: time.Second, grant: make(chan leaseGrant, 1)}
		wc.waiters = append(wc.waiters, ws[i])
	}
	return lw, wc, ws
}

func woken(w *leaseWaiter) bool {
	select {
	case <-w.wake:
		return true
	default:
		return false
	}
}

// A freed permit's wake-up goes to the first waiter that will try for
// it: not to one a handoff is reaching, nor to one whose wait ended (the
// wake-up was lost then, and the permit stayed free until a retry delay
// passed).
func TestPermitWakeSkipsPendingAndLeaving(t *testing.T) {
	lw, _, ws := permitWaiters(3)
	ws[0].pending = true
	ws[1].leaving = true
	lw.wake("ch", wakePermitFree)
	if woken(ws[0]) || woken(ws[1]) {
		t.Fatal("the wake-up went to a waiter that does not try")
	}
	if !woken(ws[2]) {
		t.Fatal("the waiter that tries was not woken")
	}
}

// A newcomer queues behind permit waiters only when one of them will try
// for a free permit: behind waiters that are all being handed a permit,
// or leaving, it would wait for a wake-up that no release sends.
func TestPermitNewcomerQueuesOnlyBehindTryingWaiters(t *testing.T) {
	lw, _, ws := permitWaiters(2)
	ws[0].pending = true
	ws[1].leaving = true
	if lw.hasWaiters("ch", rolePermit) {
		t.Fatal("hasWaiters = true with no waiter that would take a free permit")
	}
	ws[1].leaving = false
	if !lw.hasWaiters("ch", rolePermit) {
		t.Fatal("hasWaiters = false with a waiting waiter")
	}
}

// No permit is handed to a waiter while it tries for itself: when its
// try took a permit, the one handed over would only be given back.
func TestPermitHandoffSkipsTryingWaiter(t *testing.T) {
	lw, _, ws := permitWaiters(2)
	if lw.startTry(ws[0]) {
		t.Fatal("startTry reported a handoff under way")
	}
	if w := lw.handoffTarget("ch"); w != ws[1] {
		t.Fatalf("handoffTarget = %p, want the waiter not trying (%p)", w, ws[1])
	}
	lw.granted(ws[1], leaseGrant{})
	lw.endTry(ws[0])
	if w := lw.handoffTarget("ch"); w != ws[0] {
		t.Fatalf("after its try, handoffTarget = %p, want the first waiter (%p)", w, ws[0])
	}
	// A waiter a handoff reaches takes it rather than trying.
	if !lw.startTry(ws[0]) {
		t.Fatal("startTry did not report the handoff under way")
	}
}
