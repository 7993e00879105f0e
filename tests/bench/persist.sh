#!/usr/bin/env bash
# tests/bench/persist.sh [KVD_BINARY] [--quick]: persistent mode beside redis-server.
#
# redis-benchmark, 50 clients, -t set,get,incr,hset, pipeline 1 and 16, values of 16
# and 1024 bytes, -r 100000; all servers run side by side on free loopback ports,
# each measure alternates kvd and redis over 3 rounds; medians of requests/s and p99:
#   kvd --mode persistent --appendfsync everysec  vs  redis-server --appendonly yes
#                                                     --appendfsync everysec
#   kvd --appendfsync always                      vs  redis-server ... always
#   and, at pipeline 16, kvd always / kvd --mode cache
# then GET (pipeline 1 and 16) with a data set 10x the cache: kvd --maxmemory 32mb
# holding 320 MB of 1 KiB values, beside redis-server holding them in memory.
# Prints one table and writes it to build/bench/persist.txt (--quick: 1 round,
# small counts, build/bench/persist-quick.txt). Servers are stopped by PID; data
# dirs live under /tmp and are removed. About 10 minutes on the 2-core VM.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kvd=$root/build/kvd
quick=()
out=$root/build/bench/persist.txt
for a in "$@"; do
    case $a in
        --quick) quick=(--quick) out=$root/build/bench/persist-quick.txt ;;
        *) kvd=$a ;;
    esac
done
mkdir -p "$root/build/bench"
exec /usr/bin/python3 "$root/tests/bench/persist_bench.py" "$kvd" "${quick[@]}" --out "$out"
