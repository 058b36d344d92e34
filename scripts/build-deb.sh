#!/usr/bin/env bash
# Build the Debian package libnginx-mod-stream-mcd (debian/) for Debian 12's
# nginx, and check it with lintian.
#
#   bash scripts/build-deb.sh
#
# Installs the build dependencies from the system's Debian archive (apt-get,
# only when one is missing), builds with "dpkg-buildpackage -us -uc -b" in a
# copy of the tree (build/deb/work/), so that the checkout is left as it was,
# and, as root, inside a network namespace of its own: the build itself has
# no network.  Output: build/deb/*.deb, the package to install (only it),
# with build.log and lintian.log; build/deb/dist/, all that
# dpkg-buildpackage made (.changes, .buildinfo, the .deb and its -dbgsym).  Fails when the build
# fails or lintian reports an error; lintian's warnings are listed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/build/deb"
work="$out/work"

SUDO=
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi

pkg=$(sed -n 's/^Source: *//p' "$repo/debian/control")
ver=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$repo/debian/changelog")
src="$work/$pkg-$ver"

log() { echo "build-deb: $*" >&2; }


# a copy of the tree: the files git knows plus new ones it does not ignore
# (without git: everything but build/ and .git)

rm -rf "$work"
mkdir -p "$src"

if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" &&
     git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do
         [ -f "$f" ] && printf '%s\0' "$f"
     done | tar -c --null -T - -f -) | tar -x -C "$src" -f -
else
    (cd "$repo" && tar -c --exclude=./build --exclude=./.git -f - .) |
        tar -x -C "$src" -f -
fi


# build dependencies, from the Debian archive the system uses

need=()
for p in dpkg-dev debhelper lintian; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"
    then
        need+=("$p")
    fi
done

if [ ${#need[@]} -gt 0 ] || ! (cd "$src" && dpkg-checkbuilddeps) 2>/dev/null
then
    log "installing build dependencies"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    if [ ${#need[@]} -gt 0 ]; then
        $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
            --no-install-recommends "${need[@]}" \
            >/dev/null
    fi
    $SUDO apt-get build-dep -y -qq -o DPkg::Lock::Timeout=300 \
        --no-install-recommends "$src" >/dev/null
    (cd "$src" && dpkg-checkbuilddeps)

    # nginx-dev brings nginx: the distribution's service is not ours to run
    # (as scripts/deps.sh)
    if command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
fi


# the build: offline (a network namespace with nothing in it) when root

rm -f "$out"/*.deb
rm -rf "$out/dist"

jobs=$(nproc 2>/dev/null || echo 1)
offline=()
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
    offline=(unshare --net --)
    log "offline: in a network namespace of its own (no interface up)"
else
    log "not root: building without a network namespace of its own"
fi

log "dpkg-buildpackage -us -uc -b in $src"
start=$(date +%s)
if ! (cd "$src" &&
      DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
      "${offline[@]}" dpkg-buildpackage -us -uc -b) > "$out/build.log" 2>&1
then
    tail -n 40 "$out/build.log" >&2
    log "FAILED: the build (whole log: $out/build.log)"
    exit 1
fi
log "built in $(( $(date +%s) - start ))s"

# what was built

for f in "$work"/*.deb; do
    echo "== $(basename "$f")"
    dpkg-deb -f "$f" Package Version Architecture Depends Recommends
    case "$f" in
        *-dbgsym_*) ;;
        *) dpkg-deb -c "$f" | awk '{ print "   ", $6, $7, $8 }' ;;
    esac
done


# lintian on the whole upload (.changes): errors fail, the rest is listed

lintian_rc=0
lintian --fail-on error --display-info "$work"/*.changes \
    > "$out/lintian.log" 2>&1 || lintian_rc=$?

echo "== lintian"
grep -v '^running with root privileges' "$out/lintian.log" || true

errors=$(grep -c '^E: ' "$out/lintian.log" || true)
warnings=$(grep -c '^W: ' "$out/lintian.log" || true)
log "lintian: $errors error(s), $warnings warning(s)"

mkdir -p "$out/dist"
mv "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out/dist/"
rm -rf "$work"
for f in "$out"/dist/*.deb; do
    case "$f" in
        *-dbgsym_*) ;;
        *) ln "$f" "$out/" ;;
    esac
done

if [ "$lintian_rc" != 0 ]; then
    log "FAILED: lintian (exit $lintian_rc)"
    exit 1
fi

log "OK: $(ls "$out"/*.deb)"
