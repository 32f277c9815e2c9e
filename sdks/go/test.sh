#!/usr/bin/env bash
# Checks and tests the Go SDK: gofmt, go vet, and go test against a live
# server. The tests start the chirpy binary themselves: $CHIRPY_BIN, by
# default the repository's target/debug/chirpy (`cargo build --bin chirpy`).
# Extra arguments go to `go test` (e.g. -run Worker -v).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
root="$(cd ../.. && pwd)"
export CHIRPY_BIN="${CHIRPY_BIN:-$root/target/debug/chirpy}"
if [[ ! -x "$CHIRPY_BIN" ]]; then
    echo "sdks/go/test.sh: no chirpy binary at $CHIRPY_BIN (run cargo build --bin chirpy, or set CHIRPY_BIN)" >&2
    exit 1
fi

# gen/ is buf's output, formatted by its plugins; check the hand-written code.
unformatted="$(find . -name '*.go' -not -path './gen/*' -exec gofmt -l {} +)"
if [[ -n "$unformatted" ]]; then
    echo "sdks/go/test.sh: not gofmt-formatted:" >&2
    echo "$unformatted" >&2
    exit 1
fi

go vet ./...
# -count=1: the results depend on the server binary, which go test's cache
# does not see.
go test -count=1 ./... "$@"
