#!/usr/bin/env bash
# tests/long/cache_long.sh: the cache-mode cases too slow for `make test`, from
# redis-compat-tests/cache_test.py: LFU counter decay over two minutes (decay), and
# 20x maxmemory of mixed strings, APPENDs and growing hashes under five policies
# (churn: the limit holds at every sample, RSS stays bounded, FLUSHALL frees).
# Run by `make test-long`; KVD overrides the binary (KVD=/usr/bin/redis-server checks
# the cases against Redis itself). Takes about 4 minutes. Ends with "N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kvd=${KVD:-$root/build/kvd}
cd "$root/redis-compat-tests"
exec timeout -k 5 900 /usr/bin/python3 cache_test.py --server "$kvd" --only decay,churn
