#!/usr/bin/env bash
# tests/bench/engine.sh: kvd's engine (build/kvd-engine-bench) against RocksDB's
# db_bench (Debian rocksdb-tools) on the same workloads and flags, alternating the
# two tools in one run, and prints ops/sec side by side with ratios (medians when
# REPEAT > 1), write amplification, space on disk after fillrandom + full
# compaction against the live data, and peak RSS.
#
# Environment: NUM (1000000), SYNC_NUM (5000), REPEAT (1), SYNC_REPEAT (5),
#              BENCH_DIR (/tmp), KVD_BENCH (build/kvd-engine-bench), DB_BENCH (db_bench).
# Synced writes are measured in short alternating runs (fsync latency on a shared
# VM swings with the neighbours' I/O), with 1 and 4 writer threads (group commit).
set -uo pipefail
cd "$(dirname "$0")/../.."

NUM=${NUM:-1000000}
SYNC_NUM=${SYNC_NUM:-5000}
REPEAT=${REPEAT:-1}
SYNC_REPEAT=${SYNC_REPEAT:-5}
BENCH_DIR=${BENCH_DIR:-/tmp}
KVD=${KVD_BENCH:-build/kvd-engine-bench}
DBB=${DB_BENCH:-db_bench}
WORKLOADS=fillseq,fillrandom,overwrite,readrandom,readmissing,readseq,seekrandom,deleterandom
COMMON="--key_size=16 --value_size=100 --compression_type=none --bloom_bits=10 --seed=1"

command -v "$DBB" >/dev/null || { echo "db_bench not found (apt-get install rocksdb-tools)"; exit 1; }
[[ -x $KVD ]] || { echo "$KVD not built (make build/kvd-engine-bench)"; exit 1; }

work=$(mktemp -d "$BENCH_DIR/kvd-engine-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
out=$work/results   # lines: tool workload ops/sec
: >"$out"

run_tool() { # tool label extra-flags...
    local tool=$1 label=$2; shift 2
    local bin=$KVD db=$work/kvd
    [[ $tool == rocksdb ]] && bin=$DBB db=$work/rocksdb
    rm -rf "$db"
    local log=$work/$tool.$label.log
    sync # start each run without the previous run's dirty pages
    /usr/bin/time -f "peak_rss_kb=%M" "$bin" $COMMON --db="$db" "$@" >"$log" 2>&1
    sed 's/\.\.\. finished[^A-Za-z]*ops *//g' "$log" |
        awk -v t="$tool" -v l="$label" '
            /^[a-z]+ +: +[0-9.]+ micros\/op/ { n=$1; if (l != "main") n=n"(" l ")";
                                               print t, n, $5 }
            /peak_rss_kb=/ { split($0, a, "="); print t, "rss:" l, a[2] }' >>"$out"
    if [[ $label == space ]]; then
        local live sst
        live=$(sed 's/\.\.\. finished[^A-Za-z]*ops *//g' "$log" | awk '/^readseq +:/ { print $(NF-3) }')
        sst=$(find "$db" -name '*.sst' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
        echo "$tool space_bytes $sst" >>"$out"
        echo "$tool live_bytes $((live * 116))" >>"$out"
        if [[ $tool == kvd ]]; then
            awk '/write_amplification=/ { for (i = 1; i <= NF; i++) if ($i ~ /^write_amplification=/) { split($i, a, "="); print "kvd wamp", a[2] } }' "$log" >>"$out"
        else
            awk -v user=$((NUM * 116)) '
                /rocksdb.wal.bytes COUNT/ { w = $4 } /rocksdb.flush.write.bytes COUNT/ { f = $4 }
                /rocksdb.compact.write.bytes COUNT/ { c = $4 }
                END { printf "rocksdb wamp %.2f\n", (w + f + c) / user }' "$log" >>"$out"
        fi
    fi
}

for ((r = 1; r <= REPEAT; r++)); do
    order="kvd rocksdb"
    (( r % 2 == 0 )) && order="rocksdb kvd"
    for tool in $order; do
        echo "round $r: $tool main workloads (--num=$NUM)" >&2
        run_tool "$tool" main --benchmarks=$WORKLOADS --num="$NUM" --threads=1
    done
done
for ((r = 1; r <= SYNC_REPEAT; r++)); do
    order="kvd rocksdb"
    (( r % 2 == 0 )) && order="rocksdb kvd"
    for tool in $order; do
        echo "sync round $r: $tool fillrandom --sync=1 (--num=$SYNC_NUM, 1 and 4 threads)" >&2
        run_tool "$tool" sync --benchmarks=fillrandom --sync=1 --num="$SYNC_NUM" --threads=1
        run_tool "$tool" sync4 --benchmarks=fillrandom --sync=1 --num="$SYNC_NUM" --threads=4
    done
done
for tool in kvd rocksdb; do
    echo "$tool: fillrandom + full compaction for space and write amplification" >&2
    extra=""
    [[ $tool == rocksdb ]] && extra="--statistics"
    run_tool "$tool" space --benchmarks=fillrandom,compact,readseq,stats --num="$NUM" --threads=1 $extra
done

median() { sort -g | awk 'function out(x) { if (x >= 100) printf "%.0f\n", x; else printf "%.2f\n", x }
    { a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) out(a[(NR + 1) / 2]); else out((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
val() { awk -v t="$1" -v w="$2" '$1 == t && $2 == w { print $3 }' "$out" | median; }

echo
echo "kvd engine vs RocksDB db_bench $($DBB --version 2>/dev/null | head -1 | awk '{ print $3 }') (num=$NUM x $REPEAT rounds; synced: num=$SYNC_NUM per thread x $SYNC_REPEAT rounds; median ops/sec)"
all() { awk -v t="$1" -v w="$2" '$1 == t && $2 == w { printf "%s%d", (n++ ? "," : ""), $3 }' "$out"; }
printf '%-18s %10s %10s %7s   %s\n' workload kvd rocksdb ratio "every round: kvd / rocksdb"
for w in ${WORKLOADS//,/ } "fillrandom(sync)" "fillrandom(sync4)"; do
    k=$(val kvd "$w") d=$(val rocksdb "$w")
    ratio=$(awk -v k="$k" -v d="$d" 'BEGIN { if (d + 0 > 0 && k + 0 > 0) printf "%.2fx", k / d; else print "-" }')
    printf '%-18s %10s %10s %7s   %s / %s\n' "$w" "$k" "$d" "$ratio" "$(all kvd "$w")" "$(all rocksdb "$w")"
done
for tool in kvd rocksdb; do
    s=$(val $tool space_bytes) l=$(val $tool live_bytes) wa=$(val $tool wamp)
    rss=$(awk -v t=$tool '$1 == t && $2 ~ /^rss:main/ { print $3 }' "$out" | sort -n | tail -1)
    awk -v t=$tool -v s="$s" -v l="$l" -v wa="$wa" -v rss="$rss" 'BEGIN {
        printf "%-8s space after fillrandom+compact: %d bytes for %d live bytes = %.3fx; write amp (fillrandom+compact) %s; peak RSS (main run) %.1f MiB\n",
               t, s, l, (l > 0 ? s / l : 0), wa, rss / 1024 }'
done
