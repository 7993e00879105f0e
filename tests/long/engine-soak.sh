#!/usr/bin/env bash
# tests/long/engine-soak.sh: the engine's model test and crash test at soak scale
# (many more seeds, operations and SIGKILL rounds than `make test`). Run by
# `make test-long`; ends with "N passed, M failed". MODEL_SEEDS (200), MODEL_OPS
# (20000) and CRASH_ROUNDS (60) override the defaults.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/counts.sh"
export MODEL_SEEDS=${MODEL_SEEDS:-200}
export MODEL_OPS=${MODEL_OPS:-20000}
export CRASH_ROUNDS=${CRASH_ROUNDS:-60}
p=0 f=0
for t in db_test db_crash_test; do
    bin=$root/build/tests/$t
    [[ -x $bin ]] || { echo "$bin not built"; f=$((f + 1)); continue; }
    out=$(timeout 3600 "$bin" 2>&1)
    rc=$?
    echo "$out" | grep -E 'FAIL|not ok' | head -20
    count_parse "$out" $rc || echo "$out" | tail -n 20
    p=$((p + count_p)) f=$((f + count_f))
done
echo "$p passed, $f failed"
[[ $f -eq 0 ]]
