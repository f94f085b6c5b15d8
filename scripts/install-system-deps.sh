#!/usr/bin/env bash
# Debian packages the test suites need, as "command:package" pairs. Idempotent: installs only what is missing.
# `--demo`: only what `make demo` needs (no azure-cli, no kubectl). As root it installs them with apt-get; otherwise
# it prints the one command to run and exits 1.
set -euo pipefail
needs=(
  "curl:curl"
  "iptables:iptables"
  "conntrack:conntrack"
  "ip:iproute2"
  "unshare:util-linux"
  "nsenter:util-linux"
)
if [ "${1:-}" = "--demo" ]; then
  scope=demo
else
  scope=test
  needs+=("az:azure-cli")
  # `make images` (scripts/build-images.sh) and the e2e images scenario, which runs them with crun
  needs+=("mmdebstrap:mmdebstrap" "umoci:umoci" "crun:crun")
  # kubectl for the Kubernetes API emulator's tests: unpacked, never apt-get installed (see ensure-kubectl.sh).
  bash "$(dirname "$0")/ensure-kubectl.sh"
fi
missing=()
for pair in "${needs[@]}"; do
  pkg="${pair#*:}"
  command -v "${pair%%:*}" >/dev/null 2>&1 || [[ " ${missing[*]:-} " == *" $pkg "* ]] || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "podidentity: the $scope needs Debian packages that are missing: ${missing[*]}. Install them, then run it again:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "podidentity: installing ${missing[*]} (apt-get)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
