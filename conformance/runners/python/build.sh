#!/usr/bin/env bash
# Builds the Python conformance runner (conformance/runners.yaml runs this
# from the repository root): the repository's .venv, the one
# sdks/python/test.sh uses, with the SDK of sdks/python installed as users get
# it (not editable). The runner itself is plain source:
#
#   .venv/bin/python conformance/runners/python/runner.py
#
#   VENV  the virtualenv to use (default: .venv at the repository root)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
sdk="$root/sdks/python"
venv="${VENV:-$root/.venv}"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi

# A stale build/ could carry deleted modules into the wheel.
rm -rf "$sdk/build"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$sdk"
rm -rf "$sdk/build"
