#!/usr/bin/env bash
# tests/bench/cluster.sh [KVD_BINARY] [--quick]: `make bench-cluster`.
#
# redis-benchmark (50 clients; SET/GET/INCR; -P 1 and -P 16; 16 B and 1 KiB values)
# against a 3-node kvd cluster with N=3 W=2 R=2, the same with N=1, Redis Cluster on
# this machine (3 masters + 3 replicas, redis-benchmark --cluster) and one kvd node,
# side by side in one run, alternating, median of 3 rounds (tests/bench/cluster_bench.py
# says how each column is measured). Prints requests/s, p50, p99 and the ratios and
# writes build/bench/cluster.txt. The kvd-cluster columns say "skipped: ..." while the
# binary has no cluster. BENCH_QUICK=1 or --quick: one short round. About 6 minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kvd=${1:-$root/build/kvd}
quick=()
[[ -n ${BENCH_QUICK:-} || ${2:-} == --quick ]] && quick=(--quick)
mkdir -p "$root/build/bench"
/usr/bin/python3 "$root/tests/bench/cluster_bench.py" "$kvd" --out "$root/build/bench/cluster.txt" "${quick[@]}"
