package redis

import (
	"testing"
)

// A handoff whose outcome already waits in w.grant (delivered while w was
// on its way to try, having picked its wake-up over the grant) is taken:
// w does not try for a second permit, which it would only give back.
func TestPermitStartTryTakesDeliveredGrant(t *testing.T) {
	lw, _, ws := permitWaiters(1)
	if w := lw.handoffTarget("ch"); w != ws[0] {
		t.Fatalf("handoffTarget = %p, want %p", w, ws[0])
	}
	lw.granted(ws[0], leaseGrant{ok: true, token: "t", fence: 7})
	if !lw.startTry(ws[0]) {
		t.Fatal("startTry = false with a granted permit waiting: the waiter would try for a second one")
	}
	if ws[0].trying {
		t.Fatal("the waiter is marked trying while it takes a handoff")
	}
}

// A freed permit's wake-up goes to a waiter, which is then on its way to
// take that permit: a handoff goes to another waiter, not to it (it would
// take the handoff, and the freed permit would stay free until another
// wake-up came).
func TestPermitHandoffSkipsWokenWaiter(t *testing.T) {
	lw, _, ws := permitWaiters(2)
	lw.wake("ch", wakePermitFree)
	if !woken(ws[0]) {
		t.Fatal("the first waiter was not woken")
	}
	if w := lw.handoffTarget("ch"); w != ws[1] {
		t.Fatalf("handoffTarget = %p, want the waiter not woken (%p)", w, ws[1])
	}
	lw.granted(ws[1], leaseGrant{})
	// Its try uses the wake-up: handoffs may reach it again afterwards.
	if lw.startTry(ws[0]) {
		t.Fatal("startTry reported a handoff under way")
	}
	lw.endTry(ws[0])
	if w := lw.handoffTarget("ch"); w != ws[0] {
		t.Fatalf("after its try, handoffTarget = %p, want the first waiter (%p)", w, ws[0])
	}
}

// Two permits freed before any waiter ran wake two waiters: a waiter
// woken already takes one permit at most.
func TestPermitTwoWakesWakeTwoWaiters(t *testing.T) {
	lw, _, ws := permitWaiters(3)
	lw.wake("ch", wakePermitFree)
	lw.wake("ch", wakePermitFree)
	if !woken(ws[0]) || !woken(ws[1]) {
		t.Fatal("two freed permits did not wake two waiters")
	}
	if woken(ws[2]) {
		t.Fatal("a third waiter was woken for two permits")
	}
}

// A wake-up that came while a waiter's try was under way (possibly for
// another permit than the one the try took), and a wake-up that found no
// waiter to wake, are passed on when the try takes a permit; a waiter
// whose wait ends passes its unused wake-up on too.
func TestPermitUnusedWakePassedOn(t *testing.T) {
	lw, _, ws := permitWaiters(3)
	if lw.startTry(ws[0]) {
		t.Fatal("startTry reported a handoff under way")
	}
	lw.wake("ch", wakePermitFree) // during ws[0]'s try
	if !woken(ws[0]) {
		t.Fatal("the first waiter was not woken")
	}
	lw.wakeNext("ch", ws[0], true) // its try took a permit
	if !woken(ws[1]) {
		t.Fatal("the wake-up that came during the try was not passed on")
	}

	// Every waiter left is woken: the next wake-up finds none to wake.
	lw.wake("ch", wakePermitFree)
	if !woken(ws[2]) {
		t.Fatal("the third waiter was not woken")
	}
	lw.wake("ch", wakePermitFree)
	if woken(ws[1]) || woken(ws[2]) {
		t.Fatal("a waiter woken already was woken again")
	}
	if lw.startTry(ws[1]) {
		t.Fatal("startTry reported a handoff under way")
	}
	lw.endTry(ws[1]) // refused
	if lw.startTry(ws[2]) {
		t.Fatal("startTry reported a handoff under way")
	}
	lw.wakeNext("ch", ws[2], true) // its try took a permit: room for more, maybe
	if !woken(ws[1]) {
		t.Fatal("a wake-up that found no waiter to wake was not passed on")
	}
}
