#!/usr/bin/env bash
# tests/long/differential-seeds.sh: the differential test (kvd against redis-server,
# reply by reply) over many more seeds and steps than `make test` runs, in RESP2 and
# RESP3, plain and with maxmemory 1gb allkeys-lru. Run by `make test-long`; ends with
# "N passed, M failed". SEEDS and STEPS override the defaults (40 seeds x 20000).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/counts.sh"
kvd=${KVD:-$root/build/kvd}
seeds=${SEEDS:-40}
steps=${STEPS:-20000}
cd "$root/redis-compat-tests"
p=0 f=0
for args in "--first-seed 1000" "--first-seed 5000 --maxmemory"; do
    # shellcheck disable=SC2086
    out=$(timeout 1800 /usr/bin/python3 differential.py --kvd "$kvd" --seeds "$seeds" \
        --steps "$steps" $args 2>&1)
    rc=$?
    echo "$out" | grep -aE -A2 '^(FAIL|MISMATCH)|^seed ' |
        grep -avE '^(--|([A-Za-z0-9-]+: )?[0-9]+ passed, [0-9]+ failed.*)$'
    count_parse "$out" $rc || echo "$out" | tail -n 20
    p=$((p + count_p)) f=$((f + count_f))
done
echo "$p passed, $f failed"
[[ $f -eq 0 ]]
