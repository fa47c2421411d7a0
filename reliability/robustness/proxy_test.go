package robustness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord/internal/redistest"
)

// TestProxyBlackholesOnlySubscribers checks the proxy's fault: a
// subscriber connection through it stops receiving while blackholed and
// gets the held message on resume, while commands on other connections
// of the same client go on.
func TestProxyBlackholesOnlySubscribers(t *testing.T) {
	srv := redistest.Start(t)
	p, err := NewProxy(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), ReadTimeout: time.Second, DisableIdentity: true})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A script that mentions subscribers does not mark its connection.
	if err := c.Eval(ctx, "-- wakes subscribers: SUBSCRIBE\nreturn 1", nil).Err(); err != nil {
		t.Fatal(err)
	}
	// A raw subscriber connection: a read that times out leaves it open.
	sub, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := io.WriteString(sub, "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(sub)
	readUntil := func(want string, d time.Duration) error {
		_ = sub.SetReadDeadline(time.Now().Add(d))
		var got strings.Builder
		for !strings.Contains(got.String(), want) {
			b, err := r.ReadByte()
			if err != nil {
				return fmt.Errorf("after %q: %w", got.String(), err)
			}
			got.WriteByte(b)
		}
		return nil
	}
	if err := readUntil("subscribe\r\n$2\r\nch\r\n:1\r\n", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := p.Subscribers(); n != 1 {
		t.Fatalf("Subscribers() = %d, want 1", n)
	}
	p.Blackhole(true)
	if err := c.Publish(ctx, "ch", "held").Err(); err != nil {
		t.Fatalf("publish on a normal connection while blackholed: %v", err)
	}
	if err := readUntil("held", 300*time.Millisecond); err == nil {
		t.Fatal("received a message through a blackholed connection")
	}
	p.Blackhole(false)
	if err := readUntil("held", 5*time.Second); err != nil {
		t.Fatalf("after resume: %v; want the held message", err)
	}
}
