#!/bin/sh
# fuzz.sh runs every fuzz target of the module for a short time each
# (FUZZTIME, default 10s), one after another, and stops at the first
# failure. Targets are found with `go test -list`, so a new Fuzz function
# anywhere in the module is run without editing this script. A failing
# input is written under testdata/fuzz/<target>/ of its package; commit it
# with the fix so that plain `go test` replays it.
#
#	reliability/fuzz.sh                  # from anywhere in the module
#	FUZZTIME=1m reliability/fuzz.sh
#	reliability/fuzz.sh ./backend/redis  # only some packages
set -eu
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
[ "$#" -gt 0 ] || set -- ./...
failed=0
for pkg in $(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' "$@"); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	grep -qs '^func Fuzz' "$dir"/*_test.go || continue
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($fuzztime)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	done
done
