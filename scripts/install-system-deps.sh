#!/usr/bin/env bash
# Debian packages the test suites need, as "command:package" pairs. Idempotent: installs only what is missing.
set -euo pipefail
needs=(
  "curl:curl"
  "iptables:iptables"
  "conntrack:conntrack"
  "ip:iproute2"
  "unshare:util-linux"
  "az:azure-cli"
)
# kubectl for the Kubernetes API emulator's tests: unpacked, never apt-get installed (see ensure-kubectl.sh).
bash "$(dirname "$0")/ensure-kubectl.sh"
missing=()
for pair in "${needs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
