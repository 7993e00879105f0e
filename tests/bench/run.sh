#!/usr/bin/env bash
# tests/bench/run.sh [KVD_BINARY] [redis_compare.py options]: `make bench`.
#
# redis-benchmark against kvd and a real redis-server side by side in one run
# (alternating, median of 3 rounds) at pipeline 1, 16 and 64 with 16- and 1024-byte
# values, then memory per key for 1M small strings, 1M 100-byte strings and 100k
# 10-field hashes. Prints a table and writes it to build/bench/redis-compare.txt.
# Both servers are started on free loopback ports and stopped by PID. Takes about
# 10 minutes on the 2-core VM; --quick gives a 1-minute trial run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kvd=${1:-$root/build/kvd}
[[ $# -gt 0 ]] && shift
mkdir -p "$root/build/bench"
exec /usr/bin/python3 "$root/tests/bench/redis_compare.py" "$kvd" \
    --out "$root/build/bench/redis-compare.txt" "$@"
