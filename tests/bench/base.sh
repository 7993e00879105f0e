#!/usr/bin/env bash
# tests/bench/base.sh OLD_KVD [NEW_KVD]: `make bench-base BASE=OLD_KVD`.
#
# A regression check for a change: the new kvd (default build/kvd) beside an earlier
# kvd binary, side by side in one run (alternating new, old, old, new, ... over 3
# rounds, medians), with redis_compare.py --base: redis-benchmark SET/GET/INCR/HSET/
# MSET at pipeline 16 with 16- and 1024-byte values in cache mode and in persistent
# mode, and memory per key (1M small strings, 1M 100-byte strings, 100k hashes) in
# cache mode. The ratio column is new/old. Writes build/bench/base-compare.txt.
# To get an old binary: git worktree add /tmp/kvd-old <rev> && make -C /tmp/kvd-old
# build/kvd. About 12 minutes on the 2-core VM.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
old=${1:?usage: base.sh OLD_KVD [NEW_KVD]}
new=${2:-$root/build/kvd}
out=$root/build/bench/base-compare.txt
mkdir -p "$root/build/bench"
py=/usr/bin/python3
rounds=${BENCH_ROUNDS:-3}
$py "$root/tests/bench/redis_compare.py" "$new" --base "$old" --kvd-arg=--mode \
    --kvd-arg=cache --title "cache mode, new vs old" --pipelines 16 --rounds "$rounds" \
    --out "$out.cache"
$py "$root/tests/bench/redis_compare.py" "$new" --base "$old" --kvd-arg=--mode \
    --kvd-arg=persistent --title "persistent mode, new vs old" --skip-memory --pipelines 16 \
    --rounds "$rounds" --timeout 300 --out "$out.persistent"
cat "$out.cache" "$out.persistent" >"$out"
rm -f "$out.cache" "$out.persistent"
echo "written to $out"
