#!/usr/bin/env bash
# Builds and runs the side-by-side benchmark (coord vs raw go-redis,
# rueidis, redsync and redislock) on a redis-server it starts itself on a free
# loopback port. Flags are passed on, e.g.:
#   bench/run.sh -runs 3 -o /tmp/bench.md          # the figures of docs/BENCHMARKS.md
#   bench/run.sh -duration 2s -rounds 7 -o /tmp/bench.md
#   bench/run.sh -only 'contended/coord' -cpuprofile /tmp/cpu.out
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# The build uses the working tree of the main module (replace => ../):
# say so when it differs from the commit.
if ! git -C .. diff --quiet HEAD -- '*.go' '*.lua' go.mod go.sum ':(exclude)bench' 2>/dev/null; then
	rev="$rev+uncommitted changes"
fi
go build -ldflags "-X 'main.coordRev=$rev'" -o "${TMPDIR:-/tmp}/coordbench" .
exec "${TMPDIR:-/tmp}/coordbench" "$@"
