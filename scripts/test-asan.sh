#!/usr/bin/env bash
# The module under AddressSanitizer and UndefinedBehaviorSanitizer, loaded
# into Debian's own nginx (the sanitizer runtimes preloaded), through the
# tests that drive the network paths: CONNECT, ClientHello, the guard, the
# faults.  Any sanitizer report fails the run.
#
#   bash scripts/test-asan.sh [t/FILE.t ...]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

bash scripts/deps.sh
bash scripts/build-module.sh >/dev/null

# a copy of the configured Debian tree, rebuilt with the sanitizers
tree="$repo/build/nginx-asan"
rm -rf "$tree"
cp -a "$repo/build/nginx-debian" "$tree"
cd "$tree"

san="-fsanitize=address,undefined -fno-omit-frame-pointer"
san="$san -fno-sanitize-recover=undefined"

sed -i "s/^CFLAGS =\(.*\)\$/CFLAGS =\1 $san/" objs/Makefile
# the module's link line ends with "-shared"
sed -i "/ngx_mcd_module\.so:/,/-shared/ s/^\(\s*\)-shared\$/\1-shared $san/" \
    objs/Makefile
find objs/addon -name "*.o" -delete
rm -f objs/ngx_mcd_module.so objs/ngx_mcd_module_modules.o
make -s -f objs/Makefile objs/ngx_mcd_module.so
if ! ldd objs/ngx_mcd_module.so | grep libasan >/dev/null; then
    echo "test-asan: the module was not linked with the sanitizers" >&2
    exit 1
fi

reports="$tree/reports"
mkdir -p "$reports"
rm -f "$reports"/*

wrapper="$tree/nginx-asan"
cat > "$wrapper" <<EOF
#!/bin/sh
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:log_path=$reports/asan
export UBSAN_OPTIONS=print_stacktrace=1:log_path=$reports/ubsan
exec /usr/sbin/nginx "\$@"
EOF
chmod +x "$wrapper"

cd "$repo"

if [ $# -eq 0 ]; then
    set -- t/010-explicit.t t/030-transparent.t t/040-destination.t \
           t/050-faults.t t/051-shutdown.t t/052-overload.t t/060-decrypt.t \
           t/070-http-forward.t t/080-proxy-auth.t t/081-groups.t \
           t/090-metrics.t
fi

rc=0
TEST_NGINX_BINARY="$wrapper" \
TEST_NGINX_LOAD_MODULES="/usr/lib/nginx/modules/ngx_stream_module.so $tree/objs/ngx_mcd_module.so" \
    bash scripts/test.sh "$@" > "$tree/prove.log" 2>&1 || rc=$?

tail -4 "$tree/prove.log"

if ls "$reports"/* >/dev/null 2>&1; then
    echo "test-asan: sanitizer reports:" >&2
    head -60 "$reports"/* >&2
    exit 1
fi

if [ $rc -ne 0 ]; then
    grep -E "^(not ok|#   Failed)" "$tree/prove.log" | head -40 >&2
    exit $rc
fi

echo "test-asan: no sanitizer report"
