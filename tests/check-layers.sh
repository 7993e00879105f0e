#!/usr/bin/env bash
# tests/check-layers.sh: every #include "..." of the C sources against the layer order.
#
# A layer is a folder; the table below says which folders each layer may include
# from (its own and the layers below it). The most specific folder of a file decides
# its layer. System headers (<...>) are not checked. The server's layers are its
# folders (ARCHITECTURE.md "Layers"), lowest first:
#   server/base -> server/store -> server/client -> server/coord -> server/cmd ->
#   server/net -> server (main.c)
# From another server folder a file may include only that folder's ONE public
# header, server/<f>/<f>.h (server/store/store.h, ...); its other headers
# (ks.h, persist_int.h, commands.def, ...) are private to it. Every file under
# server/ must belong to a folder of the table: a new folder needs a rule here.
# There is no allow-list. A violation prints
#   file:line: includes "x/y.h", but layer F may include only: A B C
# Tests (*_test.c, *_fuzz.c, *_bench.c, the tests' headers server/test_*.h) and
# tests/ may include anything, since they drive a layer from outside. Prints each layer with its file count and what it may
# include, then "N passed, M failed" (one check per file, plus a self-test proving
# that a wrong include is caught).
set -uo pipefail
cd "$(dirname "$0")/.."

# layer folder      folders it may include from (lowest layers last)
rules=(
    "proto          proto"
    "engine         engine"
    "cluster        cluster engine proto"
    "server/base    server/base proto"
    "server/store   server/store server/base engine proto"
    "server/client  server/client server/store server/base proto"
    "server/coord   server/coord server/client server/store server/base cluster engine proto"
    "server/cmd     server/cmd server/coord server/client server/store server/base cluster engine proto"
    "server/net     server/net server/cmd server/coord server/client server/store server/base cluster engine proto"
    "server         server server/net server/cmd server/coord server/client server/store server/base cluster engine proto"
)

allowed_for() { # file -> the rule of its most specific layer
    local f=$1 best="" best_len=-1 r layer
    for r in "${rules[@]}"; do
        read -r layer _ <<<"$r"
        if [[ $f == "$layer"/* && ${#layer} -gt $best_len ]]; then
            best=$r best_len=${#layer}
        fi
    done
    echo "$best"
}

is_layer() { # dir -> 0 when dir is a layer of its own
    local r layer
    for r in "${rules[@]}"; do
        read -r layer _ <<<"$r"
        [[ $1 == "$layer" ]] && return 0
    done
    return 1
}

# check_file PATH [CONTENT_FILE]: checks PATH's includes (read from CONTENT_FILE,
# default PATH) against PATH's layer; prints violations, returns 1 when any.
# Returns 2 when PATH is in no layer (not checked).
check_file() {
    local f=$1 src=${2:-$1} rule layer allow ok=1 line inc a dir
    rule=$(allowed_for "$f")
    [[ -n $rule ]] || return 2
    read -r layer allow <<<"$rule"
    dir=$(dirname "$f")
    if [[ $dir != "$layer" ]] && ! is_layer "$dir"; then
        echo "$f: folder $dir is not a layer of the table in tests/check-layers.sh"
        return 1
    fi
    while IFS=: read -r line inc; do
        [[ -n $line ]] || continue
        local good=0 idir
        idir=$(dirname "$inc")
        for a in $allow; do
            if [[ $a == "$layer" ]]; then
                # its own folder: any file (not those of a deeper layer)
                [[ $idir == "$a" ]] && good=1
            elif [[ $a == server || $a == server/* ]]; then
                # another server folder: its one public header only
                [[ $inc == "$a/$(basename "$a").h" ]] && good=1
            elif [[ $idir == "$a" ]] || { [[ $idir == "$a"/* ]] && ! is_layer "$idir"; }; then
                good=1 # proto, engine, cluster: any of their headers
            fi
            ((good)) && break
        done
        if ((!good)); then
            echo "$f:$line: includes \"$inc\", but layer $layer may include only: $allow" \
                 "(another server folder: only its public header server/<f>/<f>.h)"
            ok=0
        fi
    done < <(grep -n -oE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+"' "$src" |
             sed -E 's/^([0-9]+):.*"([^"]+)"/\1:\2/')
    ((ok))
}

pass=0 fail=0

# self-test: what the rules must refuse, and what they must accept
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
selftest_ok=1
expect() { # want(0 ok / 1 refused) path include
    printf '#include "%s"\n' "$3" >"$tmp/f.c"
    check_file "$2" "$tmp/f.c" >/dev/null
    local got=$?
    if [[ $got -ne $1 ]]; then
        echo "self-test: $2 including \"$3\": expected $1, got $got"
        selftest_ok=0
    fi
}
expect 1 server/store/ks.c server/client/client.h     # a layer above
expect 1 server/store/ks.c server/cmd/cmd.h
expect 1 server/client/client.c server/coord/coord.h
expect 1 server/coord/coord.c server/cmd/cmd.h
expect 1 server/cmd/multi.c server/net/net.h
expect 1 server/cmd/cmd_keys.c server/store/ks.h      # a private header below
expect 1 server/coord/coord.c server/store/persist_int.h
expect 1 server/net/net.c server/cmd/commands.def
expect 1 server/base/log.c server/store/store.h
expect 1 server/store/ks.c cluster/ring.h
expect 1 server/newfolder/x.c server/base/base.h     # a folder with no rule
expect 0 server/cmd/multi.c server/store/store.h
expect 0 server/store/ks.c server/store/persist_int.h
expect 0 server/store/persist.c engine/engine.h
expect 0 server/main.c server/net/net.h
if ((selftest_ok)); then pass=$((pass + 1)); else fail=$((fail + 1)); fi

declare -A counts
while IFS= read -r f; do
    case $f in
        *_test.c | *_fuzz.c | *_bench.c | server/test_*.h | tests/*) continue ;;
    esac
    check_file "$f"
    rc=$?
    ((rc == 2)) && continue
    if ((rc == 0)); then pass=$((pass + 1)); else fail=$((fail + 1)); fi
    rule=$(allowed_for "$f")
    read -r layer _ <<<"$rule"
    counts[$layer]=$((${counts[$layer]:-0} + 1))
done < <(git ls-files -co --exclude-standard -- '*.c' '*.h' '*.def' | sort)
for r in "${rules[@]}"; do
    read -r layer allow <<<"$r"
    printf '  %-14s %3d files, may include: %s\n' "$layer" "${counts[$layer]:-0}" "$allow"
done
echo "layer check: $pass files follow the layer order (and the self-test), $fail do not"
echo "$pass passed, $fail failed"
((fail == 0))
