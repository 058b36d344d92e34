#!/bin/sh
# Real-world checks of mcd-load against a stock nginx on loopback:
#   - an HTTPS origin (TLS 1.3 only, P-256 certificate, keep-alive) serving
#     small (13 bytes) and big (10 MiB) files, plus a chunked response;
#   - an nginx stream ssl_preread gateway in front of it (transparent mode);
#   - if the ngx_mcd module is built, an mcd_proxy explicit server in front
#     of it (explicit mode);
#   - failures that must be counted as errors: wrong CA, wrong host name,
#     wrong expected body, closed port, 404;
#   - a name per connection (--names): n<i>.names.mcd.test, which the
#     origin's certificate covers (*.names.mcd.test), in the three modes.
#
# Environment:
#   MCD_LOAD_PORT   first of seven loopback ports (default 28443)
#   MCD_MODULE      ngx_mcd_module.so (default ../../build/ngx_mcd_module.so;
#                   explicit mode is skipped if it is missing)
#   NGINX           nginx binary (default /usr/sbin/nginx)
#   STREAM_MODULE   stream module to load, empty if built in
#                   (default /usr/lib/nginx/modules/ngx_stream_module.so)
#   KEEP=1          leave nginx running and print the directory
#   QUICK=1         short runs only

set -eu

here=$(cd "$(dirname "$0")" && pwd)
load=$here/mcd-load
port=${MCD_LOAD_PORT:-28443}
gw=$((port + 1))
closed=$((port + 2))
px=$((port + 3))
hang=$((port + 4))
rst=$((port + 5))
odd=$((port + 6))
helper=
module=${MCD_MODULE:-$here/../../build/ngx_mcd_module.so}
[ -f "$module" ] || module=
nginx=${NGINX:-/usr/sbin/nginx}
stream=${STREAM_MODULE-/usr/lib/nginx/modules/ngx_stream_module.so}
name=origin.mcd.test
dir=$(mktemp -d /tmp/mcd-load.XXXXXX)
chmod 755 "$dir"
fails=0

[ -x "$load" ] || make -C "$here" >/dev/null

stop() {
    [ -n "$helper" ] && kill "$helper" 2>/dev/null
    if [ -z "${KEEP:-}" ]; then
        [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null
        [ -f "$dir/mcd.pid" ] && kill "$(cat "$dir/mcd.pid")" 2>/dev/null
        sleep 0.3
        rm -rf "$dir"
    else
        echo "left running: $dir (kill \$(cat $dir/nginx.pid $dir/mcd.pid))"
    fi
}
trap stop EXIT

for p in $port $gw $closed $px $hang $rst $odd; do
    if ss -ltn "sport = :$p" | grep -q LISTEN; then
        echo "port $p is in use (set MCD_LOAD_PORT)" >&2
        exit 2
    fi
done

# --- certificates: a P-256 CA and leaf, and a second, unrelated CA

cd "$dir"
mkdir -p html tmp logs

cert() {
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
}

cert ca
openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=mcd-load CA" \
    -out ca.crt 2>/dev/null
cert other
openssl req -x509 -new -key other.key -sha256 -days 30 \
    -subj "/CN=other CA" -out other.crt 2>/dev/null
cert leaf
openssl req -new -key leaf.key -subj "/CN=$name" -out leaf.csr 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:*.names.mcd.test\nbasicConstraints=CA:FALSE\n' \
    "$name" > ext
openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days 30 -sha256 -extfile ext -out leaf.crt 2>/dev/null

printf 'hello, world\n' > html/small
head -c 10485760 /dev/urandom > html/big
head -c 10485760 /dev/zero > wrong-big
printf 'hello, wrong\n' > wrong-small
printf 'x%.0s' $(seq 1 3000) > chunked-body

# --- nginx: origin on $port, ssl_preread gateway on $gw

load_stream=
[ -n "$stream" ] && load_stream="load_module $stream;"
mcd_main=
mcd_server=
if [ -n "$module" ]; then
    echo "127.0.0.1 $name" > hosts
    i=0
    while [ $i -lt 300 ]; do
        echo "127.0.0.1 n$i.names.mcd.test"; i=$((i + 1))
    done >> hosts
    mcd_main="load_module $module;
mcd_hosts_file $dir/hosts;
mcd_fqdn_filter loadgen { default deny; allow $name .names.mcd.test; }"
    # the destination guard (issue 7) refuses loopback unless allowed
    guard=
    grep -q mcd_destination "$module" \
        && guard="mcd_destination allow 127.0.0.0/8;"
    mcd_server="server {
        listen 127.0.0.1:$px backlog=4096;
        mcd_proxy explicit;
        mcd_fqdn_filter loadgen;
        mcd_connect_ports $port;
        $guard
    }"
fi

cat > nginx.conf <<EOF
$load_stream
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 20000; }

http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    keepalive_timeout 60s;

    server {
        listen 127.0.0.1:$port ssl reuseport backlog=4096;
        server_name $name;
        ssl_certificate $dir/leaf.crt;
        ssl_certificate_key $dir/leaf.key;
        ssl_protocols TLSv1.3;
        ssl_session_tickets off;
        ssl_session_cache off;
        root $dir/html;

        location = /chunked {
            # nginx answers with chunked transfer encoding here
            chunked_transfer_encoding on;
            return 200 "\$request_uri\$request_uri";
        }
        location = /missing { return 404; }
    }
}

stream {
    map \$ssl_preread_server_name \$mcd_backend {
        hostnames;
        $name 127.0.0.1:$port;
        .names.mcd.test 127.0.0.1:$port;
        default 127.0.0.1:$closed;
    }
    server {
        listen 127.0.0.1:$gw backlog=4096;
        ssl_preread on;
        proxy_pass \$mcd_backend;
    }
}
EOF

# the explicit proxy in an nginx of its own: ngx_mcd refuses to connect
# to a listening socket of its own gateway (reason "loop")
if [ -n "$module" ]; then
    cat > mcd.conf <<EOF
$load_stream
$mcd_main
worker_processes 1;
pid $dir/mcd.pid;
error_log $dir/logs/mcd-error.log warn;
events { worker_connections 20000; }
stream {
    $mcd_server
}
EOF
fi

"$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
[ -n "$module" ] \
    && "$nginx" -p "$dir" -c "$dir/mcd.conf" -e "$dir/logs/mcd-error.log"
sleep 0.3

# --- checks

# run NAME WANT_EXIT ARGS...: WANT_EXIT 0 (success) or 1 (errors); with
# WANT_KIND, the JSON line must show errors of that kind and no success
# (no successful connection; with SOME_REQUESTS, requests may succeed)
run() {
    what=$1; want=$2; shift 2
    set +e
    out=$("$load" --json --quiet "$@")
    rc=$?
    set -e
    ok=yes
    [ "$rc" = "$want" ] || ok=no
    if [ -n "${WANT_KIND:-}" ]; then
        echo "$out" | grep -q "\"$WANT_KIND\":[1-9]" || ok=no
        echo "$out" | grep -q '"connections":0,' || ok=no
        [ -n "${SOME_REQUESTS:-}" ] \
            || echo "$out" | grep -q '"requests":0,' || ok=no
    fi
    if [ $ok = yes ]; then
        echo "ok   $what"
    else
        echo "FAIL $what (exit $rc): $out"
        fails=$((fails + 1))
    fi
    [ -n "${VERBOSE:-}" ] && echo "     $out"
    return 0
}

t="--target $name:$port --cafile $dir/ca.crt"
d="--mode direct --connect 127.0.0.1:$port $t"
tr="--mode transparent --connect 127.0.0.1:$gw $t"
small="--path /small --expect-file $dir/html/small"
big="--path /big --expect-file $dir/html/big"

if [ -n "${QUICK:-}" ]; then n=200; nb=20; else n=2000; nb=100; fi

for c in 1 50 200; do
    run "direct small R=1 c=$c" 0 $d $small --concurrency $c --connections $n
    run "direct small R=100 c=$c" 0 $d $small --concurrency $c \
        --connections $((c * 2)) --requests 100
    run "direct big R=1 c=$c" 0 $d $big --concurrency $c --connections $nb
    run "direct big R=10 c=$c" 0 $d $big --concurrency $c \
        --connections $((c > 50 ? 50 : c * 2)) --requests 10 --timeout 30
done

run "direct chunked" 0 $d --path /chunked --connections 20 --requests 5
run "direct TLS 1.3 P-256" 0 $d $small --tls13 --groups P-256 \
    --connections 100
run "direct source addresses" 0 $d $small --connections 300 \
    --source-addrs 127.0.0.1,127.0.0.2,127.0.0.3
run "direct close fin" 0 $d $small --connections 100 --close fin
run "direct duration + warmup" 0 $d $small --duration 1 --warmup 0.5
run "transparent small R=1" 0 $tr $small --connections $n
run "transparent small R=100" 0 $tr $small --connections 100 --requests 100
run "transparent big" 0 $tr $big --connections $nb

# a name per connection: SNI, Host and the verified name all follow it
nm="--names n{n}.names.mcd.test"
run "direct names" 0 $d $small $nm --connections 200 --concurrency 20
run "direct names R=5" 0 $d $small $nm --connections 50 --requests 5
run "transparent names" 0 $tr $small $nm --connections 200
WANT_KIND=verify run "names the certificate does not cover: verify errors" \
    1 $d $small --names 'n{n}.other.mcd.test' --connections 20
out=$("$load" --json --quiet $d $small $nm --names-first 7 \
      --names-count 10 --connections 30 --concurrency 5 || true)
if echo "$out" | grep -q '"names_first":7,"names_count":10,"names_used":30,"names_wrapped":true' \
   && echo "$out" | grep -q '"ok":true'
then
    echo "ok   names wrap around after --names-count"
else
    echo "FAIL names wrap around: $out"
    fails=$((fails + 1))
fi
if "$load" $d $nm --names 'a.{n}.{n}' --connections 1 >/dev/null 2>&1 \
   || "$load" $d --names 'no-token.test' --connections 1 >/dev/null 2>&1
then
    echo "FAIL a bad --names pattern is accepted"
    fails=$((fails + 1))
else
    echo "ok   bad --names patterns refused"
fi

if [ -n "$module" ]; then
    x="--mode explicit --connect 127.0.0.1:$px $t"
    run "explicit small R=1" 0 $x $small --connections $n
    run "explicit small R=100" 0 $x $small --connections 100 --requests 100
    run "explicit big" 0 $x $big --connections $nb
    run "explicit names" 0 $x $small $nm --connections 200
    run "explicit names, wrapping" 0 $x $small $nm --names-count 50 \
        --connections 200
    WANT_KIND=connect_status run "explicit, denied name: connect_status" 1 \
        --mode explicit --connect 127.0.0.1:$px \
        --target denied.mcd.test:$port --connections 20
    WANT_KIND=verify run "explicit, wrong CA: verify errors" 1 $x $small \
        --cafile "$dir/other.crt" --connections 20
else
    echo "skip explicit mode: no ngx_mcd_module.so"
fi

WANT_KIND=verify run "wrong CA: verify errors" 1 $d $small \
    --cafile "$dir/other.crt" --connections 50
WANT_KIND=verify run "wrong name: verify errors" 1 \
    --connect 127.0.0.1:$port --target wrong.mcd.test:$port \
    --cafile "$dir/ca.crt" --connections 20 --path /small
WANT_KIND=body run "wrong small body: body errors" 1 $d --path /small \
    --expect-file "$dir/wrong-small" --connections 50
WANT_KIND=body run "wrong big body: body errors" 1 $d --path /big \
    --expect-file "$dir/wrong-big" --connections 10
WANT_KIND=body run "wrong length: body errors" 1 $d --path /big \
    --expect-file "$dir/html/small" --connections 10
WANT_KIND=http run "404: http errors" 1 $d --path /missing --connections 10
WANT_KIND=connect run "closed port: connect errors" 1 --mode direct \
    --connect 127.0.0.1:$closed $t --connections 100
WANT_KIND=connect_status run "explicit to a TLS port: connect_status" 1 \
    --mode explicit --connect 127.0.0.1:$port $t --connections 5
WANT_KIND=tls run "transparent, unknown name: tls errors" 1 \
    --mode transparent --connect 127.0.0.1:$gw --target unknown.test:443 \
    --connections 20

# misbehaving servers (helpers.py): timeout, reset, odd HTTP framing
if command -v python3 >/dev/null; then
    python3 "$here/helpers.py" $hang $rst $odd "$dir/leaf.crt" \
        "$dir/leaf.key" &
    helper=$!
    sleep 0.7
    WANT_KIND=timeout run "no answer: timeout errors" 1 --mode direct \
        --connect 127.0.0.1:$hang $t --connections 5 --timeout 0.5
    WANT_KIND=reset run "reset: reset errors" 1 --mode direct \
        --connect 127.0.0.1:$rst $t --connections 20
    o="--mode direct --connect 127.0.0.1:$odd $t --concurrency 1"
    run "body delimited by the connection end" 0 $o --path /eof \
        --expect-file "$dir/html/small" --connections 5
    run "chunked with extensions and trailer" 0 $o --path /trailer \
        --expect-file "$dir/html/small" --connections 5
    WANT_KIND=body run "short body: body errors" 1 $o --path /short \
        --connections 5
    WANT_KIND=http run "bytes after the response: http errors" 1 $o \
        --path /extra --connections 5
    WANT_KIND=http run "bad chunk size: http errors" 1 $o --path /badchunk \
        --connections 5
    SOME_REQUESTS=1 WANT_KIND=http \
        run "close before R requests: http errors" 1 $o \
        --path /eof --connections 5 --requests 2
    kill $helper 2>/dev/null || true
    helper=
else
    echo "skip misbehaving servers: no python3"
fi

# hold: 300 connections held until SIGTERM
: > hold.out
"$load" --hold $d $small --connections 300 --concurrency 50 --json --quiet \
    > hold.out &
hp=$!
i=0
while ! grep -q HOLDING hold.out && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i + 1))
done
established=$(ss -Htn state established "dport = :$port" | grep -c . || true)
kill -TERM $hp
set +e; wait $hp; rc=$?; set -e
if grep -q "^HOLDING 300$" hold.out && [ "$rc" = 0 ] \
    && [ "$established" -ge 300 ]
then
    echo "ok   hold 300 ($established established)"
else
    echo "FAIL hold: exit $rc, $established established: $(cat hold.out)"
    fails=$((fails + 1))
fi

if grep -E "\[(alert|crit|emerg)\]" logs/*error.log; then
    fails=$((fails + 1))
fi

echo "$fails failure(s)"
[ "$fails" = 0 ]
