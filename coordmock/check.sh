#!/usr/bin/env bash
# Regenerates the mocks into a temporary directory with the go:generate
# line of generate.go and fails when mocks.go differs from the result.
set -euo pipefail
cd "$(dirname "$0")"

directive=$(sed -n 's#^//go:generate ##p' generate.go)
if [ -z "$directive" ]; then
	echo "coordmock/check.sh: no go:generate line in generate.go" >&2
	exit 2
fi
case "$directive" in
*-destination=mocks.go*) ;;
*)
	echo "coordmock/check.sh: the go:generate line must write -destination=mocks.go" >&2
	exit 2
	;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086 # the directive is split into words on purpose
set -- ${directive//-destination=mocks.go/-destination=$tmp/mocks.go}
"$@"

if ! diff -u mocks.go "$tmp/mocks.go"; then
	echo "coordmock/check.sh: mocks.go is out of date; run 'go generate ./coordmock'" >&2
	exit 1
fi
echo "coordmock: mocks.go is current"
