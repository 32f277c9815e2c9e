#!/usr/bin/env bash
# Builds the TypeScript conformance runner (conformance/runners.yaml runs it
# from the repository root): the SDK in sdks/typescript when needed (npm ci
# from its lockfile, then its tsc build to sdks/typescript/dist), then the
# runner, type-checked with the SDK's tsc and bundled by the SDK's esbuild
# with `@chirpy/client` (the SDK's Node entry point, dist/node.js) to
# target/conformance/typescript-runner/runner.js, an ES module that needs
# nothing outside that folder at run time:
#
#   node target/conformance/typescript-runner/runner.js
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
sdk=$root/sdks/typescript
runner=$root/conformance/runners/typescript
out=$root/target/conformance/typescript-runner

fail() { echo "conformance/runners/typescript/build.sh: $*" >&2; exit 1; }
command -v node >/dev/null || fail "node is missing (the TypeScript SDK needs Node >= 20)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
(( node_major >= 20 )) || fail "Node 20 or later is needed, not $(node --version)"

cd "$sdk"
# npm ci when node_modules was not installed from this very lockfile (the
# same stamp as sdks/typescript/test.sh and scripts/setup).
if ! cmp -s package-lock.json node_modules/.chirpy-installed-lock 2>/dev/null; then
  command -v npm >/dev/null || fail "npm is missing"
  npm ci --no-audit --no-fund --engine-strict=false --loglevel=error
  cp package-lock.json node_modules/.chirpy-installed-lock
fi

# The SDK's own build, when dist is missing or older than its sources.
stamp=dist/.chirpy-conformance-built
if [[ ! -f dist/node.js || ! -f $stamp ]] ||
   [[ -n $(find src tsconfig.json package.json package-lock.json -newer "$stamp" -print -quit) ]]; then
  rm -rf dist
  node_modules/.bin/tsc -p .
  touch "$stamp"
fi

# The runner: strict type check, then one bundled ES module.
node_modules/.bin/tsc -p "$runner/tsconfig.json"
mkdir -p "$out"
node_modules/.bin/esbuild "$runner/runner.ts" \
  --bundle --platform=node --format=esm --target=node20 \
  --tsconfig="$runner/tsconfig.json" \
  --sourcemap --log-level=warning \
  --outfile="$out/runner.js"
# Node 20 reads a .js file as CommonJS unless its package says otherwise.
echo '{"type": "module", "private": true}' > "$out/package.json"
