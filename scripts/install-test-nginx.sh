#!/usr/bin/env bash
# Install the real Test::Nginx (openresty/test-nginx), which the test suite
# runs under.  Debian ships it as libtest-nginx-perl, architecture "all",
# in sid only; every package it depends on is in Debian 12.  So: the .deb
# is downloaded through a private apt configuration for sid (under
# build/apt-sid; the system's apt sources are left alone, sid never enters
# them), its dependencies are installed from the system's own suite, then
# the .deb with dpkg.
#
#   scripts/install-test-nginx.sh
#
# Exits 0 when Test::Nginx::Socket is usable (already, or after the
# install), non-zero with a message when it cannot be had: the test suite
# does not run without it.
# Environment: MCD_DEBIAN_MIRROR (default: the machine's Debian mirror).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
apt="$repo/build/apt-sid"

have() {
    perl -MTest::Nginx::Socket -e 1 2>/dev/null
}

if have; then
    exit 0
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi

mirror() {
    local uri=
    if [ -n "${MCD_DEBIAN_MIRROR:-}" ]; then
        echo "$MCD_DEBIAN_MIRROR"
        return
    fi
    uri=$(sed -n 's/^URIs: *\([^ ]*\/debian\)\/\{0,1\} *$/\1/p' \
              /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    if [ -z "$uri" ]; then
        uri=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\)\/\{0,1\} .*/\2/p' \
                  /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                  2>/dev/null | head -n 1)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

fail() {
    echo "install-test-nginx: $*" >&2
    echo "install-test-nginx: the test suite runs under the real Test::Nginx" \
         "(Debian sid's libtest-nginx-perl) and cannot run without it" >&2
    exit 1
}

rm -rf "$apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/dl"

echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
     "$(mirror) sid main" > "$apt/sources.list"

opts=(-o "Dir::Etc::SourceList=$apt/sources.list"
      -o "Dir::Etc::SourceParts=/dev/null"
      -o "Dir::State::Lists=$apt/lists"
      -o "Dir::State::Status=/var/lib/dpkg/status"
      -o "Dir::Cache=$apt/cache"
      -o "APT::Sandbox::User=root")

echo "install-test-nginx: fetching libtest-nginx-perl from sid" >&2

apt-get -q "${opts[@]}" update > "$apt/update.log" 2>&1 \
    || { cat "$apt/update.log" >&2; fail "apt-get update for sid failed"; }

(cd "$apt/dl" && apt-get -q "${opts[@]}" download libtest-nginx-perl) \
    > "$apt/download.log" 2>&1 \
    || { cat "$apt/download.log" >&2; fail "cannot download libtest-nginx-perl"; }

deb=$(ls "$apt"/dl/libtest-nginx-perl_*_all.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "no libtest-nginx-perl .deb was downloaded"

# its dependencies, from this machine's own suite: the first alternative
# of each, without versions; "perl:any" is perl

deps=$(dpkg-deb -f "$deb" Depends \
       | tr ',' '\n' \
       | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/ //g' \
       | grep -v '^$' | sort -u)

echo "install-test-nginx: dependencies:" $deps >&2

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $deps >/dev/null \
    || fail "cannot install the dependencies ($deps) from this machine's suite"

$SUDO dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb failed"

have || fail "Test::Nginx::Socket does not load after the install"

echo "install-test-nginx: $(dpkg-query -W -f='${Package} ${Version}' \
      libtest-nginx-perl) installed" >&2
