#!/usr/bin/env bash
# Usage: scripts/ensure-node.sh VERSION — prints the path of a Node.js VERSION binary, installing it first if needed.
# Node comes from the npm registry's `node` package (as scripts/toolchain.sh gets Node 24), cached outside the
# clone, keyed by version: ${XDG_CACHE_HOME:-$HOME/.cache}/podidentity/node/VERSION. Used by the SDK's test that
# imports the packed package on the oldest Node its engines allow (and on older ones, which must fail readably).
set -euo pipefail
version="${1:?usage: ensure-node.sh VERSION}"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "ensure-node: VERSION must look like 22.12.0, got '$version'" >&2; exit 2; }
dir="${XDG_CACHE_HOME:-$HOME/.cache}/podidentity/node/$version"
bin="$dir/node_modules/node/bin/node"
if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "v$version" ]; then
  command -v npm >/dev/null 2>&1 || { echo "ensure-node: needs npm on PATH (source scripts/toolchain.sh)" >&2; exit 1; }
  mkdir -p "$dir"
  # A lock, so parallel test runs do not install into the same folder at once.
  exec 9>"$dir.lock"
  flock 9
  if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "v$version" ]; then
    echo "ensure-node: installing node@$version into $dir" >&2
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node@$version" >&2
  fi
fi
[ "$("$bin" --version)" = "v$version" ] || { echo "ensure-node: $bin is not Node $version" >&2; exit 1; }
echo "$bin"
