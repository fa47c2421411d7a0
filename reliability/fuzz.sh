#!/bin/sh
# fuzz.sh runs every fuzz target of the module for a short time each
# (FUZZTIME, default 10s), one after another, and stops at the first
# failure. A failing input is written under testdata/fuzz/<target>/ of the
# package; commit it with the fix so that plain `go test` replays it.
#
#	reliability/fuzz.sh            # from the module root or anywhere in it
#	FUZZTIME=1m reliability/fuzz.sh
set -eu
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
# package target...
targets="
. FuzzValidateName
. FuzzValidateGlob
. FuzzMatchGlob
. FuzzEncodePayload
. FuzzEncodeData
. FuzzSessionToken
. FuzzParseURL
. FuzzForeignMessage
"
echo "$targets" | while read -r pkg target; do
	[ -n "$pkg" ] || continue
	echo "== $target ($pkg, $fuzztime)"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
done
