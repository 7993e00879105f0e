#!/usr/bin/env bash
# Runs every test suite and prints one total line "N passed, M failed".
#
# Each suite is a command whose last "N passed, M failed" line is its count; a suite
# that exits non-zero without such a line counts as one failure. Suites:
#   unit:    every binary in build/tests/ (and build-asan/tests/)
#   compat:  redis-compat-tests/run.sh KVD_BINARY [--asan]  (real clients, differential)
#   long:    tests/long/*.sh, only with --long
# Options: --unit-only, --asan-only, --long.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=all
case "${1:-}" in
    --unit-only) mode=unit ;;
    --asan-only) mode=asan ;;
    --long) mode=long ;;
esac

total_pass=0
total_fail=0
failed_suites=()
logdir=build/test-logs
mkdir -p "$logdir"

run_suite() { # name, command...
    local name=$1; shift
    local log="$logdir/${name//\//_}.log"
    local start=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    local line
    line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    local p=0 f=0
    if [[ -n "$line" ]]; then
        p=$(sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed.*/\2/' <<<"$line")
        f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    fi
    if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    printf '%-40s %5d passed %3d failed  (%ds)\n' "$name" "$p" "$f" $((SECONDS - start))
    if [[ $f -ne 0 ]]; then
        failed_suites+=("$name")
        echo "---- last lines of $log"
        tail -n 30 "$log" | sed 's/^/    /'
    fi
}

unit_suites() { # build dir, label
    local dir=$1 label=$2 t
    [[ -d "$dir/tests" ]] || return 0
    for t in "$dir"/tests/*; do
        [[ -x "$t" ]] || continue
        run_suite "$label/$(basename "$t")" "$t"
    done
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [[ $mode == all || $mode == unit ]]; then
    unit_suites build unit
fi
if [[ $mode == all || $mode == asan ]]; then
    unit_suites build-asan unit-asan
fi
if [[ $mode == all ]]; then
    [[ -x redis-compat-tests/run.sh ]] && run_suite compat redis-compat-tests/run.sh build/kvd
fi
if [[ $mode == all || $mode == asan ]]; then
    [[ -x redis-compat-tests/run.sh && -x build-asan/kvd ]] &&
        run_suite compat-asan redis-compat-tests/run.sh build-asan/kvd --asan
fi
if [[ $mode == long ]]; then
    for s in tests/long/*.sh; do
        [[ -x "$s" ]] && run_suite "long/$(basename "$s" .sh)" "$s"
    done
fi

if (( ${#failed_suites[@]} )); then
    echo "failed suites: ${failed_suites[*]} (logs in $logdir)"
fi
echo "$total_pass passed, $total_fail failed"
[[ $total_fail -eq 0 ]]
