package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/driver"
)

// holderJSON is one holder in JSON output. It never carries the token.
type holderJSON struct {
	Holder string `json:"holder"`
	TTLms  int64  `json:"ttl_ms"`
	Tag    string `json:"tag"`
}

func toHolders(hs []coordredis.Holder) []holderJSON {
	out := make([]holderJSON, 0, len(hs))
	for _, h := range hs {
		out = append(out, holderJSON{Holder: h.InstanceID, TTLms: ms(h.TTL), Tag: h.Tag})
	}
	return out
}

// rwJSON is rw show's JSON output.
type rwJSON struct {
	Resource       string       `json:"resource"`
	Fence          int64        `json:"fence"`
	Writer         *holderJSON  `json:"writer"`
	Readers        []holderJSON `json:"readers"`
	WritersWaiting []holderJSON `json:"writers_waiting"`
}

// semJSON is sem show's JSON output.
type semJSON struct {
	Resource string       `json:"resource"`
	Fence    int64        `json:"fence"`
	Holders  []holderJSON `json:"holders"`
}

// leaderJSON is elect show's JSON output, and one line of elect watch's.
type leaderJSON struct {
	Election string `json:"election"`
	Leader   bool   `json:"leader"`
	Holder   string `json:"holder,omitempty"`
	Identity string `json:"identity,omitempty"`
	Term     int64  `json:"term,omitempty"`
	TTLms    int64  `json:"ttl_ms,omitempty"`
}

func toLeaderJSON(li coord.LeaderInfo) leaderJSON {
	return leaderJSON{Election: li.Election, Leader: li.InstanceID != "", Holder: li.InstanceID, Identity: li.Identity, Term: li.Term, TTLms: ms(li.TTL)}
}

// leaseCmd runs the rw, sem and elect commands.
func (c *cli) leaseCmd(ctx context.Context, cmd string, rest []string) error {
	want := map[string]string{"rw": "show", "sem": "show", "elect": "show or watch"}[cmd]
	if len(rest) == 0 {
		return usageErr("%s: want %s", cmd, want)
	}
	sub, rest := rest[0], rest[1:]
	switch {
	case sub == "show" && cmd == "rw":
		return c.oneName(ctx, "rw show", rest, c.rwShow)
	case sub == "show" && cmd == "sem":
		return c.oneName(ctx, "sem show", rest, c.semShow)
	case sub == "show" && cmd == "elect":
		return c.oneName(ctx, "elect show", rest, c.electShow)
	case sub == "watch" && cmd == "elect":
		return c.electWatch(ctx, rest)
	}
	return usageErr("%s: unknown command %q (want %s)", cmd, sub, want)
}

// oneName parses the arguments of a command taking one NAME, connects
// and runs fn.
func (c *cli) oneName(ctx context.Context, name string, args []string, fn func(context.Context, *conn, string) error) error {
	fs := c.flagSet(name)
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs(name, rest, 1, 1, "NAME"); err != nil {
		return err
	}
	if err := driver.ValidateName("name", rest[0]); err != nil {
		return &codeError{code: exitUsage, err: err}
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	return fn(octx, cn, rest[0])
}

// holderRow writes one holder as a table row.
func holderRow(row func(string, ...any), role string, h coordredis.Holder) {
	ttl := "none"
	if h.TTL >= 0 {
		ttl = h.TTL.Round(time.Millisecond).String()
	}
	row("%s\t%s\t%s\t%s\n", role, orDash(h.InstanceID), ttl, h.Tag)
}

// rwShow: rw show NAME. Exit 3 when nobody holds it.
func (c *cli) rwShow(ctx context.Context, cn *conn, name string) error {
	ri, err := cn.b.RW(ctx, name)
	if err != nil {
		return err
	}
	if c.json() {
		out := rwJSON{Resource: ri.Resource, Fence: ri.Fence, Readers: toHolders(ri.Readers), WritersWaiting: toHolders(ri.WritersWaiting)}
		if ri.Writer != nil {
			w := toHolders([]coordredis.Holder{*ri.Writer})[0]
			out.Writer = &w
		}
		err = c.writeJSON(out)
	} else {
		tw := c.table()
		fmt.Fprintf(tw, "RESOURCE %s\tFENCE %s\n", ri.Resource, fenceText(ri.Fence))
		fmt.Fprintln(tw, "ROLE\tHOLDER\tTTL\tTAG")
		row := func(f string, a ...any) { fmt.Fprintf(tw, f, a...) }
		if ri.Writer != nil {
			holderRow(row, "writer", *ri.Writer)
		}
		for _, h := range ri.Readers {
			holderRow(row, "reader", h)
		}
		for _, h := range ri.WritersWaiting {
			holderRow(row, "waiting-writer", h)
		}
		err = tw.Flush()
	}
	if err == nil && ri.Writer == nil && len(ri.Readers) == 0 {
		return &codeError{code: exitNotFound}
	}
	return err
}

// semShow: sem show NAME. Exit 3 when no permit is held.
func (c *cli) semShow(ctx context.Context, cn *conn, name string) error {
	si, err := cn.b.Semaphore(ctx, name)
	if err != nil {
		return err
	}
	if c.json() {
		err = c.writeJSON(semJSON{Resource: si.Resource, Fence: si.Fence, Holders: toHolders(si.Holders)})
	} else {
		tw := c.table()
		fmt.Fprintf(tw, "RESOURCE %s\tPERMITS %d\tFENCE %s\n", si.Resource, len(si.Holders), fenceText(si.Fence))
		fmt.Fprintln(tw, "ROLE\tHOLDER\tTTL\tTAG")
		row := func(f string, a ...any) { fmt.Fprintf(tw, f, a...) }
		for _, h := range si.Holders {
			holderRow(row, "permit", h)
		}
		err = tw.Flush()
	}
	if err == nil && len(si.Holders) == 0 {
		return &codeError{code: exitNotFound}
	}
	return err
}

// printLeader writes one leader as JSON or a table (with its header when
// header is set).
func (c *cli) printLeader(li coord.LeaderInfo, header bool) error {
	if c.json() {
		return c.writeJSON(toLeaderJSON(li))
	}
	tw := c.table()
	if header {
		fmt.Fprintln(tw, "ELECTION\tLEADER\tIDENTITY\tTERM\tTTL")
	}
	if li.InstanceID == "" {
		fmt.Fprintf(tw, "%s\t-\t-\t-\t-\n", li.Election)
	} else {
		ttl := "none"
		if li.TTL >= 0 {
			ttl = li.TTL.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", li.Election, li.InstanceID, li.Identity, li.Term, ttl)
	}
	return tw.Flush()
}

// electShow: elect show NAME. Exit 3 when there is no leader.
func (c *cli) electShow(ctx context.Context, cn *conn, name string) error {
	li, err := cn.b.Elector().Leader(ctx, name)
	if errors.Is(err, coord.ErrNotFound) {
		if err := c.printLeader(coord.LeaderInfo{Election: name}, true); err != nil {
			return err
		}
		return &codeError{code: exitNotFound}
	}
	if err != nil {
		return err
	}
	return c.printLeader(li, true)
}

// electWatch: elect watch NAME [--count N]: prints the leader, then each
// change of leader, until interrupted (or after N lines).
func (c *cli) electWatch(ctx context.Context, args []string) error {
	fs := c.flagSet("elect watch")
	count := fs.Int("count", 0, "exit after this many lines (0: never)")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("elect watch", rest, 1, 1, "NAME"); err != nil {
		return err
	}
	if err := driver.ValidateName("election", rest[0]); err != nil {
		return &codeError{code: exitUsage, err: err}
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		n    int
		werr error
	)
	sub, err := cn.b.Elector().Observe(ctx, rest[0], func(li coord.LeaderInfo) {
		mu.Lock()
		defer mu.Unlock()
		if werr != nil {
			return
		}
		werr = c.printLeader(li, n == 0)
		n++
		if werr != nil || (*count > 0 && n >= *count) {
			cancel()
		}
	})
	if err != nil {
		return err
	}
	<-sub.Done()
	mu.Lock()
	defer mu.Unlock()
	return werr
}
