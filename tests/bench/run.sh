#!/usr/bin/env bash
# tests/bench/run.sh [KVD_BINARY]: `make bench`.
#
# redis-benchmark against kvd and a real redis-server side by side in one run
# (alternating, median of 3 rounds), 50 clients, SET/GET/INCR/HSET/MSET at pipeline
# 1, 16 and 64 with 16- and 1024-byte values, then memory per key for 1M small
# strings, 1M 100-byte strings and 100k 10-field hashes -- kvd in cache mode, the
# like-for-like comparison with an in-memory Redis. Then a short persistent-mode
# pass (one round, P16, 16 bytes, 100k requests, 120 s cap per test). Prints the
# tables and writes them to build/bench/redis-compare.txt. Servers are started on
# free loopback ports and stopped by PID. About 12 minutes on the 2-core VM.
# Then tests/bench/cache.sh (build/bench/cache.txt) and tests/bench/persist.sh
# (build/bench/persist.txt). BENCH_QUICK=1: a short trial run of all of it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kvd=${1:-$root/build/kvd}
out=$root/build/bench/redis-compare.txt
mkdir -p "$root/build/bench"
quick=()
[[ -n ${BENCH_QUICK:-} ]] && quick=(--quick)
py=/usr/bin/python3
$py "$root/tests/bench/redis_compare.py" "$kvd" --kvd-arg=--mode --kvd-arg=cache \
    --title "cache mode" --out "$out.cache" "${quick[@]}"
$py "$root/tests/bench/redis_compare.py" "$kvd" --kvd-arg=--mode --kvd-arg=persistent \
    --title "persistent mode, appendfsync default" --skip-memory --rounds 1 --pipelines 16 \
    --sizes 16 --requests 100000 --timeout 120 --out "$out.persistent" "${quick[@]}"
cat "$out.cache" "$out.persistent" >"$out"
rm -f "$out.cache" "$out.persistent"
echo "written to $out"
# cache mode under memory pressure (allkeys-lru), zipf hit rate, expiry under load
bash "$root/tests/bench/cache.sh" "$kvd" "${quick[@]}"
# persistent mode, every appendfsync, beside redis-server with AOF
bash "$root/tests/bench/persist.sh" "$kvd" "${quick[@]}"
