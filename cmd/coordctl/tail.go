package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// tailJSON is one message in tail's JSON output (one object per line).
type tailJSON struct {
	Type      string          `json:"type"` // invalidation, pattern, event, gap, malformed
	Channel   string          `json:"channel"`
	Key       string          `json:"key,omitempty"`
	Topic     string          `json:"topic,omitempty"`
	Instance  string          `json:"instance,omitempty"`
	Timestamp string          `json:"timestamp,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	Error     string          `json:"error,omitempty"`
	Size      int             `json:"size,omitempty"`
}

// tail: tail [invalidations|events] [--topic T]: prints each message until
// interrupted.
func (c *cli) tail(ctx context.Context, args []string) error {
	fs := c.flagSet("tail")
	topic := fs.String("topic", "", "only events of this topic")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("tail", rest, 0, 1, "at most one of invalidations, events"); err != nil {
		return err
	}
	opts := coordredis.TailOptions{Invalidations: true, Events: true}
	if len(rest) == 1 {
		switch rest[0] {
		case "invalidations", "invalidation", "inv":
			opts.Events = false
		case "events", "event":
			opts.Invalidations = false
		case "all":
		default:
			return usageErr("tail: %q: want invalidations, events or nothing (both)", rest[0])
		}
	}
	if *topic != "" && !opts.Events {
		return usageErr("tail: --topic needs events")
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var werr error
	opts.Ready = func() {
		what := []string{}
		if opts.Invalidations {
			what = append(what, "invalidations")
		}
		if opts.Events {
			what = append(what, "events")
		}
		fmt.Fprintf(c.stderr, "coordctl: tailing %s on %s (Ctrl-C to stop)\n", strings.Join(what, " and "), cn.where)
	}
	err = cn.b.Tail(ctx, opts, func(m coordredis.TailMessage) {
		if m.Event != nil && *topic != "" && m.Event.Topic != *topic {
			return
		}
		if err := c.printTail(m); err != nil && werr == nil {
			werr = err
			cancel() // stdout is gone: stop
		}
	})
	if err != nil {
		return err
	}
	return werr
}

// printTail prints one tailed message on one line.
func (c *cli) printTail(m coordredis.TailMessage) error {
	j := tailJSON{Channel: m.Channel}
	switch {
	case m.Gap:
		j.Type = "gap"
		j.Error = "reconnected: messages may have been missed"
	case m.Err != nil:
		j.Type, j.Error, j.Size = "malformed", m.Err.Error(), m.Size
	case m.Invalidation != nil:
		inv := m.Invalidation
		j.Type = inv.Kind.String()
		if j.Type == "key" {
			j.Type = "invalidation"
		}
		j.Key, j.Instance, j.Timestamp, j.Metadata = inv.Key, inv.InstanceID, timeJSON(inv.Timestamp), inv.Metadata
	case m.Event != nil:
		ev := m.Event
		j.Type, j.Topic, j.Instance, j.Timestamp = "event", ev.Topic, ev.InstanceID, timeJSON(ev.Timestamp)
		if string(ev.Payload) != "null" {
			j.Payload = ev.Payload
		}
	}
	if c.json() {
		return c.writeJSON(j)
	}
	var line string
	switch j.Type {
	case "gap", "malformed":
		line = fmt.Sprintf("%s\t%s\t%s", j.Type, j.Channel, j.Error)
	case "event":
		line = fmt.Sprintf("%s\tevent\t%s\tfrom=%s\t%s", orDash(j.Timestamp), j.Topic, j.Instance, orEmptyJSON(j.Payload))
	default:
		line = fmt.Sprintf("%s\t%s\t%s\tfrom=%s\t%s", orDash(j.Timestamp), j.Type, j.Key, j.Instance, orEmptyJSON(j.Metadata))
	}
	_, err := fmt.Fprintln(c.stdout, line)
	return err
}

// orEmptyJSON returns raw, or "{}" when it is empty.
func orEmptyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	return string(raw)
}
