package httpsession_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromium is a headless Chromium driven over the Chrome DevTools
// Protocol on its debugging pipe (--remote-debugging-pipe: the browser
// reads NUL-terminated JSON commands on fd 3 and writes replies and
// events on fd 4), attached to one page.
type chromium struct {
	cmd     *exec.Cmd
	in      *os.File // commands to the browser (its fd 3)
	out     *os.File // replies from the browser (its fd 4)
	done    chan struct{}
	mu      sync.Mutex
	nextID  int
	waiting map[int]chan cdpReply
	page    string // session ID of the attached page
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// findChromium returns the path of a Chromium binary, or "".
func findChromium() string {
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startChromium starts a headless Chromium with a fresh profile and
// attaches to a blank page; it is stopped at cleanup. Without a browser
// the test is skipped, except under CI=true, where it fails.
func startChromium(t *testing.T) *chromium {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no browser: "+format, args...)
		}
		t.Skipf("no browser (install Debian's chromium package, or set CHROMIUM_BIN): "+format, args...)
	}
	bin := findChromium()
	if bin == "" {
		unavailable("chromium not found in PATH")
	}
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &chromium{in: cmdW, out: outR, done: make(chan struct{}), waiting: map[int]chan cdpReply{}}
	c.cmd = exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-features=Translate,MediaRouter,OptimizationHints",
		"--ignore-certificate-errors", // the test server's certificate is self-signed
		"--user-data-dir="+t.TempDir(),
		"--remote-debugging-pipe", "about:blank")
	c.cmd.ExtraFiles = []*os.File{cmdR, outW} // fds 3 and 4
	var stderr strings.Builder
	c.cmd.Stderr = &limitedWriter{w: &stderr, n: 8 << 10}
	if err := c.cmd.Start(); err != nil {
		cmdR.Close()
		outW.Close()
		cmdW.Close()
		outR.Close()
		unavailable("start %s: %v", bin, err)
	}
	cmdR.Close()
	outW.Close()
	go c.readLoop()
	t.Cleanup(func() { c.stop(t) })

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := c.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		unavailable("%s did not answer over its debugging pipe: %v; stderr: %s", bin, err, stderr.String())
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		t.Fatal(err)
	}
	c.page = attached.SessionID
	return c
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// readLoop hands each reply to its caller until the browser closes fd 4.
func (c *chromium) readLoop() {
	defer close(c.done)
	r := bufio.NewReaderSize(c.out, 1<<16)
	for {
		msg, err := r.ReadBytes(0)
		if err != nil {
			c.mu.Lock()
			for id, ch := range c.waiting {
				close(ch)
				delete(c.waiting, id)
			}
			c.mu.Unlock()
			return
		}
		var m struct {
			ID int `json:"id"`
			cdpReply
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
			continue // an event
		}
		c.mu.Lock()
		ch := c.waiting[m.ID]
		delete(c.waiting, m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m.cdpReply
		}
	}
}

// call sends method with params to the browser (session "") or a page
// and unmarshals the result into result (when not nil).
func (c *chromium) call(ctx context.Context, session, method string, params any, result any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpReply, 1)
	c.waiting[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := c.in.Write(append(b, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case rep, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: the browser exited", method)
		}
		if rep.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, rep.Error.Message, rep.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(rep.Result, result)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// stop closes the browser and waits for it and the reader.
func (c *chromium) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.call(ctx, "", "Browser.close", nil, nil); err != nil {
		_ = c.cmd.Process.Kill()
	}
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-exited
	}
	c.in.Close()
	<-c.done
	c.out.Close()
}

// eval evaluates a JavaScript expression in the page, awaiting a promise,
// and unmarshals its value into v.
func (c *chromium) eval(ctx context.Context, expr string, v any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := c.call(ctx, c.page, "Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &res)
	if err != nil {
		return err
	}
	if e := res.ExceptionDetails; e != nil {
		return fmt.Errorf("%s: %s %s", expr, e.Text, e.Exception.Description)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(res.Result.Value, v)
}

// navigate loads url in the page and waits until it has loaded.
func (c *chromium) navigate(ctx context.Context, url string) error {
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := c.call(ctx, c.page, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return errors.New("navigate: " + nav.ErrorText)
	}
	for {
		var state string
		if err := c.eval(ctx, `location.href + " " + document.readyState`, &state); err == nil && state == url+" complete" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("navigate %s: %w", url, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// browserCookie is a cookie as the browser keeps it (Storage.getCookies).
type browserCookie struct {
	Name     string  `json:"name"`
	Value    string  `json:"value"`
	Domain   string  `json:"domain"`
	Path     string  `json:"path"`
	Expires  float64 `json:"expires"` // Unix seconds; -1 for a session cookie
	HTTPOnly bool    `json:"httpOnly"`
	Secure   bool    `json:"secure"`
	Session  bool    `json:"session"`
	SameSite string  `json:"sameSite"`
}

// cookies returns every cookie the browser holds.
func (c *chromium) cookies(ctx context.Context) ([]browserCookie, error) {
	var res struct {
		Cookies []browserCookie `json:"cookies"`
	}
	err := c.call(ctx, "", "Storage.getCookies", map[string]any{}, &res)
	return res.Cookies, err
}

// String describes the cookie without its value.
func (c *browserCookie) String() string {
	if c == nil {
		return "no cookie"
	}
	return fmt.Sprintf("%s domain=%s path=%s expires=%.0f httpOnly=%v secure=%v session=%v sameSite=%s",
		c.Name, c.Domain, c.Path, c.Expires, c.HTTPOnly, c.Secure, c.Session, c.SameSite)
}
