#!/usr/bin/env bash
# tests/cluster/run.sh KVD_BINARY [--asan]: the `cluster` suite of tests/run-all.sh.
#
# Runs every tests/cluster/*_test.py against real kvd processes forming clusters on
# 127.0.0.2, 127.0.0.3, ... (tests/cluster/harness.py starts and stops them by PID).
# While the binary has no cluster (no cluster-enabled directive or no KVD NODES) it
# prints "SKIP cluster: <reason>" and "0 passed, 0 failed". Otherwise prints one line
# per test file and ends with the total "N passed, M failed". Partition rules left
# by any run (iptables, comment kvd-cluster-test) are removed at the end.
# CLUSTER_TESTS="clients faults" runs only those files. A test's lines starting
# "MEASURED " (numbers, never asserted) are shown too.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../counts.sh"
bin=${1:?usage: run.sh KVD_BINARY [--asan]}
asan=${2:-}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
PY=/usr/bin/python3

why=$(cd "$here" && timeout 60 $PY -c '
import sys, harness
ok, why = harness.probe(sys.argv[1])
print("" if ok else why)' "$bin" 2>&1 | tail -n 1)
if [[ -n $why ]]; then
    echo "SKIP cluster: $why"
    echo "0 passed, 0 failed"
    exit 0
fi

total_p=0 total_f=0
limit=300
[[ $asan == --asan ]] && limit=600
tests=()
if [[ -n ${CLUSTER_TESTS:-} ]]; then
    for t in $CLUSTER_TESTS; do tests+=("$here/${t}_test.py"); done
else
    tests=("$here"/*_test.py)
fi
work=$(mktemp -d /tmp/kvd-cluster-run.XXXXXX)
trap 'rm -rf "$work"; (cd "$here" && $PY -c "import harness; harness.heal()")' EXIT
for t in "${tests[@]}"; do
    name=$(basename "$t" _test.py)
    log=$work/$name.log start=$SECONDS
    (cd "$here" && timeout -k 10 "$limit" $PY "$t" "$bin" $asan) >"$log" 2>&1
    rc=$?
    count_parse "$(cat "$log")" "$rc" || tail -n 30 "$log" | sed 's/^/    /'
    [[ $rc -eq 124 ]] && echo "FAIL $name: timed out after ${limit}s"
    grep -aE -A3 '^(FAIL|SKIP|Traceback)' "$log" | head -n 60
    grep -aE '^MEASURED ' "$log" | head -n 20
    printf '%s: %d passed, %d failed (%ds)\n' "$name" "$count_p" "$count_f" $((SECONDS - start))
    total_p=$((total_p + count_p)) total_f=$((total_f + count_f))
done
echo "$total_p passed, $total_f failed"
[[ $total_f -eq 0 ]]
