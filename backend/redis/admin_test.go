package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// adminBackend returns a Backend with prefix on client, closed at cleanup.
func adminBackend(t *testing.T, client goredis.UniversalClient, prefix string) *coordredis.Backend {
	t.Helper()
	b, err := coordredis.New(client, &coordredis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func TestAdminLeases(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	ctx := context.Background()
	// The prefix has glob metacharacters: the scan must match them
	// literally.
	const prefix = "adm*[x]:"
	b := adminBackend(t, client, prefix)
	other := adminBackend(t, client, "adm?[x]:") // matches prefix as a glob
	lk := b.Locker()

	names := []string{"job:a{b}", "job:x*y", "job:xzy", "job:p%q", "job:sp ace", "job:ünï", "other"}
	fences := map[string]int64{}
	for _, n := range names {
		l, err := lk.Acquire(ctx, n, coord.WithTTL(time.Minute))
		if err != nil {
			t.Fatalf("acquire %q: %v", n, err)
		}
		fences[n] = l.Fence()
		defer func() { _ = l.Release(ctx) }()
	}
	// A released resource keeps its fence counter but has no lease.
	gone, err := lk.Acquire(ctx, "job:gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Locker().Acquire(ctx, "job:foreign", coord.WithTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}

	all, err := b.Leases(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, li := range all {
		got = append(got, li.Resource)
		if li.State != coordredis.LeaseHeld || li.Fence != fences[li.Resource] || li.TTL <= 0 || li.TTL > time.Minute || len(li.Tag) != 8 || li.Holder != b.InstanceID() {
			t.Errorf("lease %+v: want held, fence %d, TTL in (0, 1m], an 8-digit tag and holder %q", li, fences[li.Resource], b.InstanceID())
		}
	}
	want := []string{"job:a{b}", "job:p%q", "job:sp ace", "job:x*y", "job:xzy", "job:ünï", "other"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Leases(\"\") = %q, want %q (sorted, no released or other-prefix lease)", got, want)
	}

	// A prefix with glob metacharacters matches literally.
	some, err := b.Leases(ctx, "job:x*")
	if err != nil {
		t.Fatal(err)
	}
	if len(some) != 1 || some[0].Resource != "job:x*y" {
		t.Fatalf("Leases(\"job:x*\") = %+v, want only job:x*y", some)
	}
	some, err = b.Leases(ctx, "job:")
	if err != nil {
		t.Fatal(err)
	}
	if len(some) != 6 {
		t.Fatalf("Leases(\"job:\") has %d leases, want 6", len(some))
	}

	// Lease: held, free with a fence, free without one.
	li, err := b.Lease(ctx, "job:a{b}")
	if err != nil || li.State != coordredis.LeaseHeld || li.Fence != fences["job:a{b}"] {
		t.Fatalf("Lease(job:a{b}) = %+v, %v", li, err)
	}
	li, err = b.Lease(ctx, "job:gone")
	if err != nil || li.State != coordredis.LeaseFree || li.Fence != gone.Fence() || li.TTL != 0 || li.Tag != "" {
		t.Fatalf("Lease(job:gone) = %+v, %v; want free with fence %d", li, err, gone.Fence())
	}
	li, err = b.Lease(ctx, "never")
	if err != nil || li.State != coordredis.LeaseFree || li.Fence != 0 {
		t.Fatalf("Lease(never) = %+v, %v; want free, fence 0", li, err)
	}
}

func TestAdminLeaseForeignValues(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	ctx := context.Background()
	b := adminBackend(t, client, "fv:")

	// The handoff marker: reserved, nobody holds it.
	if err := client.Set(ctx, "fv:lock:{r}", "\x00handoff", 5*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	li, err := b.Lease(ctx, "r")
	if err != nil || li.State != coordredis.LeaseReserved || li.Tag != "" || li.TTL <= 0 {
		t.Fatalf("Lease(r) with the handoff marker = %+v, %v; want reserved", li, err)
	}
	// A value without expiry (a foreign writer): held, TTL -1.
	if err := client.Set(ctx, "fv:lock:{s}", "whatever", 0).Err(); err != nil {
		t.Fatal(err)
	}
	li, err = b.Lease(ctx, "s")
	if err != nil || li.State != coordredis.LeaseHeld || li.TTL != -1 {
		t.Fatalf("Lease(s) without expiry = %+v, %v; want held, TTL -1", li, err)
	}
	// A fence counter that is not a number is an error, not data.
	if err := client.Set(ctx, "fv:lock:{s}:fence", "abc", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lease(ctx, "s"); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("Lease with a malformed fence: %v, want ErrInvalid", err)
	}
	if _, err := b.Leases(ctx, ""); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("Leases with a malformed fence: %v, want ErrInvalid", err)
	}
	// Keys that escapeName cannot have written are skipped, not shown.
	for _, k := range []string{"fv:lock:{a b}", "fv:lock:{%zz}", "fv:lock:{%61}", "fv:lock:{%0A}", "fv:lock:{%1B[2J}"} {
		if err := client.Set(ctx, k, "x", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Del(ctx, "fv:lock:{s}:fence").Err(); err != nil {
		t.Fatal(err)
	}
	all, err := b.Leases(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Resource != "r" || all[1].Resource != "s" {
		t.Fatalf("Leases = %+v, want r and s only", all)
	}

	// Bad input and a closed Backend.
	if _, err := b.Lease(ctx, ""); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("Lease(\"\"): %v, want ErrInvalid", err)
	}
	if _, err := b.Leases(ctx, "a\x01"); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("Leases with a control byte: %v, want ErrInvalid", err)
	}
	if err := b.Tail(ctx, coordredis.TailOptions{}, func(coordredis.TailMessage) {}); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("Tail of nothing: %v, want ErrInvalid", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lease(ctx, "r"); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("Lease after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Leases(ctx, ""); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("Leases after Close: %v, want ErrClosed", err)
	}
}

func TestAdminTail(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := adminBackend(t, client, "tl:")
	pub := adminBackend(t, client, "tl:")

	var rec coordtest.Recorder[coordredis.TailMessage]
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.Tail(ctx, coordredis.TailOptions{
			Invalidations: true, Events: true,
			Ready:        func() { close(ready) },
			PingInterval: 200 * time.Millisecond,
		}, rec.Add)
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("Tail not ready within 5s")
	}
	if err := pub.Invalidator().Invalidate(ctx, "user:1", map[string]string{"reason": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Invalidator().InvalidatePattern(ctx, "user:*", nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.Events().Publish(ctx, "shard.x", 7); err != nil {
		t.Fatal(err)
	}
	if err := client.Publish(ctx, "tl:cache:invalidate", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	// The tailing Backend's own messages are shown too.
	if err := b.Events().Publish(ctx, "own", nil); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool { return len(rec.All()) >= 5 }, "five messages tailed")
	m := rec.All()
	if inv := m[0].Invalidation; inv == nil || inv.Kind != coord.KeyInvalidation || inv.Key != "user:1" || string(inv.Metadata) != `{"reason":"x"}` || inv.InstanceID != pub.InstanceID() {
		t.Errorf("message 0 = %+v, want the key invalidation", m[0])
	}
	if inv := m[1].Invalidation; inv == nil || inv.Kind != coord.PatternInvalidation || inv.Key != "user:*" || m[1].Channel != "tl:cache:invalidate:pattern" {
		t.Errorf("message 1 = %+v, want the pattern invalidation", m[1])
	}
	if ev := m[2].Event; ev == nil || ev.Topic != "shard.x" || string(ev.Payload) != "7" {
		t.Errorf("message 2 = %+v, want the event", m[2])
	}
	if m[3].Err == nil || !errors.Is(m[3].Err, coord.ErrInvalid) || m[3].Size != len("garbage") {
		t.Errorf("message 3 = %+v, want a malformed message of 7 bytes", m[3])
	}
	if ev := m[4].Event; ev == nil || ev.Topic != "own" || ev.InstanceID != b.InstanceID() {
		t.Errorf("message 4 = %+v, want the tailing instance's own event", m[4])
	}

	// A lost connection is a gap, and the tail goes on.
	n := len(rec.All())
	coordtest.Eventually(t, 5*time.Second, func() bool { return srv.KillPubSubClients(t) > 0 }, "the tail's connection killed")
	coordtest.Eventually(t, 10*time.Second, func() bool {
		for _, m := range rec.All()[n:] {
			if m.Gap {
				return true
			}
		}
		return false
	}, "a gap after the connection was killed")
	coordtest.Eventually(t, 10*time.Second, func() bool {
		if err := pub.Events().Publish(ctx, "after", nil); err != nil {
			t.Fatal(err)
		}
		for _, m := range rec.All()[n:] {
			if m.Event != nil && m.Event.Topic == "after" {
				return true
			}
		}
		return false
	}, "an event after the gap")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Tail returned %v after its ctx ended, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Tail did not return within 5s of its ctx ending")
	}
}

func TestAdminLeasesCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster takes seconds to form; skipped with -short")
	}
	c := redistest.StartCluster(t, 3)
	cc := c.ClusterClient(t)
	ctx := context.Background()
	b := adminBackend(t, cc, "cl:")
	const n = 30 // spread over the three masters' slots
	for i := range n {
		if _, err := b.Locker().Acquire(ctx, fmt.Sprintf("r%02d", i), coord.WithTTL(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	masters := map[string]bool{}
	for i := range n {
		addr, err := cc.MasterForKey(ctx, fmt.Sprintf("cl:lock:{r%02d}", i))
		if err != nil {
			t.Fatal(err)
		}
		masters[addr.Options().Addr] = true
	}
	if len(masters) < 2 {
		t.Fatalf("the leases are on %d master(s); the test needs several", len(masters))
	}
	all, err := b.Leases(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("Leases found %d of %d leases over %d masters", len(all), n, len(masters))
	}
	for i, li := range all {
		if li.Resource != fmt.Sprintf("r%02d", i) || li.State != coordredis.LeaseHeld || li.Fence <= 0 {
			t.Fatalf("lease %d = %+v", i, li)
		}
	}
}

// stallProxy forwards TCP connections to a server until stall is called;
// from then on the connections open at that moment stay open but carry
// nothing either way (a half-open connection, as after a silent network
// failure), while new connections are forwarded.
type stallProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   []net.Conn
	stalled map[net.Conn]bool
	wg      sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, stalled: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *stallProxy) addr() string { return p.ln.Addr().String() }

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// pipe copies from src to dst, dropping what src sends once src is
// stalled.
func (p *stallProxy) pipe(src, dst net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if err != nil {
			_ = dst.Close()
			return
		}
		p.mu.Lock()
		stalled := p.stalled[src]
		p.mu.Unlock()
		if !stalled {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

// stall makes every connection open now carry nothing.
func (p *stallProxy) stall() {
	p.mu.Lock()
	for _, c := range p.conns {
		p.stalled[c] = true
	}
	p.mu.Unlock()
}

func TestAdminTailReplacesSilentConnection(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	proxy := newStallProxy(t, srv.Addr())
	viaProxy := goredis.NewClient(&goredis.Options{Addr: proxy.addr()})
	t.Cleanup(func() { _ = viaProxy.Close() })
	b := adminBackend(t, viaProxy, "sil:")
	pub := adminBackend(t, direct, "sil:")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var rec coordtest.Recorder[coordredis.TailMessage]
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.Tail(ctx, coordredis.TailOptions{
			Events: true, Ready: func() { close(ready) }, PingInterval: 100 * time.Millisecond,
		}, rec.Add)
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("Tail not ready within 5s")
	}
	// The connection goes silent without closing: a ping unanswered
	// after 100ms must make Tail drop it for a new one, and say so.
	proxy.stall()
	coordtest.Eventually(t, 10*time.Second, func() bool {
		if err := pub.Events().Publish(ctx, "after", nil); err != nil {
			t.Fatal(err)
		}
		gap := false
		for _, m := range rec.All() {
			gap = gap || m.Gap
			if gap && m.Event != nil && m.Event.Topic == "after" {
				return true
			}
		}
		return false
	}, "a gap and an event after the connection went silent")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Tail: %v", err)
	}
}
