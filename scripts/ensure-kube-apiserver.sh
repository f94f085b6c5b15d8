#!/usr/bin/env bash
# Makes sure a real kube-apiserver and etcd exist for the testbed's second Kubernetes backend
# (packages/testbed/src/real-kube/). Debian ships no kube-apiserver binary, so it is built from Debian's `kubernetes`
# source package (1.20.2, full vendor/) with Debian's Go 1.19, offline (GOPROXY=off), plus one patch for Go >= 1.18
# (scripts/real-kube/reflect2-go118.patch). etcd comes from Debian's etcd-server, unpacked with `dpkg -x`.
#
# Everything expensive is cached OUTSIDE the clone, because CI runs in a fresh clone each time:
#   $PODIDENTITY_CACHE_DIR (default /var/cache/podidentity)/real-kube/
#     toolchain/{go,etcd-server,rsync}/  unpacked .debs
#     kube-apiserver-<key>/     bin/kube-apiserver and gocache/ (Go's build cache), <key> = version + patch hash
# and the clone gets symlinks in .tooling/real-kube/bin/ (git-ignored), where the testbed looks for them.
# A second run with a warm cache only checks the binaries and relinks them (no network, about a second).
#
# The machine's apt configuration is never changed: the source package is fetched through a private sources list
# with a deb-src line and private lists/cache directories.
# Exit status: 0 when both binaries run; 1 with a message on stderr naming what failed and what to do.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PODIDENTITY_CACHE_DIR:-/var/cache/podidentity}/real-kube"
links="$root/.tooling/real-kube/bin"
kube_upstream=1.20.2
go_pkg=golang-1.19
# Disk, measured on Debian 12 / 2 cores: the cache holds 1.8 GB after a build (Go's build cache 1.2 GB; Go, etcd and
# rsync unpacked 0.5 GB; the binary 0.1 GB), and the unpacked source needs about 0.5 GB more while building. The
# threshold leaves headroom. Cold build: 9–15 min (538 s of `make` alone on an idle machine, 875 s on a busy one).
need_free_mb="${PODIDENTITY_KUBE_BUILD_FREE_MB:-4000}"

fail() { echo "ensure-kube-apiserver: $*" >&2; exit 1; }
log() { echo "ensure-kube-apiserver: $*" >&2; }

patch_file="$root/scripts/real-kube/reflect2-go118.patch"
grep -q '^@@ ' "$patch_file" 2>/dev/null || fail "missing or empty $patch_file (part of the repository; restore it with git)"
# The key covers everything that changes the binary: upstream version, Go, the patch and this recipe's build line.
recipe="kube=$kube_upstream go=$go_pkg make WHAT=cmd/kube-apiserver GOPROXY=off CGO_ENABLED=0"
key="$kube_upstream-$( (cat "$patch_file"; echo "$recipe") | sha256sum | cut -c1-12)"
build_dir="$cache/kube-apiserver-$key"
apiserver="$build_dir/bin/kube-apiserver"
toolchain="$cache/toolchain"
etcd_bin="$toolchain/etcd-server/usr/bin/etcd"

link_all() {
  mkdir -p "$links"
  ln -sfn "$apiserver" "$links/kube-apiserver"
  ln -sfn "$etcd_bin" "$links/etcd"
  "$links/kube-apiserver" --version >/dev/null 2>&1 || fail "$apiserver does not run; delete $build_dir and rerun"
  "$links/etcd" --version >/dev/null 2>&1 || fail "$etcd_bin does not run; delete $toolchain/etcd-server and rerun"
}

if [ -x "$apiserver" ] && [ -x "$etcd_bin" ]; then
  link_all
  exit 0
fi

[ "$(id -u)" = 0 ] || [ -w "$(dirname "$cache")" ] 2>/dev/null ||
  fail "cannot write $cache (run as root, or set PODIDENTITY_CACHE_DIR to a writable directory)"
for tool in apt-get dpkg patch make tar flock; do
  command -v "$tool" >/dev/null 2>&1 || fail "the build needs '$tool' on PATH (Debian packages apt, dpkg, patch, make, tar, util-linux)"
done
mkdir -p "$cache"
# One build at a time per cache, also across clones; a second caller waits and then finds the result.
exec 9>"$cache/.lock"
flock -w 3600 9 || fail "timed out after 1 h waiting for another build holding $cache/.lock"
if [ -x "$apiserver" ] && [ -x "$etcd_bin" ]; then
  link_all
  exit 0
fi

free_mb="$(df -Pm "$cache" | awk 'NR==2 {print $4}')"
[ "$free_mb" -ge "$need_free_mb" ] ||
  fail "needs ${need_free_mb} MB free under $cache to build kube-apiserver, has ${free_mb} MB (free disk, or set PODIDENTITY_CACHE_DIR elsewhere)"

# Private apt state: lists and archives under the cache, sources list with deb-src for the source package.
apt_dir="$cache/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
apt_opts=(-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir" -o "Dir::Cache::archives=$apt_dir/archives"
  -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt_ready=""
private_apt() {
  if [ -z "$apt_ready" ]; then
    local suite
    suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    printf 'deb http://deb.debian.org/debian %s main\ndeb-src http://deb.debian.org/debian %s main\n' \
      "$suite" "$suite" >"$apt_dir/sources.list"
    apt-get "${apt_opts[@]}" -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null" \
      update -qq || fail "apt-get update with the private sources list $apt_dir/sources.list failed (network?)"
    apt_ready=1
  fi
  apt-get "${apt_opts[@]}" -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null" "$@"
}

# Unpacks a binary package into $toolchain/<dir> (default: the package's name) once.
unpack_deb() {
  local pkg="$1" dir="$toolchain/${2:-$1}" tmp
  [ -f "$dir/.done-$pkg" ] && return 0
  tmp="$(mktemp -d)"
  (cd "$tmp" && private_apt download -qq "$pkg") || { rm -rf "$tmp"; fail "could not download Debian package $pkg"; }
  mkdir -p "$dir"
  dpkg -x "$tmp"/"$pkg"_*.deb "$dir"
  rm -rf "$tmp"
  touch "$dir/.done-$pkg"
}

unpack_deb etcd-server
[ -x "$etcd_bin" ] || fail "etcd-server did not contain usr/bin/etcd"
if [ -x "$apiserver" ]; then
  link_all
  exit 0
fi

started=$(date +%s)
# Go's compiler and its sources go into one tree, so the package's relative src symlink resolves.
unpack_deb "$go_pkg-go" go
unpack_deb "$go_pkg-src" go
unpack_deb rsync rsync
unpack_deb libpopt0 rsync
goroot="$toolchain/go/usr/lib/go-1.19"
[ -x "$goroot/bin/go" ] && [ -d "$goroot/src/runtime" ] || fail "Go not usable at $goroot after unpacking $go_pkg-go/-src"

src_root="$build_dir/src"
rm -rf "$src_root"
mkdir -p "$src_root"
(cd "$src_root" && private_apt source --download-only -qq kubernetes) ||
  fail "could not download the Debian source package 'kubernetes' (network, or deb-src not reachable)"
orig="$(ls "$src_root"/kubernetes_*.orig.tar.* 2>/dev/null | head -n 1)"
[ -n "$orig" ] || fail "the kubernetes source package has no .orig tarball in $src_root"
tar -xf "$orig" -C "$src_root"
k8s="$(find "$src_root" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
[ -f "$k8s/cmd/kube-apiserver/apiserver.go" ] || fail "unexpected layout of the kubernetes source in $k8s"
case "$(basename "$orig")" in
  *"really$kube_upstream".orig.* | *"_$kube_upstream".orig.*) ;;
  *) fail "Debian's kubernetes source is $(basename "$orig"), not upstream $kube_upstream; update kube_upstream and the patch in this script" ;;
esac
(cd "$k8s" && patch -p1 --forward --quiet <"$patch_file") || fail "the patch $patch_file did not apply to $k8s"

# hack/lib/golang.sh points GOCACHE at _output/local/go/cache; link it to the cache that outlives the source tree.
mkdir -p "$k8s/_output/local/go" "$build_dir/gocache"
ln -sfn "$build_dir/gocache" "$k8s/_output/local/go/cache"
log "building kube-apiserver $kube_upstream (about 10+ min on 2 cores)"
(
  cd "$k8s"
  export PATH="$goroot/bin:$toolchain/rsync/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$toolchain/rsync/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export GOROOT="$goroot" GOFLAGS=-mod=vendor
  export GOPROXY=off GO111MODULE=on CGO_ENABLED=0 GOTOOLCHAIN=local
  export KUBE_GIT_VERSION="v$kube_upstream" KUBE_GIT_TREE_STATE=clean
  make WHAT=cmd/kube-apiserver
) >"$build_dir/build.log" 2>&1 || fail "make WHAT=cmd/kube-apiserver failed; see the end of $build_dir/build.log"
built="$(find "$k8s/_output" -type f -name kube-apiserver -perm -u+x | head -n 1)"
[ -n "$built" ] || fail "the build produced no kube-apiserver binary; see $build_dir/build.log"
mkdir -p "$build_dir/bin"
cp "$built" "$apiserver.tmp" && mv "$apiserver.tmp" "$apiserver"
# The sources are no longer needed (Go's build cache stays for a rebuild with the same key).
rm -rf "$src_root"
log "built $("$apiserver" --version) in $(($(date +%s) - started)) s; cache: $(du -sh "$cache" | cut -f1) in $cache"
link_all
