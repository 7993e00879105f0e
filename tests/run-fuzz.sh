#!/usr/bin/env bash
# tests/run-fuzz.sh SECONDS: builds and runs every libFuzzer target (make fuzz).
#
# A target is any <dir>/<name>_fuzz.c defining LLVMFuzzerTestOneInput (no main).
# It is built with clang -fsanitize=fuzzer,address,undefined together with the
# sources of its module and of the modules below it, as the Makefile links tests:
#   proto/   -> proto/*.c              engine/  -> engine/*.c
#   cluster/ -> cluster, engine, proto server/ and server/*/ -> server and every
#                                      server/*/ folder (no main.c), cluster,
#                                      engine, proto
# (never *_test.c, *_fuzz.c, *_bench.c) into build-fuzz/<name>. The SECONDS are
# shared equally between the targets (-max_total_time), run one after the other
# (the machine is small). Each target keeps a growing corpus in
# build-fuzz/corpus/<name>/, seeded from <dir>/<name>_corpus/ when that exists;
# crash, leak and timeout inputs land in build-fuzz/artifacts/.
# Exits non-zero when a target fails to build or finds anything; the last line
# is "fuzz: N passed, M failed" (one per target), like the other suites.
# Environment: FUZZ_CC (default clang), FUZZ_CFLAGS (extra flags),
# FUZZ_ARGS (extra libFuzzer flags, e.g. "-max_len=65536").
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
    echo "usage: $0 SECONDS" >&2
    exit 2
fi
cc=${FUZZ_CC:-clang}
out=build-fuzz
mkdir -p "$out/corpus" "$out/artifacts" "$out/logs"

shopt -s nullglob
targets=(proto/*_fuzz.c engine/*_fuzz.c cluster/*_fuzz.c server/*_fuzz.c server/*/*_fuzz.c)
if (( ${#targets[@]} == 0 )); then
    echo "fuzz: no targets"
    echo "fuzz: 0 passed, 0 failed"
    exit 0
fi
per=$(( seconds / ${#targets[@]} ))
(( per < 1 )) && per=1

module_sources() { # dir of the target: the sources it links with
    local dirs d f
    case "$1" in
        proto) dirs="proto" ;;
        engine) dirs="engine" ;;
        cluster) dirs="cluster engine proto" ;;
        *) dirs="server $(ls -d server/*/ | sed 's:/$::') cluster engine proto" ;;
    esac
    for d in $dirs; do
        for f in "$d"/*.c; do
            case "$f" in
                *_test.c|*_fuzz.c|*_bench.c|server/main.c) ;;
                *) printf '%s\n' "$f" ;;
            esac
        done
    done
}

libs_for() {
    case "$1" in
        proto) echo "-lm" ;;
        engine) echo "-lxxhash -lpthread -lm" ;;
        *) echo "-levent -levent_pthreads -lhiredis -lxxhash -lpthread -lm" ;;
    esac
}

passed=0
failed=0
for src in "${targets[@]}"; do
    dir=$(dirname "$src")
    name=$(basename "$src" .c)
    bin="$out/$name"
    log="$out/logs/$name.log"
    mapfile -t srcs < <(module_sources "$dir")
    echo "== $name: building"
    # shellcheck disable=SC2086
    if ! "$cc" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer -g -O1 -I. -D_GNU_SOURCE -DKVD_NO_JEMALLOC \
            -std=c11 -pthread ${FUZZ_CFLAGS:-} "$src" "${srcs[@]}" \
            $(libs_for "$dir") -o "$bin" >"$log" 2>&1; then
        echo "== $name: BUILD FAILED"
        tail -n 30 "$log" | sed 's/^/    /'
        failed=$((failed + 1))
        continue
    fi
    corpus="$out/corpus/$name"
    mkdir -p "$corpus"
    seeds=()
    [[ -d "$dir/${name}_corpus" ]] && seeds=("$dir/${name}_corpus")
    echo "== $name: running ${per}s (corpus $corpus)"
    # shellcheck disable=SC2086
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
        "./$bin" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$out/artifacts/$name-" \
            ${FUZZ_ARGS:-} "$corpus" "${seeds[@]}" >>"$log" 2>&1
    rc=$?
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -n 1 |
           grep -Eo '[0-9]+$')
    if (( rc != 0 )); then
        echo "== $name: FAILED (exit $rc, ${runs:-?} runs); log $log"
        grep -E 'ERROR|SUMMARY|invariant|Test unit written' "$log" | head -n 10 |
            sed 's/^/    /'
        failed=$((failed + 1))
    else
        echo "== $name: ok (${runs:-?} runs, corpus $(ls "$corpus" | wc -l) inputs)"
        passed=$((passed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
(( failed == 0 ))
