#!/usr/bin/env bash
# Makes sure a promtool exists for the recording-rules test (packages/install/test/recording-rules.test.ts) and
# prints its path. Uses $PROMTOOL when it is executable. Otherwise promtool comes from Debian's prometheus package:
# fetched with `apt-get download` and unpacked with `dpkg-deb -x`, never installed (its postinst would start a
# Prometheus server). Only usr/bin/promtool is kept, in a cache outside the clone (CI runs in a fresh clone each
# time), keyed by the package version: $PODIDENTITY_CACHE_DIR (default /var/cache/podidentity)/promtool-<version>/.
# A lock keeps two parallel runs from unpacking into the same place.
set -euo pipefail
root="${PODIDENTITY_CACHE_DIR:-/var/cache/podidentity}"

if [ -n "${PROMTOOL:-}" ] && [ -x "$PROMTOOL" ]; then echo "$PROMTOOL"; exit 0; fi

candidate() { apt-cache policy prometheus 2>/dev/null | awk '$1 == "Candidate:" { print $2 }'; }
version="$(candidate)"
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  # The package lists may be missing on a fresh machine; refreshing them needs root.
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && version="$(candidate)"; fi
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  echo "ensure-promtool: Debian's prometheus package is not available (run as root, or set PROMTOOL to a promtool binary)" >&2
  exit 1
fi
cache="$root/promtool-${version//[^A-Za-z0-9.+~-]/_}"
if [ -x "$cache/promtool" ]; then echo "$cache/promtool"; exit 0; fi

mkdir -p "$root"
exec 9>"$root/promtool.lock"
flock -w 600 9 || { echo "ensure-promtool: another run holds $root/promtool.lock" >&2; exit 1; }
# The run that held the lock may have unpacked it meanwhile.
if [ -x "$cache/promtool" ]; then echo "$cache/promtool"; exit 0; fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# apt-get download writes as its _apt user when it can (else it warns and writes as root).
chown _apt "$tmp" 2>/dev/null || true
(cd "$tmp" && apt-get download -qq "prometheus=$version")
dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
mkdir -p "$cache"
install -m 0755 "$tmp/root/usr/bin/promtool" "$cache/promtool.partial"
"$cache/promtool.partial" --version >/dev/null
mv "$cache/promtool.partial" "$cache/promtool"
echo "$cache/promtool"
