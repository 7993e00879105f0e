#!/usr/bin/env bash
# tests/long/persist_bigdata.sh: redis-compat-tests/persist_bigdata.py at full size:
# 1.5 GB of 1 KiB values (1.5M keys) under --maxmemory 64mb, every key read back,
# VmRSS < 256 MB during and after; then the LOADING and expiry/flush tests with 3M
# keys (persist_loading.py, persist_expire.py). Run by `make test-long`; KVD
# overrides the binary. Ends with "N passed, M failed" (the total of the three).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/counts.sh"
kvd=${KVD:-$root/build/kvd}
cd "$root/redis-compat-tests"
p=0 f=0
for t in "persist_bigdata.py --mb 1536" "persist_loading.py --keys 3000000" \
         "persist_expire.py --keys 3000000 --flush-limit 2.0"; do
    # shellcheck disable=SC2086
    out=$(timeout -k 10 1800 /usr/bin/python3 $t --server "$kvd" 2>&1)
    rc=$?
    echo "$out"
    count_parse "$out" $rc
    p=$((p + count_p)) f=$((f + count_f))
done
echo "$p passed, $f failed"
[[ $f -eq 0 ]]
