#!/usr/bin/env bash
# Install what building, testing, the demo and the benchmark need, from
# Debian's archive.  Idempotent: apt-get runs only when a package is missing.
set -euo pipefail

pkgs=(
    build-essential make gcc clang libclang-rt-14-dev
    nginx nginx-dev libnginx-mod-stream
    libpcre2-dev libssl-dev openssl curl ca-certificates
    perl libtest-base-perl libtext-diff-perl liblist-moreutils-perl
    libio-socket-ssl-perl libwww-perl libnet-dns-perl libdigest-sha-perl
    valgrind iptables iproute2 procps util-linux
    python3 chromium libnss3-tools
)

case "${1:-}" in
    --bench) pkgs+=(squid-openssl linux-perf time) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# the distribution's nginx service is not ours to run
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now nginx squid >/dev/null 2>&1 || true
fi
