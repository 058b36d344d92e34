#!/usr/bin/env bash
# Install the package built by scripts/build-deb.sh into Debian's nginx and
# serve through it; then leave the machine as it was.  As root (CI).
#
#   bash scripts/test-deb.sh [build/deb/PACKAGE.deb]
#
# 1. apt-get install ./build/deb/*.deb (dependencies from the archive), with
#    a policy-rc.d that forbids service actions: neither the package's
#    nginx-reload trigger nor an nginx installed along with it starts,
#    reloads or restarts the distribution's nginx service;
# 2. checks the module and its modules-enabled snippet, loaded after
#    Debian's stream module;
# 3. "nginx -t" on conf-examples/explicit.conf, adapted: the module loaded
#    through the package's snippet (include modules-enabled, as Debian's
#    nginx.conf does) instead of the example's load_module lines; files in
#    a temporary directory; names mapped to 127.0.0.1 (mcd_hosts_file) and
#    "mcd_destination allow 127.0.0.0/8"; listening on 127.0.0.1 only;
# 4. starts that nginx and an HTTPS origin (a stock nginx on 127.0.0.1:443)
#    in a network namespace of their own (only lo), and checks that one
#    CONNECT allowed by the example's rules gets 200 and the origin's
#    answer, end to end over TLS, and one denied by them gets 403 with the
#    reason in the body;
# 5. stops both, deletes the namespace, purges the package and whatever
#    the install brought in, restores policy-rc.d, and checks that the
#    nginx service's state (running or not, enabled or not) and
#    /etc/nginx/modules-enabled are as they were.
set -euo pipefail
export LC_ALL=C     # the order of globs, as nginx's include sees them

repo=$(cd "$(dirname "$0")/.." && pwd)

log() { echo "test-deb: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (installs a package, makes a network namespace)"

if [ $# -gt 0 ]; then
    deb=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
    debs=("$repo"/build/deb/*.deb)
    [ -f "${debs[0]}" ] || die "no build/deb/*.deb: run scripts/build-deb.sh first"
    [ ${#debs[@]} = 1 ] || die "more than one build/deb/*.deb: ${debs[*]}"
    deb=${debs[0]}
fi

pkg=$(dpkg-deb -f "$deb" Package)

# (nginx itself may come with the package's dependencies)
for t in ip curl openssl ss timeout; do
    command -v "$t" >/dev/null || die "$t not found (scripts/deps.sh installs it)"
done

if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q installed; then
    die "$pkg is already installed; this test installs and purges it itself" \
        "(apt-get purge $pkg)"
fi

start=$(date +%s)
tmp=$(mktemp -d /tmp/mcd-deb.XXXXXX)
chmod 755 "$tmp"
ns=mcd-deb-$$
policy=/usr/sbin/policy-rc.d
apt_opts=(-y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends)
export DEBIAN_FRONTEND=noninteractive


# the machine as it is

installed() {
    dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' |
        awk '$1 == "ii" { print $2 }' | sed 's/:.*//' | sort
}

service_state() {
    echo "pid file: $(cat /run/nginx.pid 2>/dev/null || echo none)"
    local f
    for f in /etc/rc?.d/[SK][0-9][0-9]nginx; do
        [ -e "$f" ] && echo "rc link: $f"
    done
    if [ -d /run/systemd/system ]; then
        echo "systemd: $(systemctl is-enabled nginx 2>/dev/null || true)" \
             "$(systemctl is-active nginx 2>/dev/null || true)"
    fi
    for f in /etc/nginx/modules-enabled/*; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        echo "module enabled: $f -> $(readlink "$f")"
    done
    return 0
}

installed > "$tmp/packages.before"
service_state > "$tmp/state.before"


# undo everything, whatever happened

stop_nginx() {
    # $1: pid file of an nginx started here
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    kill -QUIT "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "nginx $pid did not quit in 5s: TERM"
    kill -TERM "$pid" 2>/dev/null || true
    sleep 1
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? new
    set +e
    stop_nginx "$tmp/gateway/nginx.pid"
    stop_nginx "$tmp/origin/nginx.pid"
    ip netns del "$ns" 2>/dev/null

    installed > "$tmp/packages.after"
    new=$(comm -13 "$tmp/packages.before" "$tmp/packages.after" | tr '\n' ' ')
    if [ -n "$new" ]; then
        log "purging $new"
        # shellcheck disable=SC2086
        apt-get purge "${apt_opts[@]}" $new >/dev/null || rc=1
    fi

    if [ -f "$tmp/policy-rc.d.saved" ]; then
        mv -f "$tmp/policy-rc.d.saved" "$policy"
    elif [ -f "$tmp/policy-rc.d.ours" ]; then
        rm -f "$policy"
    fi

    service_state > "$tmp/state.after"
    if ! diff -u "$tmp/state.before" "$tmp/state.after" >&2; then
        log "FAILED: the machine is not as it was (above)"
        rc=1
    fi
    if [ "$rc" != 0 ] && [ -d "$tmp/gateway" ]; then
        log "gateway error log:"
        tail -n 30 "$tmp/gateway/error.log" >&2 2>/dev/null
    fi
    rm -rf "$tmp"
    log "$([ "$rc" = 0 ] && echo OK || echo FAILED) in $(( $(date +%s) - start ))s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM


# 1. install, with service actions forbidden

if [ -e "$policy" ]; then
    cp -p "$policy" "$tmp/policy-rc.d.saved"
fi
printf '#!/bin/sh\n# test-deb.sh: no service actions while it runs\nexit 101\n' \
    > "$policy"
chmod 755 "$policy"
touch "$tmp/policy-rc.d.ours"

log "apt-get install $deb"
if ! apt-get install "${apt_opts[@]}" "$deb" > "$tmp/apt.log" 2>&1; then
    # a dependency not installed yet, and apt's lists are old or missing
    apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null 2>&1 || true
    apt-get install "${apt_opts[@]}" "$deb" > "$tmp/apt.log" 2>&1 || {
        cat "$tmp/apt.log" >&2
        die "apt-get install $deb"
    }
fi


# 2. the module and its snippet, after the stream module

command -v nginx >/dev/null || die "no nginx after installing $pkg"

so=/usr/lib/nginx/modules/ngx_mcd_module.so
snippet=/usr/share/nginx/modules-available/mod-stream-mcd.conf
link=/etc/nginx/modules-enabled/70-mod-stream-mcd.conf

[ -f "$so" ] || die "$so not installed"
[ -L "$link" ] || die "$link is not a symbolic link"
[ "$(readlink "$link")" = "$snippet" ] || die "$link -> $(readlink "$link")"
grep -qx 'load_module modules/ngx_mcd_module.so;' "$snippet" \
    || die "$snippet: $(cat "$snippet")"

order=$(cd /etc/nginx/modules-enabled && printf '%s ' *.conf)
case "$order" in
    *50-mod-stream.conf*70-mod-stream-mcd.conf*) ;;
    *) die "modules-enabled loads the module before the stream module: $order" ;;
esac

dpkg-query -W -f='${Depends}' "$pkg" | grep -q 'nginx-abi-' \
    || die "$pkg has no nginx-abi dependency"

log "installed: $so, $link -> $snippet ($order)"


# 3. conf-examples/explicit.conf, adapted

mkdir -p "$tmp/gateway" "$tmp/origin"

cat > "$tmp/hosts" <<EOF
127.0.0.1 deb.debian.org
127.0.0.1 www.evil.example
EOF
echo '# no extra names' > "$tmp/allow.txt"

sed -e '/^load_module modules\/ngx_stream_module\.so;/d' \
    -e 's|^load_module modules/ngx_mcd_module\.so;.*|include /etc/nginx/modules-enabled/*.conf;|' \
    -e "s|^pid /run/nginx\.pid;|pid $tmp/gateway/nginx.pid;|" \
    -e "s|^error_log /var/log/nginx/error\.log |error_log $tmp/gateway/error.log |" \
    -e "s|^# mcd_hosts_file .*|mcd_hosts_file $tmp/hosts;|" \
    -e "s|allow_list /etc/nginx/mcd/allow\.txt;|allow_list $tmp/allow.txt;|" \
    -e "s|access_log /var/log/nginx/mcd-access\.log mcd;|access_log $tmp/gateway/access.log mcd;|" \
    -e 's|^\( *\)resolver_timeout 5s;|&\n\1mcd_destination allow 127.0.0.0/8;|' \
    -e 's|^\( *\)listen 3128;|\1listen 127.0.0.1:3128;|' \
    "$repo/conf-examples/explicit.conf" > "$tmp/gateway/nginx.conf"

# every adaptation took place: the example changed if one did not
conf=$tmp/gateway/nginx.conf
for want in "include /etc/nginx/modules-enabled/\*.conf;" \
            "pid $tmp/gateway/nginx.pid;" "error_log $tmp/gateway/error.log" \
            "mcd_hosts_file $tmp/hosts;" "allow_list $tmp/allow.txt;" \
            "access_log $tmp/gateway/access.log mcd;" \
            "mcd_destination allow 127.0.0.0/8;" "listen 127.0.0.1:3128;"
do
    grep -q "$want" "$conf" || die "adapting explicit.conf: no \"$want\""
done
! grep -nE '^[^#]*(load_module|/var/log/|/run/|/etc/nginx/mcd)' "$conf" \
    || die "adapting explicit.conf: the lines above were left"

log "nginx -t"
timeout 30 nginx -t -c "$conf" > "$tmp/nginx-t.log" 2>&1 || {
    cat "$tmp/nginx-t.log" >&2
    die "nginx -t on the adapted explicit.conf"
}
grep -q 'test is successful' "$tmp/nginx-t.log" || die "nginx -t: $(cat "$tmp/nginx-t.log")"

# the module comes from the package's snippet: without it, its directives
# are unknown
grep -v '^include /etc/nginx/modules-enabled' "$conf" > "$tmp/nosnippet.conf"
if timeout 30 nginx -t -c "$tmp/nosnippet.conf" > "$tmp/nginx-t2.log" 2>&1 ||
   ! grep -q 'unknown directive "mcd_' "$tmp/nginx-t2.log"; then
    cat "$tmp/nginx-t2.log" >&2
    die "the configuration passes without the package's snippet"
fi


# 4. serve, in a network namespace with nothing but lo

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/origin/key.pem" -out "$tmp/origin/cert.pem" -days 1 \
    -subj /CN=deb.debian.org -addext subjectAltName=DNS:deb.debian.org \
    >/dev/null 2>&1 || die "openssl req"

cat > "$tmp/origin/nginx.conf" <<EOF
worker_processes 1;
pid $tmp/origin/nginx.pid;
error_log $tmp/origin/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $tmp/origin/tmp;
    proxy_temp_path $tmp/origin/tmp;
    fastcgi_temp_path $tmp/origin/tmp;
    uwsgi_temp_path $tmp/origin/tmp;
    scgi_temp_path $tmp/origin/tmp;
    server {
        listen 127.0.0.1:443 ssl;
        ssl_certificate $tmp/origin/cert.pem;
        ssl_certificate_key $tmp/origin/key.pem;
        default_type text/plain;
        return 200 "origin: hello through the tunnel\n";
    }
}
EOF

ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up

wait_listen() {
    # $1: port; up to 10 s
    for _ in $(seq 1 100); do
        [ -n "$(in_ns ss -Hltn "sport = :$1")" ] && return 0
        sleep 0.1
    done
    return 1
}

timeout 30 ip netns exec "$ns" nginx -c "$tmp/origin/nginx.conf" \
    || die "starting the origin"
wait_listen 443 || die "the origin does not listen on 127.0.0.1:443"

timeout 30 ip netns exec "$ns" nginx -c "$conf" || die "starting the gateway"
wait_listen 3128 || die "the gateway does not listen on 127.0.0.1:3128"
log "gateway (pid $(cat "$tmp/gateway/nginx.pid")) and origin up in $ns"

proxy=(-x http://127.0.0.1:3128 --max-time 10 --cacert "$tmp/origin/cert.pem")

# allowed: ".debian.org" in the example; a tunnel to the origin, TLS end
# to end (the origin's certificate verified for the name)
out=$(in_ns curl -sS "${proxy[@]}" -w '\n%{http_connect} %{http_code}' \
          https://deb.debian.org/ 2>&1) || die "allowed CONNECT: curl: $out"
[ "$out" = $'origin: hello through the tunnel\n\n200 200' ] \
    || die "allowed CONNECT: $out"
log "allowed: CONNECT deb.debian.org:443 -> 200, the origin answered over TLS"

# denied: ".evil.example" in the example
code=$(in_ns curl -s -o /dev/null "${proxy[@]}" -w '%{http_connect}' \
           https://www.evil.example/ 2>&1) && die "denied CONNECT: curl succeeded"
[ "$code" = 403 ] || die "denied CONNECT: curl saw $code, not 403"

# the whole answer, read raw: the reason in the body
answer=$(in_ns timeout 10 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/3128
    printf "CONNECT www.evil.example:443 HTTP/1.1\r\nHost: www.evil.example:443\r\n\r\n" >&3
    cat <&3' | tr -d '\r') || true
case "$answer" in
    "HTTP/1.1 403 Forbidden"*$'\n\n'"policy: "*) ;;
    *) die "denied CONNECT: the answer is not 403 with the reason: $answer" ;;
esac
log "denied: CONNECT www.evil.example:443 -> 403, body \"${answer##*$'\n\n'}\""

grep -q 'reason "policy"' "$tmp/gateway/error.log" \
    || die "no refusal line in the error log"
# the tunnel's line is written when the session ends, just after curl's
for _ in $(seq 1 50); do
    grep -q 'deb\.debian\.org' "$tmp/gateway/access.log" 2>/dev/null && break
    sleep 0.1
done
grep 'deb\.debian\.org' "$tmp/gateway/access.log" | grep -q ' 200 explicit ' \
    || die "no access log line for the allowed tunnel:" \
           "$(cat "$tmp/gateway/access.log" 2>/dev/null)"


# 5. cleanup() stops, purges and checks; "passed" after it succeeded

stop_nginx "$tmp/gateway/nginx.pid"
stop_nginx "$tmp/origin/nginx.pid"
log "passed: package installed, nginx -t, 200 allowed, 403 denied"
