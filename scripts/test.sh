#!/usr/bin/env bash
# The whole test suite: installs what it needs (Debian packages), builds the
# module against Debian's nginx, runs every t/*.t (unit tests of the pure C
# cores included) with prove.  Extra arguments go to prove (e.g. t/010-explicit.t).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
bash scripts/build-module.sh

export TEST_NGINX_BINARY="${TEST_NGINX_BINARY:-/usr/sbin/nginx}"

if [ $# -gt 0 ]; then
    exec prove -v "$@"
fi

exec prove -r t
