#!/usr/bin/env bash
# Tests the Python SDK: installs it (not editable, as users get it) with its
# test extras into the repository's .venv, type-checks it with mypy --strict,
# and runs pytest against the real server.
#
#   CHIRPY_BIN  the server binary (default: target/debug/chirpy; not built here)
#   VENV        the virtualenv to use (default: .venv at the repository root)
#
# Extra arguments go to pytest, e.g. `sdks/python/test.sh -k worker -x`.
set -euo pipefail

sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$sdk/../.." && pwd)"
venv="${VENV:-$root/.venv}"
export CHIRPY_BIN="${CHIRPY_BIN:-$root/target/debug/chirpy}"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
python="$venv/bin/python"

if [ ! -x "$CHIRPY_BIN" ]; then
  echo "sdks/python/test.sh: no server binary at $CHIRPY_BIN (cargo build --bin chirpy, or set CHIRPY_BIN)" >&2
  exit 1
fi

# A stale build/ could carry deleted modules into the wheel.
rm -rf "$sdk/build"
"$python" -m pip install --quiet --disable-pip-version-check "$sdk[test]"
rm -rf "$sdk/build"

cd "$sdk"
echo "--- mypy --strict (sdks/python)"
"$python" -m mypy --strict src/chirpy tests
echo "--- pytest (sdks/python)"
"$python" -m pytest -q "$@"
