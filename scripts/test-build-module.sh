#!/usr/bin/env bash
# Tests of scripts/build-module.sh itself:
#
#   1. a changed CFLAGS (or CC) configures the Debian tree again, and going
#      back to the old flags does too;
#   2. NGINX_SRC naming a tree that was configured elsewhere (its own
#      objs/Makefile, which builds no ngx_mcd) is configured afresh, and the
#      script never exits 0 without the .so it names.
#
#   bash scripts/test-build-module.sh
#
# Needs nginx-dev (scripts/deps.sh); takes about a minute (two builds of the
# module).  Prints "N passed, M failed"; exit status 1 when any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD

pass=0
failed=0
n=0

ok() {
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        pass=$((pass + 1))
        echo "ok $n - $2"
    else
        failed=$((failed + 1))
        echo "not ok $n - $2"
    fi
}

check() {
    local name=$1
    shift
    "$@"
    ok $? "$name"
}

bash scripts/deps.sh || exit 1

mk="$repo/build/nginx-debian/objs/Makefile"
so="$repo/build/nginx-debian/objs/ngx_mcd_module.so"
mark=MCD_BUILD_MODULE_TEST_$$

# 1. CFLAGS

check "build with the default flags" bash scripts/build-module.sh >/dev/null
before=$(stat -c %Y "$so" 2>/dev/null || echo 0)
sleep 1

check "build with CFLAGS=-D$mark" env CFLAGS="-D$mark" \
    bash scripts/build-module.sh >/dev/null
check "objs/Makefile carries the new CFLAGS" grep -q -- "-D$mark" "$mk"
check "the module was rebuilt" \
    test "$(stat -c %Y "$so" 2>/dev/null || echo 0)" -gt "$before"

check "build with the default flags again" bash scripts/build-module.sh \
    >/dev/null
check "objs/Makefile no longer carries them" \
    bash -c "! grep -q -- '-D$mark' '$mk'"

# 2. an already-configured NGINX_SRC
#
# Debian's headers tree (no .c files) with a configuration of its own whose
# Makefile builds nothing: configure must run on the copy; the build then
# fails (no sources), loudly.

tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$repo/build/upstream-$ver"' EXIT
src="$tmp/nginx"
cp -a /usr/share/nginx/src "$src"
ver="0.0.0-$mark"
sed -i "s/^#define NGINX_VERSION .*/#define NGINX_VERSION      \"$ver\"/" \
    "$src/src/core/nginx.h"
mkdir -p "$src/objs"
printf 'binary:\n\nmodules:\n' > "$src/objs/Makefile"
printf 'default:\n' > "$src/Makefile"

rc=0
NGINX_SRC="$src" bash scripts/build-module.sh > "$tmp/out" 2> "$tmp/err" \
    || rc=$?
path=$(sed -n 's/.* and \(.*ngx_mcd_module\.so\) (nginx.*/\1/p' "$tmp/out")

check "configured afresh: the build's Makefile builds ngx_mcd_module" \
    grep -q ngx_mcd_module "$repo/build/upstream-$ver/objs/Makefile"
check "exit 0 only with the .so it names (exit $rc, ${path:-no path})" \
    bash -c "[ $rc -ne 0 ] || [ -f '$path' ]"
check "a failure says so on stderr" \
    bash -c "[ $rc -eq 0 ] || [ -s '$tmp/err' ]"
check "NGINX_SRC itself is left as it was" \
    bash -c "[ \"\$(cat '$src/objs/Makefile')\" = \"\$(printf 'binary:\n\nmodules:\n')\" ]"

echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
