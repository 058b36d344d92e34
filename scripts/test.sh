#!/usr/bin/env bash
# The whole test suite: installs what it needs (Debian packages), builds the
# module against Debian's nginx, runs every t/*.t (unit tests of the pure C
# cores included) with prove.  Extra arguments go to prove (e.g. t/010-explicit.t).
#
# As root, the suite runs inside a network namespace of its own (only "lo"),
# so that its fixed loopback ports meet no other process on the machine and
# no test connection can leave the machine whatever the code under test
# does.  MCD_TEST_NETNS=0 runs it in the machine's namespace instead.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
bash scripts/install-test-nginx.sh    # the real Test::Nginx, or stop here
bash scripts/build-module.sh

export TEST_NGINX_BINARY="${TEST_NGINX_BINARY:-/usr/sbin/nginx}"

if [ $# -gt 0 ]; then
    cmd=(prove -v "$@")
else
    cmd=(prove -r t)
fi

if [ "${MCD_TEST_NETNS:-1}" != 0 ] && [ "$(id -u)" = 0 ] \
   && [ -z "${MCD_TEST_IN_NETNS:-}" ] && command -v ip >/dev/null
then
    ns="mcd-suite-$$"
    if ip netns add "$ns" 2>/dev/null; then
        trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
        ip -n "$ns" link set lo up
        echo "test: running in network namespace $ns" >&2
        rc=0
        ip netns exec "$ns" env MCD_TEST_IN_NETNS="$ns" "${cmd[@]}" || rc=$?
        exit $rc
    fi
    echo "test: cannot create a network namespace, running in this one" >&2
fi

exec "${cmd[@]}"
