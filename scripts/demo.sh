#!/usr/bin/env bash
# A self-contained ngx_mcd demo on loopback, no internet needed:
#   - a demo CA and an origin (nginx) serving shop.demo.test,
#     blocked.demo.test and inspect.demo.test over HTTPS on 127.0.0.1:8443
#     and plain HTTP on 127.0.0.1:8080
#   - the gateway: Debian's nginx with ngx_mcd_module.so, explicit proxy on
#     127.0.0.1:3128, names from a hosts file (mcd_hosts_file), a gateway CA
#     for decryption, an interception server and a plain-HTTP server
#
#   scripts/demo.sh          install, build, start, show one allowed request,
#                            one denied by name, one denied by address
#                            (an allowed name resolving to 0.0.0.0: the
#                            destination guard), one decrypted (the client
#                            sees a certificate of the gateway CA) and one
#                            plain http:// request
#   scripts/demo.sh stop     stop the demo
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
run="$repo/demo/run"
nginx=/usr/sbin/nginx

stop() {
    for pid in "$run/gateway/nginx.pid" "$run/origin/nginx.pid"; do
        if [ -f "$pid" ]; then
            kill -QUIT "$(cat "$pid")" 2>/dev/null || true
        fi
    done
    sleep 0.5
}

if [ "${1:-}" = stop ]; then
    stop
    echo "demo: stopped"
    exit 0
fi

bash scripts/deps.sh
bash scripts/build-module.sh >/dev/null

stop
rm -rf "$run"
mkdir -p "$run/gateway/logs" "$run/origin/logs" "$run/www"

# the demo CA and the origin's certificate (ECDSA P-256)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$run/ca.key" -out "$run/ca.crt" -days 30 \
    -subj "/CN=ngx_mcd demo CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$run/origin.key" -out "$run/origin.csr" \
    -subj "/CN=shop.demo.test" 2>/dev/null
printf 'subjectAltName=DNS:shop.demo.test,DNS:blocked.demo.test,DNS:inspect.demo.test\n' \
    > "$run/origin.ext"
openssl x509 -req -in "$run/origin.csr" -CA "$run/ca.crt" \
    -CAkey "$run/ca.key" -CAcreateserial -out "$run/origin.crt" -days 30 \
    -extfile "$run/origin.ext" 2>/dev/null

# the gateway CA: decrypted connections get leaves it mints; only the
# master reads its key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$run/gateway-ca.key" -out "$run/gateway-ca.crt" -days 365 \
    -subj "/CN=ngx_mcd demo gateway CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
chmod 600 "$run/gateway-ca.key"

echo "hello from the demo origin" > "$run/www/index.html"

cat > "$run/hosts" <<EOT
127.0.0.1 shop.demo.test blocked.demo.test inspect.demo.test
0.0.0.0   rebind.demo.test
EOT

# as root, nginx's workers would run as "nobody", who may not reach files
# under a private home directory (Debian 12 makes them 0700)
user=
if [ "$(id -u)" = 0 ]; then
    user="user root;"
fi

cat > "$run/origin/nginx.conf" <<EOT
$user
worker_processes 1;
pid $run/origin/nginx.pid;
error_log $run/origin/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $run/origin/tmp;
    proxy_temp_path $run/origin/tmp;
    fastcgi_temp_path $run/origin/tmp;
    uwsgi_temp_path $run/origin/tmp;
    scgi_temp_path $run/origin/tmp;
    server {
        listen 127.0.0.1:8443 ssl;
        listen 127.0.0.1:8080;
        ssl_certificate $run/origin.crt;
        ssl_certificate_key $run/origin.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $run/www;
    }
}
EOT

sed -e "s|@RUN@|$run|g" -e "s|@REPO@|$repo|g" \
    conf-examples/demo.conf > "$run/gateway/nginx.conf"

$nginx -t -q -p "$run/gateway/" -c "$run/gateway/nginx.conf"
$nginx -p "$run/origin/" -c "$run/origin/nginx.conf"
$nginx -p "$run/gateway/" -c "$run/gateway/nginx.conf"
sleep 0.5

allowed="curl --cacert $run/ca.crt -x http://127.0.0.1:3128 https://shop.demo.test:8443/"
denied="curl --cacert $run/ca.crt -x http://127.0.0.1:3128 https://blocked.demo.test:8443/"
guarded="curl --cacert $run/ca.crt -x http://127.0.0.1:3128 https://rebind.demo.test:8443/"
decrypted="curl --cacert $run/gateway-ca.crt -x http://127.0.0.1:3128 https://inspect.demo.test:8443/"
plain="curl -x http://127.0.0.1:3128 http://shop.demo.test:8080/"

cat <<EOT

ngx_mcd demo is running (gateway 127.0.0.1:3128, origin 127.0.0.1:8443).

allowed:  $allowed
EOT
$allowed -sS || true
cat <<EOT

denied:   $denied
EOT
$denied -sS || true
cat <<EOT

denied by address (allowed name, answer 0.0.0.0):
          $guarded
EOT
$guarded -sS || true
cat <<EOT

decrypted (the client trusts the gateway CA, which minted a certificate
for the name; the gateway re-encrypts to the verified origin):
          $decrypted
EOT
$decrypted -sS -v 2>&1 | grep -E '^\* +(subject|issuer):|^hello' || true
cat <<EOT

plain http:// (handed to the http server of mcd_http_pass, same policy):
          $plain
EOT
$plain -sS || true
cat <<EOT

decisions: $run/gateway/logs/access.log (http side: http.log)
refusals:  $run/gateway/logs/error.log
stop:      scripts/demo.sh stop
EOT
echo
tail -n 4 "$run/gateway/logs/access.log"
tail -n 2 "$run/gateway/logs/http.log"
