#!/usr/bin/env bash
# Makes sure a kubectl exists for the Kubernetes API emulator's conformance tests (packages/testbed/test/kube).
# Uses $KUBECTL or a kubectl on PATH when there is one. Otherwise Debian's kubernetes-client is fetched with
# `apt-get download` and unpacked with `dpkg -x` into .tooling/kubectl (git-ignored), where the tests look for it:
# installing that package would conflict with the kubectl package preinstalled on our machines.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="$root/.tooling/kubectl"

if [ -n "${KUBECTL:-}" ] && [ -x "$KUBECTL" ]; then exit 0; fi
if command -v kubectl >/dev/null 2>&1; then exit 0; fi
if [ -x "$target/usr/bin/kubectl" ]; then exit 0; fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
download() { (cd "$tmp" && apt-get download -qq kubernetes-client); }
if ! download; then
  # The package lists may be missing on a fresh machine; refreshing them needs root.
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && download
  else
    echo "ensure-kubectl: could not download kubernetes-client (run as root, or set KUBECTL to a kubectl binary)" >&2
    exit 1
  fi
fi
mkdir -p "$target"
dpkg -x "$tmp"/kubernetes-client_*.deb "$target"
"$target/usr/bin/kubectl" version --client >/dev/null
echo "ensure-kubectl: unpacked $("$target/usr/bin/kubectl" version --client --short 2>/dev/null || echo kubectl) into $target"
