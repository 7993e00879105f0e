#!/usr/bin/env bash
# tests/bench/convergence.sh [KVD_BINARY]: `make bench-convergence`.
#
# How the cluster converges, in numbers (no assertions): a Merkle repair of
# 1,000,000 keys with 1% divergent (tests/bench/repair.py), a replica whose
# directory was wiped (wipe.py, 200,000 keys), the membership views of 5 nodes
# (gossip.py: cold start, kill, restart, SIGSTOP, SIGCONT; medians of 5), and a
# node joining a 3-node cluster holding 500,000 keys (join.py: MB/s, keys/s,
# QUORUM p99 before and during). Writes build/bench/convergence.txt. The sizes
# come from REPAIR_BENCH_KEYS, WIPE_BENCH_KEYS, GOSSIP_BENCH_RUNS and
# JOIN_BENCH_KEYS. About 4 minutes on the 2-core VM. Skips while the binary
# has no cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kvd=${1:-$root/build/kvd}
out=$root/build/bench/convergence.txt
mkdir -p "$root/build/bench"
if [[ $("$kvd" --help-config 2>&1) != *cluster-enabled* ]]; then
    echo "skipped: $kvd has no cluster" | tee "$out"
    exit 0
fi
{
    echo "# make bench-convergence at $(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
    for b in repair wipe gossip join; do
        echo "## $b"
        /usr/bin/python3 "$root/tests/bench/$b.py" "$kvd" 2>&1
    done
    echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
