#!/usr/bin/env bash
# Runs every test suite and prints one total line "N passed, M failed".
#
# Each suite is a command whose last "N passed, M failed" line is its count
# (tests/counts.sh); a suite without such a line, or that exits non-zero with no
# failure counted, counts as one failure. Suites:
#   layers:  tests/check-layers.sh (every #include against the layer order)
#   seal:    tests/check-seal.sh (command handlers use only the coordinator seam)
#   funclen: tests/check-func-length.py (no function in server/**/*.c over 80 lines
#            without a "long:" reason; allow-list tests/func-length-allow.txt)
#   seams:   tests/check-seams.sh (coord.c and the keyspace call no WATCH/persistence by name)
#   clang:   make CC=clang BUILD=build-clang all (the tree is -Werror clean under clang)
#   unit:    every binary in build/tests/ (and build-asan/tests/)
#   compat:  redis-compat-tests/run.sh KVD_BINARY [--asan]  (real clients, differential)
#   compat-cluster1: the same against a one-node cluster (cluster-enabled yes, N=W=R=1)
#   compat-cluster3: tests/cluster/compat3.py: the client suites against node 1 of a
#            3-node cluster (N=3 W=2 R=2), then over a pool of the three nodes, then
#            the differential test through node 1; cache mode, then persistent mode
#   compat-cluster3-asan: the same in cache mode on sanitizer builds (asan modes)
#   cluster: tests/cluster/run.sh KVD_BINARY [--asan]  (real kvd clusters on 127.0.0.2..;
#            SKIPs with 0 counted while the binary has no cluster)
#   jepsen-checker: tests/jepsen/checker_test.py (the Jepsen-style checkers on
#            synthetic histories; no kvd process)
#   jepsen:  tests/jepsen/run.sh KVD_BINARY (`make test-cluster`: registers under one
#            fault at a time, the history checked for linearizability; ~1.5 min)
#   long:    tests/long/*.sh, only with --long
# Options: --unit-only, --asan-only, --long.
set -uo pipefail
cd "$(dirname "$0")/.."
source tests/counts.sh

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
    count_parse "$(cat "$log")" $rc
    local p=$count_p f=$count_f
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
    run_suite layers bash tests/check-layers.sh
    run_suite seal bash tests/check-seal.sh
    run_suite funclen python3 tests/check-func-length.py
    run_suite seams bash tests/check-seams.sh
    run_suite jepsen-checker /usr/bin/python3 tests/jepsen/checker_test.py
    # the whole tree with clang -Werror too (build-clang/; the binaries are not run)
    command -v clang >/dev/null &&
        run_suite clang bash -c 'make --no-print-directory -j2 BUILD=build-clang CC=clang all \
            && echo "1 passed, 0 failed"'
    unit_suites build unit
fi
if [[ $mode == all || $mode == asan ]]; then
    unit_suites build-asan unit-asan
fi
if [[ $mode == all ]]; then
    [[ -x redis-compat-tests/run.sh ]] && run_suite compat redis-compat-tests/run.sh build/kvd
    [[ -x tests/cluster/run.sh ]] && run_suite cluster tests/cluster/run.sh build/kvd
    [[ -x tests/jepsen/run.sh ]] && run_suite jepsen tests/jepsen/run.sh build/kvd
    # the same suites against a one-node cluster: every data command through the
    # coordinator's four steps (server/cmd/coordinate.c); WATCH skipped with its reason
    cluster1="--cluster-enabled yes --cluster-secret compat --replication-factor 1"
    cluster1+=" --write-quorum 1 --read-quorum 1"
    [[ -x redis-compat-tests/run.sh ]] &&
        run_suite compat-cluster1 env KVD_ARGS="$cluster1" redis-compat-tests/run.sh build/kvd
    # every client suite through a 3-node cluster; what it refuses is skipped with its
    # reason (README "Cluster mode")
    run_suite compat-cluster3 /usr/bin/python3 tests/cluster/compat3.py build/kvd --mode cache
    run_suite compat-cluster3-persistent /usr/bin/python3 tests/cluster/compat3.py build/kvd \
        --mode persistent
fi
if [[ $mode == all || $mode == asan ]]; then
    [[ -x redis-compat-tests/run.sh && -x build-asan/kvd ]] &&
        run_suite compat-asan redis-compat-tests/run.sh build-asan/kvd --asan
    [[ -x tests/cluster/run.sh && -x build-asan/kvd ]] &&
        run_suite cluster-asan tests/cluster/run.sh build-asan/kvd --asan
    # the client suites through a 3-node cluster of sanitizer builds (cache mode: the
    # coordinator's paths are the same in both modes; persistent runs unsanitized above)
    [[ -x build-asan/kvd ]] &&
        run_suite compat-cluster3-asan /usr/bin/python3 tests/cluster/compat3.py \
            build-asan/kvd --mode cache --asan
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
