#!/usr/bin/env bash
# tests/long/server-soak.sh: build/kvd (or $KVD) under sustained mixed load for
# $SOAK_SECONDS (default 300, half in each of kvd's modes): model-checked clients, redis-benchmark alongside,
# connection churn, then leak, eviction and clean-shutdown checks
# (tests/long/server_soak.py). Ends with "N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/counts.sh"
kvd=${KVD:-$root/build/kvd}
secs=${SOAK_SECONDS:-300}
p=0 f=0
# both of kvd's modes, half the time each
for mode in persistent cache; do
    out=$(timeout 1800 /usr/bin/python3 "$root/tests/long/server_soak.py" "$kvd" \
        --seconds $((secs / 2)) --server-arg=--mode --server-arg="$mode" 2>&1)
    rc=$?
    echo "$out" | grep -aE '^FAIL' | sed "s/^/[$mode] /"
    count_parse "$out" $rc || echo "$out" | tail -n 10
    echo "[$mode] $count_p passed, $count_f failed"
    p=$((p + count_p)) f=$((f + count_f))
done
echo "$p passed, $f failed"
[[ $f -eq 0 ]]
