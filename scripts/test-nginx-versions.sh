#!/usr/bin/env bash
# The test suite against every nginx a user runs: Debian 12's own nginx and
# nginx built as Debian builds it for later releases, with ngx_mcd built
# against each, loaded (--add-dynamic-module) and built in (--add-module).
#
#   scripts/test-nginx-versions.sh [OPTION...] [NAME...]
#
# NAME is a Debian suite (default: bookworm trixie sid), plus "upstream"
# when NGINX_SRC is set.  For each:
#
#   the host's own release (bookworm on Debian 12): Debian's /usr/sbin/nginx
#     and stream module as installed, the module built by build-module.sh
#     against /usr/share/nginx/src;
#   any other suite: Debian's source of nginx in that suite, fetched with
#     "apt-get source" through a private apt configuration under
#     build/versions/SUITE/apt (deb-src for that suite only, signed by the
#     Debian archive keyring; the system's sources are never used) and
#     unpacked by dpkg-source (Debian's patches applied), configured with
#     the arguments that Debian's own nginx binary of that suite was
#     configured with (read from the binary in the suite's nginx package)
#     and built with the module (--add-dynamic-module, --with-compat);
#   upstream: the tree NGINX_SRC names, configured with sid's arguments.
#
# Then "prove -r t" through scripts/test.sh (its own network namespace)
# with TEST_NGINX_BINARY and TEST_NGINX_LOAD_MODULES set to that nginx, its
# ngx_stream_module.so and its ngx_mcd_module.so.
#
# Static builds: nginx configured the same way, except the stream module
# built in (--with-stream) and ngx_mcd added with --add-module, for every
# NAME (the host's release too, from its Debian source).
#
# Options:
#   --static=config  build each static nginx and run t/001-config.t against
#                    it (the default)
#   --static=full    build each static nginx and run the whole suite on it
#   --static=none    no static builds
#   --static-full=NAME[,NAME]  the whole suite on those NAMEs' static builds,
#                    t/001-config.t on the others
#   --build-only     build everything, run no test
#   --skip-unavailable  a suite whose nginx source cannot be had at all (not
#                    in the archive, no NGINX_GIT) is reported as SKIPPED
#                    instead of FAILED
#
# Environment:
#   NGINX_SRC=DIR    also test an upstream nginx: a source tree (release
#                    tarball or git checkout), or a bare git repository,
#                    from which its newest release-* tag (or NGINX_TAG) is
#                    exported
#   NGINX_GIT=DIR    a bare git repository of nginx, for a suite whose
#                    source the archive does not serve: its release tag of
#                    the same version, else the newest earlier release of
#                    the same stable series (the result line says which);
#                    default: NGINX_SRC when that is a bare repository
#   MCD_DEBIAN_MIRROR, MCD_APT_MAX_AGE: see scripts/lib-apt.sh
#
# Everything is kept under build/versions: the apt lists (refreshed once a
# day), the sources, and one build folder per kind (objs-dynamic,
# objs-static) in each tree, so that a second run only rebuilds what changed
# (a new Debian version, a changed source file, other flags).  Logs:
# build/versions/logs/NAME-KIND.log.
#
# Output: one line per nginx and kind,
#   nginx 1.26.3 (SOURCE): passed N/M
#   nginx 1.26.3 static (SOURCE): FAILED, passed N/M (log: ...)
# where M counts the assertions prove ran; exit status 1 when any line is
# not "passed" or a build fails.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
top="$repo/build/versions"
# shellcheck source=scripts/lib-apt.sh
. "$repo/scripts/lib-apt.sh"

usage() {
    sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"
}

static=config
static_full=,
build_only=0
skip_unavailable=0
names=()

for arg in "$@"; do
    case "$arg" in
        --static=config|--static=full|--static=none)
            static=${arg#--static=} ;;
        --static-full=*)
            static_full=",${arg#--static-full=}," ;;
        --build-only)
            build_only=1 ;;
        --skip-unavailable)
            skip_unavailable=1 ;;
        -h|--help)
            usage
            exit 0 ;;
        -*)
            usage >&2
            exit 2 ;;
        *)
            names+=("$arg") ;;
    esac
done

if [ ${#names[@]} -eq 0 ]; then
    names=(bookworm trixie sid)
    if [ -n "${NGINX_SRC:-}" ]; then
        names+=(upstream)
    fi
fi

host_codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

# build-module.sh (also run by test.sh) reads NGINX_SRC too: it builds the
# Debian module here, whatever this script was given
nginx_src=${NGINX_SRC:-}
unset NGINX_SRC

if [ -z "${NGINX_GIT:-}" ] && [ -n "$nginx_src" ] \
   && [ -f "$nginx_src/HEAD" ] && [ -d "$nginx_src/objects" ]
then
    NGINX_GIT=$nginx_src
fi

mkdir -p "$top/logs"
results=()
fail=0

say() {
    echo "versions: $*" >&2
}

result() {
    results+=("$1")
    echo "$1"
    case "$1" in
        *": passed "*|*": built"|*": SKIPPED"*) ;;
        *) fail=1 ;;
    esac
}


# the configure arguments of Debian's nginx binary in SUITE, one a line,
# in $top/SUITE/configure-args; sets $flags_file

suite_flags() {
    local suite=$1 d="$top/$1" deb bin line

    flags_file="$d/configure-args"
    mcd_apt_setup "$d/apt" "$suite" || return 1

    # the version of the binary package, to notice a new one
    deb=$(mcd_apt_cache show nginx 2>/dev/null \
          | sed -n 's/^Version: //p' | sort -V | tail -n 1)
    if [ -z "$deb" ]; then
        say "$suite: no nginx binary package in the lists"
        return 1
    fi
    if [ -s "$flags_file" ] && [ "$(cat "$d/configure-args.version" \
                                    2>/dev/null)" = "$deb" ]
    then
        return 0
    fi

    rm -rf "${d:?}/bin"
    mkdir -p "$d/bin"
    (cd "$d/bin" && mcd_apt download "nginx=$deb") > "$d/download.log" 2>&1 \
    || { cat "$d/download.log" >&2; return 1; }
    bin=$(ls "$d"/bin/nginx_*.deb)
    dpkg-deb --fsys-tarfile "$bin" | tar -xOf - ./usr/sbin/nginx \
        > "$d/bin/nginx" || return 1

    # nginx keeps its configure arguments as a string, printed by "nginx -V"
    line=$(strings -n 20 "$d/bin/nginx" \
           | sed -n 's/^configure arguments: //p' | head -n 1)
    if [ -z "$line" ]; then
        say "$suite: no configure arguments in $bin"
        return 1
    fi
    printf '%s' "$line" | xargs printf '%s\n' > "$flags_file" || return 1
    echo "$deb" > "$d/configure-args.version"
    rm -rf "${d:?}/bin"
}


# a git release of the nginx repository NGINX_GIT as TREE; $1 tag, $2 tree

git_tree() {
    local tag=$1 tree=$2

    rm -rf "$tree" "$tree.part"
    mkdir -p "$tree.part"
    git --git-dir="$NGINX_GIT" archive --format=tar "$tag" \
        | tar -xf - -C "$tree.part" || return 1
    mv "$tree.part" "$tree"
}


# Debian's nginx source of SUITE, unpacked; sets $tree, $ver and $origin

suite_source() {
    local suite=$1 d="$top/$1" debver dl dsc orig tag series

    mcd_apt_setup "$d/apt" "$suite" || return 1
    debver=$(mcd_apt_cache showsrc nginx 2>/dev/null \
             | sed -n 's/^Version: //p' | sort -V | tail -n 1)
    if [ -z "$debver" ]; then
        say "$suite: no nginx source package in the lists"
        return 1
    fi
    ver=${debver#*:}
    ver=${ver%%-*}
    tree="$d/nginx-${debver#*:}"

    if [ -f "$tree/.mcd-origin" ]; then
        origin=$(cat "$tree/.mcd-origin")
        ver=$(cat "$tree/.mcd-version")
        return 0
    fi

    # an older version's tree is of no more use
    rm -rf "$d"/nginx-* "$d/dl"
    dl="$d/dl"
    mkdir -p "$dl"
    say "$suite: apt-get source nginx=$debver"
    dsc="$dl/nginx_${debver#*:}.dsc"

    if (cd "$dl" && mcd_apt source --download-only "nginx=$debver") \
            > "$d/source.log" 2>&1 \
       && dpkg-source -x "$dsc" "$tree" > "$d/dpkg-source.log" 2>&1
    then
        origin="$suite: Debian source $debver, Debian's patches applied"

    elif orig=$(find "$dl" -maxdepth 1 -name "nginx_$ver.orig.tar.*" \
                     ! -name '*.asc' | head -n 1) && [ -n "$orig" ]
    then
        # apt has checked the tarball against the signed Sources index
        say "$suite: the archive serves nginx_$ver.orig but not all of" \
            "nginx_${debver#*:} (see $d/source.log): Debian's patches are" \
            "not applied"
        rm -rf "$tree" "$d/x"
        mkdir -p "$d/x"
        tar -xf "$orig" -C "$d/x" || return 1
        mv "$d/x/nginx-$ver" "$tree" || return 1
        rm -rf "$d/x"
        origin="$suite $debver: Debian's orig.tar, unpatched"

    elif [ -n "${NGINX_GIT:-}" ]; then
        say "$suite: the archive serves no source of nginx $debver" \
            "(see $d/source.log); looking in $NGINX_GIT"
        tag=release-$ver
        if ! git --git-dir="$NGINX_GIT" rev-parse -q --verify \
                "refs/tags/$tag" >/dev/null
        then
            # the newest release of the same series before $ver
            series=${ver%.*}
            tag=$( (git --git-dir="$NGINX_GIT" tag -l "release-$series.*" \
                    | sed 's/^release-//'; echo "$ver") | sort -V -u \
                  | sed -n "/^${ver//./\\.}\$/q; p" | tail -n 1)
            if [ -z "$tag" ]; then
                say "$suite: no release of nginx $series.x up to $ver in" \
                    "$NGINX_GIT"
                return 1
            fi
            tag=release-$tag
        fi
        git_tree "$tag" "$tree" || return 1
        if [ "$tag" = "release-$ver" ]; then
            origin="$suite $debver: not in the archive; upstream $tag"
        else
            origin="$suite $debver: not in the archive; upstream $tag, the"
            origin="$origin nearest release"
            ver=${tag#release-}
        fi

    else
        cat "$d/source.log" >&2
        say "$suite: the archive serves no source of nginx $debver;" \
            "NGINX_GIT=<bare nginx repository> would stand in for it"
        unavailable="nginx $ver ($suite $debver): the archive serves no"
        unavailable="$unavailable source, and no NGINX_GIT"
        return 1
    fi

    echo "$origin" > "$tree/.mcd-origin"
    echo "$ver" > "$tree/.mcd-version"
    rm -rf "$dl"
}


# the upstream tree of NGINX_SRC; sets $tree, $ver and $origin

upstream_source() {
    local src=$nginx_src tag d="$top/upstream"

    mkdir -p "$d"
    if [ -f "$src/HEAD" ] && [ -d "$src/objects" ]; then
        tag=${NGINX_TAG:-$(git --git-dir="$src" tag -l 'release-*' \
                           | sort -V | tail -n 1)}
        ver=${tag#release-}
        tree="$d/nginx-$ver"
        origin="upstream $tag"
        if [ ! -f "$tree/.mcd-origin" ]; then
            NGINX_GIT=$src git_tree "$tag" "$tree" || return 1
            echo "$origin" > "$tree/.mcd-origin"
        fi
        return 0
    fi

    if [ ! -f "$src/src/core/nginx.h" ]; then
        say "NGINX_SRC=$src is neither an nginx source tree nor a bare" \
            "git repository of nginx"
        return 1
    fi
    ver=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' \
              "$src/src/core/nginx.h")
    tree="$d/nginx-$ver"
    origin="upstream tree $src"
    # a copy without the tree's own build; unchanged files keep their times
    mkdir -p "$tree"
    tar -C "$src" --exclude=./objs --exclude=./Makefile --exclude=./.git \
        --exclude=./.hg -cf - . | tar -C "$tree" -xf - || return 1
}


# configure (when needed) and build TREE for KIND (dynamic or static) with
# the arguments of FLAGS_FILE

build_tree() {
    local tree=$1 kind=$2 flags=$3 b="objs-$2" configure=./configure
    local args=() a cc_opt='' stamp want=() log="$top/logs"

    [ -f "$tree/configure" ] || configure=auto/configure   # a git tree

    while IFS= read -r a; do
        case "$a" in
            --with-cc-opt=*)
                # the path of Debian's build folder is of no use here
                cc_opt=$(printf '%s' "${a#--with-cc-opt=}" \
                         | sed 's/-ffile-prefix-map=[^ ]*//; s/  */ /g')
                ;;
            --override-*)
                # Debian's patch for reproducible builds adds these
                grep -q -e '--override-system' "$tree/auto/options" \
                    && args+=("$a")
                ;;
            --with-http_geoip_module=*|--with-stream_geoip_module=*|\
            --with-http_image_filter_module=*|--with-http_perl_module=*|\
            --with-http_xslt_module=*)
                # dynamic modules of their own that need libraries the
                # tests do not use (GeoIP, GD, Perl, libxslt)
                ;;
            --with-stream=dynamic)
                if [ "$kind" = static ]; then
                    args+=(--with-stream)
                else
                    args+=("$a")
                fi
                ;;
            *)
                args+=("$a")
                ;;
        esac
    done < "$flags"

    # the warnings build-module.sh builds with (nginx adds -Werror)
    cc_opt="$cc_opt -Wextra -Wno-unused-parameter"
    cc_opt="$cc_opt -Wno-missing-field-initializers -Wno-sign-compare"
    args+=("--with-cc-opt=$cc_opt" "--builddir=$b")
    if [ "$kind" = static ]; then
        args+=("--add-module=$repo")
    else
        args+=("--add-dynamic-module=$repo")
    fi

    stamp=$(printf '%s\n' "CC=${CC:-}" "CFLAGS=${CFLAGS:-}" "$configure" \
                         "${args[@]}")

    if [ ! -f "$tree/$b/Makefile" ] || [ ! -f "$tree/$b/mcd-configure" ] \
       || [ "$repo/config" -nt "$tree/$b/Makefile" ] \
       || [ "$stamp" != "$(cat "$tree/$b/mcd-configure")" ]
    then
        say "configuring $tree ($kind)"
        rm -rf "${tree:?}/$b"
        (cd "$tree" && $configure "${args[@]}") \
            > "$log/configure-$(basename "$tree")-$kind.log" 2>&1 || {
            tail -n 30 "$log/configure-$(basename "$tree")-$kind.log" >&2
            return 1
        }
        printf '%s\n' "$stamp" > "$tree/$b/mcd-configure"
    fi

    say "building $tree ($kind)"
    (cd "$tree" && make -j"$(nproc)" -f "$b/Makefile" binary modules) \
        > "$log/make-$(basename "$tree")-$kind.log" 2>&1 || {
        grep -E ': (error|warning): |\*\*\*' \
            "$log/make-$(basename "$tree")-$kind.log" \
            | head -n 30 >&2
        return 1
    }

    want=(nginx)
    [ "$kind" = dynamic ] && want+=(ngx_stream_module.so ngx_mcd_module.so)
    for a in "${want[@]}"; do
        if [ ! -f "$tree/$b/$a" ]; then
            say "$tree/$b/$a was not built"
            return 1
        fi
    done
}


# the suite (or t/001-config.t) against one nginx; prints its result line
#   run_suite ID "LABEL" BINARY "MODULES" [prove arguments]

run_suite() {
    local label=$2 bin=$3 mods=$4 log="$top/logs/$1.log" rc=0
    local total failed
    shift 4

    say "testing $label"
    TEST_NGINX_BINARY="$bin" TEST_NGINX_LOAD_MODULES="$mods" \
        bash "$repo/scripts/test.sh" "$@" > "$log" 2>&1 < /dev/null || rc=$?

    total=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$log" \
            | tail -n 1)
    failed=$(sed -n 's/.*Tests: [0-9]* Failed: \([0-9]*\)).*/\1/p' "$log" \
             | awk '{ n += $1 } END { print n + 0 }')
    total=${total:-0}

    if [ $rc -eq 0 ] && grep -q '^Result: PASS' "$log"; then
        result "$label: passed $((total - failed))/$total"
    else
        result "$label: FAILED, passed $((total - failed))/$total (log: $log)"
    fi
}


bash "$repo/scripts/deps.sh" || exit 1

for name in "${names[@]}"; do
    tree='' ver='' origin=''
    tests=()

    # the loaded module

    if [ "$name" = "$host_codename" ] && [ -x /usr/sbin/nginx ] \
       && [ -f /usr/share/nginx/src/conf_flags ]
    then
        ver=$(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///')
        label="nginx $ver ($name: Debian's package"
        label="$label $(dpkg-query -W -f '${Version}' nginx))"
        if bash "$repo/scripts/build-module.sh" \
                > "$top/logs/$name-module.log" 2>&1
        then
            if [ $build_only = 1 ]; then
                result "$label: built"
            else
                run_suite "$name-dynamic" "$label" /usr/sbin/nginx \
                    "/usr/lib/nginx/modules/ngx_stream_module.so $repo/build/ngx_mcd_module.so"
            fi
        else
            cat "$top/logs/$name-module.log" >&2
            result "$label: FAILED to build the module"
        fi
        [ "$static" = none ] && continue
        dynamic=0
    else
        dynamic=1
    fi

    if [ "$name" = upstream ]; then
        if [ -z "$nginx_src" ]; then
            result "upstream: FAILED: NGINX_SRC is not set"
            continue
        fi
        if ! suite_flags sid || ! upstream_source; then
            result "nginx upstream ($nginx_src): FAILED to fetch"
            continue
        fi
        origin="$origin, sid's configure arguments"
    else
        unavailable=''
        if ! suite_flags "$name" || ! suite_source "$name"; then
            if [ -n "$unavailable" ] && [ $skip_unavailable = 1 ]; then
                result "$unavailable: SKIPPED"
            elif [ -n "$unavailable" ]; then
                result "$unavailable: FAILED"
            else
                result "nginx ($name): FAILED to fetch (see above)"
            fi
            continue
        fi
    fi

    if [ $dynamic = 1 ]; then
        label="nginx $ver ($origin)"
        if ! build_tree "$tree" dynamic "$flags_file"; then
            result "$label: FAILED to build (logs: $top/logs)"
        elif [ $build_only = 1 ]; then
            result "$label: built"
        else
            run_suite "$name-dynamic" "$label" "$tree/objs-dynamic/nginx" \
                "$tree/objs-dynamic/ngx_stream_module.so $tree/objs-dynamic/ngx_mcd_module.so"
        fi
    fi

    [ "$static" = none ] && continue

    label="nginx $ver static ($origin)"
    if [ "$static" = full ] || [ "${static_full#*,"$name",}" != "$static_full" ]
    then
        tests=()
    else
        tests=(t/001-config.t)
    fi
    if ! build_tree "$tree" static "$flags_file"; then
        result "$label: FAILED to build (logs: $top/logs)"
    elif [ $build_only = 1 ]; then
        result "$label: built"
    else
        run_suite "$name-static" "$label" "$tree/objs-static/nginx" "" \
            "${tests[@]}"
    fi
done

if [ ${#results[@]} -gt 1 ]; then
    echo
    printf '%s\n' "${results[@]}"
fi

exit $fail
