package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cgn-bot/coord"
)

const streamsUsage = `coordctl stream: durable streams (see docs/STREAMS.md)

  stream info STREAM                 length, first and last IDs, dead letters, entries trimmed while pending
  stream pending STREAM              per group: consumers, pending, lag, oldest pending, last delivered ID
  stream dead STREAM [-n N]          the oldest N dead letters (default 20)
  stream replay STREAM [FROM] [-n N] N entries from the ID FROM (default: the first; N default 20)
`

// streams dispatches the stream subcommands.
func (c *cli) streams(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, streamsUsage)
		return usageErr("stream: want info, pending, dead or replay")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "info", "pending":
		return c.streamInfo(ctx, sub, rest)
	case "dead", "replay":
		return c.streamEntries(ctx, sub, rest)
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, streamsUsage)
		return nil
	}
	return usageErr("stream: unknown command %q (want info, pending, dead or replay)", sub)
}

// streamInfoJSON is stream info's JSON output.
type streamInfoJSON struct {
	Stream              string            `json:"stream"`
	Length              int64             `json:"length"`
	FirstID             string            `json:"first_id"`
	LastID              string            `json:"last_id"`
	DeadLetters         int64             `json:"dead_letters"`
	TrimmedWhilePending int64             `json:"trimmed_while_pending"`
	Groups              []streamGroupJSON `json:"groups"`
}

type streamGroupJSON struct {
	Name            string  `json:"name"`
	Consumers       int     `json:"consumers"`
	Pending         int64   `json:"pending"`
	Lag             int64   `json:"lag"`
	OldestPendingMs float64 `json:"oldest_pending_ms"`
	LastDeliveredID string  `json:"last_delivered_id"`
}

func (c *cli) streamInfo(ctx context.Context, sub string, args []string) error {
	fs := c.flagSet("stream " + sub)
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("stream "+sub, rest, 1, 1, "STREAM"); err != nil {
		return err
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	in, err := cn.b.Streams().Info(octx, rest[0])
	if err != nil {
		return err
	}
	out := streamInfoJSON{Stream: rest[0], Length: in.Length, FirstID: in.FirstID, LastID: in.LastID, DeadLetters: in.DeadLetters, TrimmedWhilePending: in.TrimmedWhilePending, Groups: []streamGroupJSON{}}
	for _, g := range in.Groups {
		out.Groups = append(out.Groups, streamGroupJSON{Name: g.Name, Consumers: g.Consumers, Pending: g.Pending, Lag: g.Lag,
			OldestPendingMs: float64(g.OldestPending.Microseconds()) / 1000, LastDeliveredID: g.LastDeliveredID})
	}
	if c.json() {
		return c.writeJSON(out)
	}
	tw := c.table()
	if sub == "info" {
		fmt.Fprintln(tw, "STREAM\tLENGTH\tFIRST\tLAST\tGROUPS\tDEAD\tTRIMMED-WHILE-PENDING")
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\n", out.Stream, out.Length, orDash(out.FirstID), orDash(out.LastID), len(out.Groups), out.DeadLetters, out.TrimmedWhilePending)
	} else {
		fmt.Fprintln(tw, "GROUP\tCONSUMERS\tPENDING\tLAG\tOLDEST-PENDING\tLAST-DELIVERED")
		for _, g := range in.Groups {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%v\t%s\n", g.Name, g.Consumers, g.Pending, g.Lag, g.OldestPending.Round(time.Millisecond), orDash(g.LastDeliveredID))
		}
	}
	return tw.Flush()
}

// streamEntryJSON is one entry of stream dead and stream replay.
type streamEntryJSON struct {
	ID         string          `json:"id"`
	InstanceID string          `json:"instance_id"`
	Timestamp  time.Time       `json:"timestamp"`
	Deliveries int             `json:"deliveries,omitempty"`
	Payload    json.RawMessage `json:"payload"`
}

func (c *cli) streamEntries(ctx context.Context, sub string, args []string) error {
	fs := c.flagSet("stream " + sub)
	n := fs.Int("n", 20, "how many entries")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	most := 1
	if sub == "replay" {
		most = 2
	}
	if err := wantArgs("stream "+sub, rest, 1, most, "STREAM"); err != nil {
		return err
	}
	if *n < 1 || *n > coord.MaxStreamCount {
		return usageErr("stream %s: -n must be 1..%d", sub, coord.MaxStreamCount)
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	var es []coord.StreamEntry
	if sub == "dead" {
		es, err = cn.b.Streams().DeadLetters(octx, rest[0], *n)
	} else {
		from := ""
		if len(rest) == 2 {
			from = rest[1]
		}
		es, err = cn.b.Streams().Range(octx, rest[0], from, *n)
	}
	if err != nil {
		return err
	}
	out := make([]streamEntryJSON, 0, len(es))
	for _, e := range es {
		out = append(out, streamEntryJSON{ID: e.ID, InstanceID: e.InstanceID, Timestamp: e.Timestamp, Deliveries: e.Deliveries, Payload: e.Payload})
	}
	if c.json() {
		return c.writeJSON(out)
	}
	tw := c.table()
	head := "ID\tINSTANCE\tTIMESTAMP\tPAYLOAD"
	if sub == "dead" {
		head = "ID\tINSTANCE\tTIMESTAMP\tDELIVERIES\tPAYLOAD"
	}
	fmt.Fprintln(tw, head)
	for _, e := range out {
		p := strings.ReplaceAll(string(e.Payload), "\t", " ")
		if len(p) > 120 {
			p = p[:117] + "..."
		}
		if sub == "dead" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.ID, orDash(e.InstanceID), e.Timestamp.UTC().Format(time.RFC3339Nano), e.Deliveries, p)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, orDash(e.InstanceID), e.Timestamp.UTC().Format(time.RFC3339Nano), p)
		}
	}
	return tw.Flush()
}
