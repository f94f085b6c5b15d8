# shellcheck shell=bash
# Source this file: it makes `node` (>= 22) and `pnpm` 10.34.9 available on PATH.
# A machine whose system Node is older (Debian's is 20) gets Node 24 LTS and pnpm from the npm
# registry, installed into the git-ignored .tooling/ folder (about 10 s, once).
PODIDENTITY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PODIDENTITY_NODE_VERSION=24.21.0
PODIDENTITY_PNPM_VERSION=10.34.9
_tooling_bin="$PODIDENTITY_ROOT/.tooling/node_modules/.bin"

_podidentity_node_ok() {
  command -v node >/dev/null 2>&1 &&
    [ "$(node -p 'Number(process.versions.node.split(".")[0])' 2>/dev/null)" -ge 22 ] 2>/dev/null
}
_podidentity_pnpm_ok() {
  command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version 2>/dev/null)" = "$PODIDENTITY_PNPM_VERSION" ]
}

if [ -x "$_tooling_bin/pnpm" ]; then
  export PATH="$_tooling_bin:$PATH"
fi
if ! _podidentity_node_ok || ! _podidentity_pnpm_ok; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "podidentity: needs Node.js with npm on PATH to bootstrap its toolchain" >&2
    return 1 2>/dev/null || exit 1
  fi
  _pkgs="pnpm@$PODIDENTITY_PNPM_VERSION"
  _podidentity_node_ok || _pkgs="node@$PODIDENTITY_NODE_VERSION $_pkgs"
  echo "podidentity: installing $_pkgs into .tooling/ (system node: $(node --version 2>/dev/null || echo none))" >&2
  # shellcheck disable=SC2086
  npm install --prefix "$PODIDENTITY_ROOT/.tooling" --no-save --no-audit --no-fund --loglevel=error $_pkgs >&2 ||
    { echo "podidentity: toolchain bootstrap failed" >&2; return 1 2>/dev/null || exit 1; }
  export PATH="$_tooling_bin:$PATH"
fi
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 AZURE_CORE_COLLECT_TELEMETRY=false
unset _tooling_bin _pkgs
