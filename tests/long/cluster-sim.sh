#!/usr/bin/env bash
# tests/long/cluster-sim.sh: the deterministic cluster simulator (cluster/sim.c) over
# many more seeds than `make test` runs, normal and sanitizer builds. Run by
# `make test-long`; ends with "N passed, M failed" (one per seed). SIM_LONG_SEEDS
# (5000; a tenth of it for the join and leave kinds) and SIM_FIRST (1000) override
# the defaults. A failing seed is printed with the command that replays it
# (build/tests/sim_test [--kind K] --seed S -v).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/counts.sh"
seeds=${SIM_LONG_SEEDS:-5000}
first=${SIM_FIRST:-1000}
p=0 f=0
for bin in "$root/build/tests/sim_test" "$root/build-asan/tests/sim_test"; do
    if [[ ! -x $bin ]]; then
        [[ $bin == */build/* ]] && { echo "$bin not built"; f=$((f + 1)); }
        continue
    fi
    n=$seeds
    [[ $bin == */build-asan/* ]] && n=$((seeds / 5)) # the sanitizer build is ~5x slower
    # the standard seeds, then each kind of run (sim_test --kind: a join, a leave,
    # background repair in the faults, a long absence with tombstone GC, big
    # hashes); a join or leave seed costs ~15 standard ones
    for kind in "" join leave repair absence hash; do
        k=$n
        [[ $kind == join || $kind == leave ]] && k=$((n / 10))
        out=$(timeout 1800 "$bin" ${kind:+--kind $kind} --seeds "$k" --first "$first" 2>&1)
        rc=$?
        echo "$out" | grep -aE 'FAILED|replay|^sim:' | head -40
        count_parse "$out" $rc || echo "$out" | tail -n 20
        p=$((p + count_p)) f=$((f + count_f))
    done
done
echo "$p passed, $f failed"
[[ $f -eq 0 ]]
