// Command demo runs several coord instances side by side and shows, in
// lines a person can follow, what coord does for a fleet: a scheduled job
// that runs once per tick under a lease whatever the number of instances,
// near caches that stay coherent after an update, a session created on one
// instance, read on another and ended everywhere from a third, one rate
// limit shared by every instance, and events between instances.
//
//	go run ./examples/demo                      # in-process memory hub, 3 instances, 10s
//	go run ./examples/demo -redis redis://127.0.0.1:6379/0 -instances 5 -duration 0
//
// With -redis each instance has its own go-redis client and its own coord
// Redis backend, opened with backend.Open and wrapped in the metrics
// middleware, exactly as separate processes would be. With no -redis the
// instances are nodes of one in-process memory hub (backend/memory, opened
// from mem:// URLs), so the demo needs no server and brings no Redis
// emulator into the module's build. While it runs it
// serves /healthz (package health) and /metrics (Prometheus) on -listen.
// -duration 0 runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config holds the demo's settings, from flags.
type config struct {
	redisURL  string        // "": an in-process memory hub
	instances int           // instances to run
	duration  time.Duration // 0: until ctx ends
	listen    string        // address of /healthz and /metrics
	tick      time.Duration // interval of the scheduled job
}

// parseFlags reads the command line into a config.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.redisURL, "redis", "", "Redis URL (redis:// or rediss://); empty runs the instances on an in-process memory hub")
	fs.IntVar(&cfg.instances, "instances", 3, "number of instances")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to run; 0 runs until interrupted")
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:0", "address for /healthz and /metrics")
	fs.DurationVar(&cfg.tick, "tick", time.Second, "interval of the scheduled job")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch {
	case cfg.instances < 1 || cfg.instances > 100:
		return cfg, fmt.Errorf("-instances %d: want 1 to 100", cfg.instances)
	case cfg.duration < 0:
		return cfg, fmt.Errorf("-duration %v is negative", cfg.duration)
	case cfg.tick < 10*time.Millisecond:
		return cfg, fmt.Errorf("-tick %v: want at least 10ms", cfg.tick)
	}
	return cfg, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}
