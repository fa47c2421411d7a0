package robustness

import (
	"net"
	"regexp"
	"sync"
	"time"
)

// Proxy forwards TCP connections from a worker to redis-server. It can
// silently stop forwarding the bytes of the worker's subscriber
// connections (those whose client sent SUBSCRIBE, PSUBSCRIBE or
// SSUBSCRIBE) in both directions, without closing anything, and resume.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	hold   bool // blackhole subscriber connections
	closed bool
	conns  map[*proxyConn]struct{}
	wg     sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	pubsub         bool // guarded by Proxy.mu
}

// subscribeCommand matches a RESP command whose name is SUBSCRIBE,
// PSUBSCRIBE or SSUBSCRIBE: what marks a connection as a subscriber's. A
// plain substring would also match a script body that mentions
// subscribers.
var subscribeCommand = regexp.MustCompile(`(?i)\*\d+\r\n\$(9|10)\r\n[ps]?subscribe\r\n`)

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Blackhole stops (on) or resumes (off) forwarding on subscriber
// connections. Held bytes are forwarded on resume.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	p.hold = on
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Subscribers returns how many open connections are marked as a
// subscriber's.
func (p *Proxy) Subscribers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		if c.pubsub {
			n++
		}
	}
	return n
}

// Close stops accepting, closes every connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.hold = false
	for c := range p.conns {
		_ = c.client.Close()
		_ = c.server.Close()
	}
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &proxyConn{client: client, server: server}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = client.Close()
			_ = server.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		var both sync.WaitGroup
		both.Add(2)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			both.Wait()
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
		go func() { defer both.Done(); p.pipe(c, client, server, true) }()
		go func() { defer both.Done(); p.pipe(c, server, client, false) }()
	}
}

// pipe copies from src to dst until either fails, holding each chunk
// while the connection is blackholed. up is the client-to-server
// direction, where SUBSCRIBE marks the connection.
func (p *Proxy) pipe(c *proxyConn, src, dst net.Conn, up bool) {
	defer func() {
		_ = src.Close()
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if up && !c.pubsub && subscribeCommand.Match(buf[:n]) {
				c.pubsub = true
			}
			for p.hold && c.pubsub && !p.closed {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection: either side is done
		}
	}
}
