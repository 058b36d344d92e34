# shellcheck shell=bash
# Shared by the build scripts (sourced, not run): apt-get against one Debian
# suite through a private configuration under a folder of build/, so that
# the system's apt sources, lists and cache are never touched.
#
#   . scripts/lib-apt.sh
#   mcd_apt_setup DIR SUITE      deb and deb-src lines for SUITE (main),
#                                signed by the Debian archive keyring; the
#                                lists are refreshed when older than
#                                MCD_APT_MAX_AGE seconds (default: a day)
#   mcd_apt source|download ...  apt-get with that configuration
#   mcd_apt_cache showsrc ...    apt-cache with that configuration
#
# Environment: MCD_DEBIAN_MIRROR (default: the URI of the machine's Debian
# source in /etc/apt, else http://deb.debian.org/debian).

MCD_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MCD_APT_OPTS=()

mcd_debian_mirror() {
    local uri=

    if [ -n "${MCD_DEBIAN_MIRROR:-}" ]; then
        echo "$MCD_DEBIAN_MIRROR"
        return
    fi

    # deb822 sources first, then one-line ones; the first plain Debian URI
    uri=$(sed -n 's/^URIs: *\([^ ]*\/debian\)\/\{0,1\} *$/\1/p' \
              /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    if [ -z "$uri" ]; then
        uri=$(sed -n \
                's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\)\/\{0,1\} .*/\2/p' \
                /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                2>/dev/null | head -n 1)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

mcd_apt_setup() {
    local dir=$1 suite=$2 line age

    if [ ! -f "$MCD_KEYRING" ]; then
        echo "apt: $MCD_KEYRING not found: apt-get install" \
             "debian-archive-keyring" >&2
        return 1
    fi

    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    line="[signed-by=$MCD_KEYRING] $(mcd_debian_mirror) $suite main"
    printf 'deb %s\ndeb-src %s\n' "$line" "$line" > "$dir/sources.list.new"

    MCD_APT_OPTS=(-o "Dir::Etc::SourceList=$dir/sources.list"
                  -o "Dir::Etc::SourceParts=/dev/null"
                  -o "Dir::State::Lists=$dir/lists"
                  -o "Dir::State::Status=$dir/status"
                  -o "Dir::Cache=$dir/cache"
                  -o "Dir::Cache::pkgcache="
                  -o "Dir::Cache::srcpkgcache="
                  -o "APT::Sandbox::User=root")
    touch "$dir/status"

    age=$(( $(date +%s) - $(stat -c %Y "$dir/updated" 2>/dev/null || echo 0) ))
    if cmp -s "$dir/sources.list.new" "$dir/sources.list" \
       && [ "$age" -lt "${MCD_APT_MAX_AGE:-86400}" ]
    then
        rm -f "$dir/sources.list.new"
        return 0
    fi

    mv "$dir/sources.list.new" "$dir/sources.list"
    rm -f "$dir/updated"
    if ! apt-get -q "${MCD_APT_OPTS[@]}" update > "$dir/update.log" 2>&1 \
       || grep -q -E '^E:|GPG error' "$dir/update.log"
    then
        cat "$dir/update.log" >&2
        if grep -q -E 'NO_PUBKEY|EXPKEYSIG|KEYEXPIRED' "$dir/update.log"
        then
            echo "apt: the $suite Release is signed by a key that" \
                 "$MCD_KEYRING does not hold: a newer debian-archive-keyring" \
                 "is needed" >&2
        fi
        return 1
    fi
    touch "$dir/updated"
}

mcd_apt() {
    apt-get -q "${MCD_APT_OPTS[@]}" "$@"
}

mcd_apt_cache() {
    apt-cache "${MCD_APT_OPTS[@]}" "$@"
}
