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

# what a configuration depends on besides the sources: the arguments, the
# compiler and its flags from the environment (nginx's configure takes CC and
# CFLAGS from there into objs/Makefile), the module's config script
stamp() {
    printf '%s\n' "CC=${CC:-}" "CFLAGS=${CFLAGS:-}" "$@"
    cat "$repo/config"
}

needs_configure() {
    # $1: tree, then the configure arguments
    local tree=$1
    shift
    [ ! -f "$tree/objs/Makefile" ] && return 0
    [ ! -f "$tree/objs/mcd-configure" ] && return 0   # not configured here
    [ "$(stamp "$@")" != "$(cat "$tree/objs/mcd-configure")" ] && return 0
    [ "$0" -nt "$tree/objs/Makefile" ] && return 0
    return 1
}

# configure $1 (a tree) with the rest; objects made with other flags go
configure() {
    local tree=$1 log=$2
    shift 2
    rm -rf "$tree/objs" "$tree/Makefile"
    (cd "$tree" && "$@") > "$log" 2>&1 || {
        cat "$log" >&2
        echo "build-module: configure failed in $tree" >&2
        exit 1
    }
    if ! grep -q 'ngx_mcd_module' "$tree/objs/Makefile"; then
        echo "build-module: $tree/objs/Makefile builds no ngx_mcd_module" >&2
        exit 1
    fi
    stamp "${@:2}" > "$tree/objs/mcd-configure"
}

built() {
    local f
    for f in "$@"; do
        if [ ! -f "$f" ]; then
            echo "build-module: $f was not built" >&2
            exit 1
        fi
    done
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
    # shellcheck disable=SC1091
    source "$tree/conf_flags"
    args=("${NGX_CONF_FLAGS[@]}" "${stream_flags[@]}"
          --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt"
          --add-dynamic-module="$repo")
    if needs_configure "$tree" "${args[@]}"; then
        configure "$tree" "$build/configure-debian.log" ./configure "${args[@]}"
    fi
    cd "$tree"
    make -s -f objs/Makefile objs/ngx_mcd_module.so
    built objs/ngx_mcd_module.so
    cp objs/ngx_mcd_module.so "$build/ngx_mcd_module.so"
    echo "build-module: $build/ngx_mcd_module.so (for $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'))"
else
    src=$(cd "$NGINX_SRC" && pwd)
    ver=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src/src/core/nginx.h")
    if [ -z "$ver" ]; then
        echo "build-module: NGINX_SRC=$src is not an nginx source tree" >&2
        exit 1
    fi
    tree="$build/upstream-$ver"
    # a copy of the sources, never of a configuration or a build made in
    # NGINX_SRC (its objs/Makefile would not build the module); unchanged
    # files keep their times, so that make only rebuilds what changed
    mkdir -p "$tree"
    tar -C "$src" --exclude=./objs --exclude=./Makefile --exclude=./.git \
        --exclude=./.hg -cf - . | tar -C "$tree" -xf -
    configure=./configure
    [ -f "$tree/configure" ] || configure=auto/configure   # a git checkout
    args=(--with-compat --with-debug --with-threads
          --with-http_ssl_module --with-http_v2_module
          --with-http_realip_module --with-http_stub_status_module
          "${stream_flags[@]}" --with-cc-opt="$cc_opt"
          --add-dynamic-module="$repo")
    if needs_configure "$tree" "${args[@]}"; then
        configure "$tree" "$build/configure-$ver.log" $configure "${args[@]}"
    fi
    cd "$tree"
    make -s -j"$(nproc)" -f objs/Makefile binary modules
    built objs/nginx objs/ngx_mcd_module.so objs/ngx_stream_module.so
    echo "build-module: $tree/objs/nginx and $tree/objs/ngx_mcd_module.so (nginx $ver)"
fi
