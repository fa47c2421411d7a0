// Command coordctl administers coord on Redis: it lists, shows and
// force-releases leases, runs a command under a lease, counts, lists and
// revokes sessions, follows invalidations and events live, and reports
// health. It connects as backend.Open does (--url or REDIS_URL, else
// REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB and REDIS_TLS) and finds
// a Redis Cluster by itself. See docs/CLI.md for every subcommand, flag and
// exit code.
//
//	go install github.com/cgn-bot/coord/cmd/coordctl@latest
//	coordctl --url redis://localhost:6379 lock list
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	goredis "github.com/redis/go-redis/v9"

	coordredis "github.com/cgn-bot/coord/backend/redis"
)

func main() { os.Exit(runMain()) }

// runMain runs coordctl on the process's arguments, environment and
// standard streams, until it finishes or SIGINT or SIGTERM arrives.
func runMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// go-redis's own log lines (each failed dial of its pool) would repeat
	// on stderr what the connection retries already say: this program
	// owns the process, so it silences them for the whole process.
	goredis.SetLogger(coordredis.SlogLogger(slog.New(slog.DiscardHandler)))
	return run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}
