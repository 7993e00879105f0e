#!/usr/bin/env bash
# tests/long/engine-soak.sh: the engine's model test and crash test at soak scale
# (many more seeds, operations and SIGKILL rounds than `make test`). Run by
# `make test-long`; ends with "N passed, M failed". MODEL_SEEDS (200), MODEL_OPS
# (20000) and CRASH_ROUNDS (60) override the defaults.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
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
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [[ -z $line ]]; then
        f=$((f + 1))
        echo "$out" | tail -n 20
        continue
    fi
    p=$((p + ${line%% passed*}))
    ff=${line#*passed, }
    f=$((f + ${ff%% failed*}))
    [[ $rc -ne 0 && ${ff%% failed*} -eq 0 ]] && f=$((f + 1))
done
echo "$p passed, $f failed"
[[ $f -eq 0 ]]
