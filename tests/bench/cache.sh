#!/usr/bin/env bash
# tests/bench/cache.sh [KVD_BINARY] [--quick]: cache mode, kvd beside redis-server.
#
# Both servers run side by side on free loopback ports with the same maxmemory
# (64mb) and allkeys-lru; every measure alternates kvd, redis, kvd, redis... over
# 3 rounds and reports the medians:
#   pressure  redis-benchmark SET with random keys (-r) over a key space about 4x
#             what fits (100-byte values), 50 clients, pipeline 1 and 16, after a
#             prefill to the limit: requests/s, p99; then evicted_keys and the
#             peak of used_memory against maxmemory.
#   zipf      build/bench/zipf_load (tests/bench/zipf_load.c): cache-aside GET, SET
#             on a miss, keys Zipf(0.99) over 1.5M keys (about 4x what fits), fixed
#             seed, 4 connections, pipeline 16: hit rate (steady state: after each
#             connection's first half) and ops/s, from an empty cache each round.
#   expiry    redis-benchmark GET/SET (50 clients, pipeline 1) on other keys, alone,
#             and right after 1,000,000 keys with a 1 s TTL were loaded (so while
#             they expire): p99 of each, without maxmemory.
# Memory per key is measured by tests/bench/run.sh (redis_compare.py), not here.
# Prints one table and writes it to build/bench/cache.txt. Servers are stopped by
# PID on exit. About 4 minutes on the 2-core VM; --quick: 1 round, small counts,
# written to build/bench/cache-quick.txt instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kvd=$root/build/kvd
quick=0
for a in "$@"; do
    case $a in
        --quick) quick=1 ;;
        *) kvd=$a ;;
    esac
done
redis=$(command -v redis-server)
out=$root/build/bench/cache.txt
mkdir -p "$root/build/bench"
work=$(mktemp -d /tmp/kvd-cache-bench.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

zipf=$root/build/bench/zipf_load
if [[ ! -x $zipf || $zipf -ot $root/tests/bench/zipf_load.c ]]; then
    gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror "$root/tests/bench/zipf_load.c" \
        -lhiredis -lm -o "$zipf"
fi

if ((quick)); then
    out=$root/build/bench/cache-quick.txt # a trial never replaces the real table
    rounds=1 n_p1=50000 n_p16=200000 zipf_n=300000 exp_keys=200000 exp_n=50000
else
    rounds=3 n_p1=200000 n_p16=1000000 zipf_n=2000000 exp_keys=1000000 exp_n=300000
fi
maxmem=64mb
keyspace=1500000 # redis-benchmark's key:NNNNNNNNNNNN, 100-byte values: ~4x of 64mb

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start NAME BIN: sets port_NAME and pid_NAME.
start() {
    local name=$1 bin=$2 port pid i
    port=$(free_port)
    mkdir -p "$work/$name"
    local args=(--port "$port" --bind 127.0.0.1 --dir "$work/$name" --maxmemory "$maxmem"
        --maxmemory-policy allkeys-lru)
    if [[ $bin == *redis-server* ]]; then
        args+=(--save '' --appendonly no --daemonize no)
    else
        args+=(--mode cache) # kvd's default is persistent mode
    fi
    "$bin" "${args[@]}" >"$work/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for ((i = 0; i < 100; i++)); do
        redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    redis-cli -p "$port" PING 2>/dev/null | grep -q PONG || {
        echo "cache.sh: $name did not start:" >&2
        tail "$work/$name.log" >&2
        exit 1
    }
    printf -v "port_$name" %s "$port"
    printf -v "pid_$name" %s "$pid"
}

cli() { redis-cli -p "$1" "${@:2}"; }
field() { cli "$1" INFO all | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }

# rb PORT args...: redis-benchmark --csv; prints "TEST rps p99" lines.
rb() {
    local port=$1; shift
    redis-benchmark -h 127.0.0.1 -p "$port" -c 50 --csv "$@" 2>/dev/null |
        tr -d '"' | awk -F, '$1 != "test" && NF >= 7 { print $1, $2, $7 }'
}

results=$work/results # lines: METRIC SERVER VALUE
record() { echo "$1 $2 $3" >>"$results"; }

start kvd "$kvd"
start redis "$redis"
servers=(kvd redis)
port_of() { local v=port_$1; echo "${!v}"; }
echo "cache.sh: kvd $kvd on $port_kvd, redis-server on $port_redis; maxmemory $maxmem allkeys-lru; $rounds round(s)"

# ---- pressure ------------------------------------------------------------------------
for s in "${servers[@]}"; do
    rb "$(port_of "$s")" -t set -r "$keyspace" -d 100 -n $((keyspace * 2 / 3)) -P 64 >/dev/null
done
for ((r = 1; r <= rounds; r++)); do
    for s in "${servers[@]}"; do
        p=$(port_of "$s")
        for pl in 1 16; do
            n=$n_p1; ((pl == 16)) && n=$n_p16
            rps=0 p99=0
            read -r _ rps p99 < <(rb "$p" -t set -r "$keyspace" -d 100 -n "$n" -P "$pl") || true
            record "pressure_set_p${pl}_rps" "$s" "$rps"
            record "pressure_set_p${pl}_p99_ms" "$s" "$p99"
        done
        echo "  pressure round $r $s done"
    done
done
for s in "${servers[@]}"; do
    p=$(port_of "$s")
    record pressure_evicted_keys "$s" "$(field "$p" evicted_keys)"
    record pressure_keys "$s" "$(cli "$p" DBSIZE)"
    record pressure_peak_used_over_max "$s" \
        "$(awk -v a="$(field "$p" used_memory_peak)" -v b="$(field "$p" maxmemory)" 'BEGIN { printf "%.3f", a / b }')"
done

# ---- zipf hit rate --------------------------------------------------------------------
for ((r = 1; r <= rounds; r++)); do
    for s in "${servers[@]}"; do
        p=$(port_of "$s")
        cli "$p" FLUSHALL >/dev/null
        line=$("$zipf" -p "$p" -n 1500000 -r "$zipf_n" -s 0.99 -d 100 -P 16 -c 4 -S 1)
        for kv in $line; do
            case ${kv%%=*} in
                ops_per_sec | hit_rate | steady_hit_rate | errors) record "zipf_${kv%%=*}" "$s" "${kv#*=}" ;;
            esac
        done
        echo "  zipf round $r $s: $line"
    done
done

# ---- active expiry under load -------------------------------------------------------
for s in "${servers[@]}"; do
    p=$(port_of "$s")
    cli "$p" FLUSHALL >/dev/null
    cli "$p" CONFIG SET maxmemory 0 >/dev/null
done
wait_drained() { # port: until the expiring keys are gone (bounded)
    local i
    for ((i = 0; i < 150; i++)); do
        (($(cli "$1" DBSIZE) < exp_keys / 100)) && return 0
        sleep 0.1
    done
}
for ((r = 1; r <= rounds; r++)); do
    for s in "${servers[@]}"; do
        p=$(port_of "$s")
        while read -r t rps p99; do
            record "expiry_${t}_p99_ms_alone" "$s" "$p99"
        done < <(rb "$p" -t get,set -r 100000 -d 16 -n "$exp_n" -P 1)
        e0=$(field "$p" expired_keys)
        "$zipf" -p "$p" -m fill -n "$exp_keys" -t 1000 -d 16 >/dev/null
        while read -r t rps p99; do
            record "expiry_${t}_p99_ms_expiring" "$s" "$p99"
        done < <(rb "$p" -t get,set -r 100000 -d 16 -n "$exp_n" -P 1)
        wait_drained "$p"
        record expiry_expired_per_round "$s" $(($(field "$p" expired_keys) - e0))
        echo "  expiry round $r $s done"
    done
done

# ---- table ------------------------------------------------------------------------------
stop() { # pid: SIGTERM, bounded wait, then SIGKILL
    local i
    kill -TERM "$1" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
stop "$pid_kvd"
stop "$pid_redis"
pids=()
{
    echo "cache mode: kvd vs redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'), $(date -u '+%Y-%m-%d %H:%M UTC'), maxmemory $maxmem allkeys-lru, median of $rounds round(s)"
    echo "kvd: $kvd ($(git -C "$root" log -1 --format=%h 2>/dev/null || echo '?'))"
    printf '%-36s %14s %14s %9s\n' measure kvd redis kvd/redis
    awk '
        { v[$1 " " $2] = v[$1 " " $2] " " $3; if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
        function median(s,   a, k, i, j, t) {
            k = split(s, a, " ")
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
            return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        }
        END {
            for (i = 0; i < n; i++) {
                m = order[i]; a = median(v[m " kvd"]); b = median(v[m " redis"])
                printf "%-36s %14s %14s %9s\n", m, a, b, (b + 0 != 0 ? sprintf("%.2f", a / b) : "-")
            }
        }' "$results"
} | tee "$out"
echo "written to $out"
