#!/usr/bin/env bash
# Builds the TypeScript SDK and runs its tests against the real server: the
# Node tests (the client over gRPC and gRPC-web, the worker, the README's
# examples), then the browser test (headless Chromium, cross-origin gRPC-web).
#
#   CHIRPY_BIN  the server binary; default: the repository's target/debug/chirpy
#               (this script does not build it: `cargo build --bin chirpy` first)
#   CHROMIUM    the browser; default /usr/bin/chromium (Debian's `chromium` package)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root=$(cd ../.. && pwd)
export CHIRPY_BIN=${CHIRPY_BIN:-$root/target/debug/chirpy}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

fail() { echo "sdks/typescript/test.sh: $*" >&2; exit 1; }
[[ -x $CHIRPY_BIN ]] || fail "no chirpy binary at $CHIRPY_BIN (run cargo build --bin chirpy, or set CHIRPY_BIN)"
[[ -x $CHROMIUM ]] || fail "no browser at $CHROMIUM (apt-get install chromium, or set CHROMIUM)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
(( node_major >= 20 )) || fail "Node 20 or later is needed, not $(node --version)"

# npm ci when node_modules was not installed from this very lockfile (the
# same stamp as scripts/setup, so neither repeats the other's install).
if ! cmp -s package-lock.json node_modules/.chirpy-installed-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --engine-strict=false --loglevel=error
  cp package-lock.json node_modules/.chirpy-installed-lock
fi

rm -rf dist
node_modules/.bin/tsc -p .

node --test --test-reporter=spec --test-timeout=60000 dist/test/node/
node --test --test-reporter=spec --test-timeout=60000 dist/test/browser/
