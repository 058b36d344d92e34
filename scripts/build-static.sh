#!/usr/bin/env bash
# Build nginx 1.22.1 from source with ngx_mcd linked in statically
# (--add-module), then check that it passes "nginx -t" on
# conf-examples/explicit.conf.
#
#   scripts/build-static.sh
#
# The source is Debian's nginx_1.22.1.orig.tar.gz, fetched with
# "apt-get source --download-only" through a private apt configuration under
# build/static/apt (the system's apt sources are left alone).  The tarball,
# the tree and its objects stay in build/static, so a second run only
# recompiles what changed.
#
# Output: build/static/nginx-1.22.1/objs/nginx
# Environment: MCD_DEBIAN_MIRROR (see scripts/lib-apt.sh)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
ver=1.22.1
top="$repo/build/static"
tarball="$top/nginx_$ver.orig.tar.gz"
sha256=9ebb333a9e82b952acd3e2b4aeb1d4ff6406f72491bab6cd9fe69f0dea737f31
tree="$top/nginx-$ver"

mkdir -p "$top"

# shellcheck source=scripts/lib-apt.sh
. "$repo/scripts/lib-apt.sh"

fetch() {
    local apt="$top/apt"
    rm -rf "$apt"
    mkdir -p "$apt/dl"
    MCD_APT_MAX_AGE=0 mcd_apt_setup "$apt" bookworm || exit 1
    (cd "$apt/dl" && mcd_apt source --download-only nginx) \
        > "$apt/source.log" 2>&1 || {
        cat "$apt/source.log" >&2
        exit 1
    }
    mv "$apt/dl/nginx_$ver.orig.tar.gz" "$tarball"
    rm -rf "$apt"
}

if [ ! -f "$tarball" ]; then
    echo "build-static: fetching nginx_$ver.orig.tar.gz" >&2
    fetch
fi

if ! echo "$sha256  $tarball" | sha256sum -c --status; then
    echo "build-static: $tarball: checksum mismatch" >&2
    rm -f "$tarball"
    exit 1
fi

if [ ! -f "$tree/configure" ]; then
    rm -rf "$tree"
    tar -xzf "$tarball" -C "$top"
fi

# Debian's flags (as in nginx-dev's conf_flags), stream built in, the module
# added statically; Debian's compiler options without its dpkg-buildflags

flags=(--prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf
       --http-log-path=/var/log/nginx/access.log --error-log-path=stderr
       --lock-path=/var/lock/nginx.lock --pid-path=/run/nginx.pid
       --modules-path=/usr/lib/nginx/modules
       --http-client-body-temp-path=/var/lib/nginx/body
       --http-fastcgi-temp-path=/var/lib/nginx/fastcgi
       --http-proxy-temp-path=/var/lib/nginx/proxy
       --http-scgi-temp-path=/var/lib/nginx/scgi
       --http-uwsgi-temp-path=/var/lib/nginx/uwsgi
       --with-compat --with-debug --with-pcre-jit --with-http_ssl_module
       --with-http_stub_status_module --with-http_realip_module
       --with-http_auth_request_module --with-http_v2_module
       --with-http_dav_module --with-http_slice_module --with-threads
       --with-stream --with-stream_ssl_module
       --with-stream_ssl_preread_module --with-stream_realip_module
       --add-module="$repo")

cc_opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security"
cc_opt="$cc_opt -D_FORTIFY_SOURCE=2 -Wextra -Wno-unused-parameter"
cc_opt="$cc_opt -Wno-missing-field-initializers -Wno-sign-compare"
ld_opt="-Wl,-z,relro -Wl,-z,now"

cd "$tree"

if [ ! -f objs/Makefile ] || [ "$repo/config" -nt objs/Makefile ] \
   || [ "$0" -nt objs/Makefile ]
then
    ./configure "${flags[@]}" --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
        > "$top/configure.log" 2>&1 || {
        cat "$top/configure.log" >&2
        exit 1
    }
fi

make -s -j"$(nproc)" -f objs/Makefile binary > "$top/make.log" 2>&1 || {
    cat "$top/make.log" >&2
    exit 1
}

# the shipped example, with its paths moved under build/static/t

t="$top/t"
rm -rf "$t"
mkdir -p "$t/logs"
echo "partner.example" > "$t/allow.txt"
sed -e '/^load_module /d' -e '/^user /d' \
    -e "s|/etc/nginx/mcd/allow.txt|$t/allow.txt|" \
    -e "s|/var/log/nginx/|$t/logs/|g" \
    -e "s|/run/nginx.pid|$t/nginx.pid|" \
    "$repo/conf-examples/explicit.conf" > "$t/explicit.conf"

rc=0
timeout 30 objs/nginx -t -p "$t/" -c "$t/explicit.conf" -e "$t/logs/error.log" \
    < /dev/null > "$t/nginx-t.log" 2>&1 || rc=$?
cat "$t/nginx-t.log" >&2
if [ $rc -ne 0 ]; then
    echo "build-static: objs/nginx -t on explicit.conf failed (exit $rc)" >&2
    exit 1
fi

echo "build-static: $tree/objs/nginx (nginx $ver, ngx_mcd built in)"
