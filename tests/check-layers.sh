#!/usr/bin/env bash
# tests/check-layers.sh: every #include "..." of the C sources against the layer order.
#
# A layer is a folder; the table below says which folders each layer may include
# from (its own and the layers below it). The most specific folder of a file decides
# its layer. System headers (<...>) are not checked. A violation prints
#   file:line: includes "x/y.h", but layer F may include only: A B C
# Tests (*_test.c, *_fuzz.c, *_bench.c) and tests/ may include anything, since they
# drive a layer from outside. Ends with "N passed, M failed" (one check per file).
set -uo pipefail
cd "$(dirname "$0")/.."

# layer folder      folders it may include from (lowest layers last)
rules=(
    "proto          proto"
    "engine         engine"
    "cluster        cluster engine proto"
    "server         server cluster engine proto"
)

allowed_for() { # file -> the allowed list of its most specific layer
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

pass=0 fail=0
while IFS= read -r f; do
    case $f in
        *_test.c | *_fuzz.c | *_bench.c | tests/*) continue ;;
    esac
    rule=$(allowed_for "$f")
    [[ -n $rule ]] || continue
    read -r layer allow <<<"$rule"
    ok=1
    while IFS=: read -r line inc; do
        [[ -n $line ]] || continue
        good=0
        for a in $allow; do
            # a folder allows its own files, not those of its subfolders (deeper
            # folders are layers of their own and are listed by name)
            dir=$(dirname "$inc")
            if [[ $dir == "$a" ]] || { [[ $dir == "$a"/* ]] && ! is_layer "$dir"; }; then
                good=1
                break
            fi
        done
        if ((!good)); then
            echo "$f:$line: includes \"$inc\", but layer $layer may include only: $allow"
            ok=0
        fi
    done < <(grep -n -oE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+"' "$f" |
             sed -E 's/^([0-9]+):.*"([^"]+)"/\1:\2/')
    if ((ok)); then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done < <(git ls-files -co --exclude-standard -- '*.c' '*.h' '*.def' | sort)
echo "layer check: $pass files follow the layer order, $fail do not"
echo "$pass passed, $fail failed"
((fail == 0))
