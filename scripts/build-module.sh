#!/usr/bin/env bash
# Build ngx_mcd_module.so.
#
#   scripts/build-module.sh                 against Debian's nginx-dev tree
#                                           (/usr/share/nginx/src), for the
#                                           distribution's /usr/sbin/nginx
#   NGINX_SRC=/path/nginx-1.x.y scripts/build-module.sh
#                                           against an upstream source tree:
#                                           builds that nginx (--with-compat)
#                                           and the module
#
#   scripts/build-module.sh --static      nginx 1.22.1 from Debian's source
#                                           with the module built in
#                                           (scripts/build-static.sh)
#
# Output: build/ngx_mcd_module.so (Debian) or
#         build/upstream-<version>/objs/{nginx,ngx_mcd_module.so} or
#         build/static/nginx-1.22.1/objs/nginx
set -euo pipefail

if [ "${1:-}" = --static ]; then
    exec bash "$(dirname "$0")/build-static.sh"
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build"
mkdir -p "$build"

cc_opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security"
cc_opt="$cc_opt -fPIC -D_FORTIFY_SOURCE=2 -Wextra -Wno-unused-parameter"
cc_opt="$cc_opt -Wno-missing-field-initializers -Wno-sign-compare"
ld_opt="-Wl,-z,relro -Wl,-z,now -fPIC"

stream_flags=(--with-stream=dynamic --with-stream_ssl_module
              --with-stream_ssl_preread_module --with-stream_realip_module)

needs_configure() {
    # $1: tree
    [ ! -f "$1/objs/Makefile" ] && return 0
    [ "$repo/config" -nt "$1/objs/Makefile" ] && return 0
    [ "$0" -nt "$1/objs/Makefile" ] && return 0
    return 1
}

if [ -z "${NGINX_SRC:-}" ]; then
    src=/usr/share/nginx/src
    if [ ! -f "$src/conf_flags" ]; then
        echo "build-module: $src/conf_flags not found: apt-get install nginx-dev" >&2
        exit 1
    fi
    tree="$build/nginx-debian"
    if [ ! -d "$tree" ] || [ "$src/conf_flags" -nt "$tree/conf_flags" ]; then
        rm -rf "$tree"
        cp -a "$src" "$tree"
    fi
    cd "$tree"
    if needs_configure "$tree"; then
        # shellcheck disable=SC1091
        source ./conf_flags
        ./configure "${NGX_CONF_FLAGS[@]}" "${stream_flags[@]}" \
            --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
            --add-dynamic-module="$repo" > "$build/configure-debian.log" 2>&1 || {
            cat "$build/configure-debian.log" >&2
            exit 1
        }
    fi
    make -s -f objs/Makefile objs/ngx_mcd_module.so
    cp objs/ngx_mcd_module.so "$build/ngx_mcd_module.so"
    echo "build-module: $build/ngx_mcd_module.so (for $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'))"
else
    src=$(cd "$NGINX_SRC" && pwd)
    ver=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src/src/core/nginx.h")
    tree="$build/upstream-$ver"
    if [ ! -d "$tree" ]; then
        cp -a "$src" "$tree"
    fi
    cd "$tree"
    configure=./configure
    [ -f "$configure" ] || configure=auto/configure   # a git checkout
    if needs_configure "$tree"; then
        $configure --with-compat --with-debug --with-threads \
            --with-http_ssl_module --with-http_v2_module \
            --with-http_realip_module --with-http_stub_status_module \
            "${stream_flags[@]}" --with-cc-opt="$cc_opt" \
            --add-dynamic-module="$repo" > "$build/configure-$ver.log" 2>&1 || {
            cat "$build/configure-$ver.log" >&2
            exit 1
        }
    fi
    make -s -j"$(nproc)" -f objs/Makefile binary modules
    echo "build-module: $tree/objs/nginx and $tree/objs/ngx_mcd_module.so (nginx $ver)"
fi
