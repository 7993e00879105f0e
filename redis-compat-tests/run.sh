#!/usr/bin/env bash
# redis-compat-tests/run.sh KVD_BINARY [--asan]
#
# Starts the server under test on a free loopback port (own temp dir), plus a second
# one with --requirepass, waits until each answers PING, runs every client suite
# against them, stops both by PID and checks they exited cleanly (with --asan: that
# their stderr holds no sanitizer report). Prints one line per suite and ends with
# the total "N passed, M failed" (test cases).
#
# KVD_ARGS="--mode persistent" (say) adds options to every kvd it and the
# differential/fuzz suites start.
# COMPAT_SERVER=host:port: the main server is one already running there (a cluster
# node: tests/cluster/compat3.py); run.sh neither starts nor stops it, and the
# suites reach it at COMPAT_HOST. COMPAT_POOL="host:port,..." (passed on) spreads the
# client suites' connections over those servers. COMPAT_SUITES="redis-cli hiredis"
# runs only the suites named. COMPAT_REFUSED: the commands among FLUSHALL FLUSHDB
# DBSIZE KEYS SCAN RANDOMKEY WATCH the main server refuses, probed here on its
# (empty) key space; the suites skip what needs them, with the reason
# (redis-compat-tests/respclient.py). The password server is always run.sh's own.
# KVD_BINARY may be a redis-server: the suites are checked against Redis itself that
# way (redis-compat-tests/run.sh /usr/bin/redis-server). --asan runs the same suites
# with fewer differential steps (the sanitizer build is ~3x slower).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/../tests/counts.sh" # count_parse

bin=${1:?usage: run.sh KVD_BINARY [--asan]}
asan=0
[[ "${2:-}" == --asan ]] && asan=1
# KVD_ARGS: extra options for every kvd started (e.g. KVD_ARGS="--mode persistent")
read -r -a kvd_args <<<"${KVD_ARGS:-}"
diff_kvd_args=()
for a in "${kvd_args[@]}"; do diff_kvd_args+=("--kvd-arg=$a"); done
[[ "$bin" == */* ]] || bin=$(command -v "$bin")
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
PY=/usr/bin/python3
target=kvd
[[ "$(basename "$bin")" == *redis-server* ]] && target=redis
export COMPAT_TARGET=$target
# A kvd started with --cluster-enabled yes (a one-node cluster): the suites skip, with
# a reason, what cluster mode refuses (WATCH: README "Cluster mode").
COMPAT_CLUSTER=0
[[ " ${KVD_ARGS:-} " == *" --cluster-enabled yes "* ]] && COMPAT_CLUSTER=1
export COMPAT_CLUSTER

work=$(mktemp -d /tmp/kvd-compat.XXXXXX)
pids=()
total_p=0
total_f=0

cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server NAME extra-args...: sets SRV_PORT and SRV_PID; the server's stdout and
# stderr go to $work/NAME.out / NAME.err.
start_server() {
    local name=$1; shift
    local try port dir pid
    for try in 1 2 3; do
        port=$(free_port)
        dir=$work/$name-dir
        mkdir -p "$dir"
        local args=(--port "$port" --bind 127.0.0.1 --dir "$dir")
        [[ $target == redis ]] && args+=(--save '' --appendonly no --daemonize no)
        [[ $target == kvd ]] && args+=("${kvd_args[@]}")
        (cd "$dir" && exec "$bin" "${args[@]}" "$@") >"$work/$name.out" 2>"$work/$name.err" &
        pid=$!
        local deadline=$((SECONDS + 30))
        while ((SECONDS < deadline)); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if timeout 2 redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null | grep -qE '^(PONG|NOAUTH)'; then
                SRV_PORT=$port SRV_PID=$pid
                pids+=("$pid")
                return 0
            fi
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    echo "run.sh: $name ($bin) did not answer PING; stderr tail:" >&2
    tail -n 20 "$work/$name.err" "$work/$name.out" >&2
    return 1
}

# stop_server NAME PID [--shutdown PORT PASSWORD]: SIGTERM (or the SHUTDOWN NOSAVE
# command), bounded wait, SIGKILL. Counts "exited cleanly" (status 0) and, under
# --asan, "no sanitizer report" as test cases.
stop_server() {
    local name=$1 pid=$2 rc i
    if [[ ${3:-} == --shutdown ]]; then
        # the SHUTDOWN command: the reply is the connection closing, then the exit
        timeout 10 redis-cli -h 127.0.0.1 -p "$4" --no-auth-warning -a "$5" SHUTDOWN NOSAVE \
            >/dev/null 2>&1
    else
        kill -TERM "$pid" 2>/dev/null
    fi
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        echo "FAIL $name: did not exit within 30 s of ${3:-SIGTERM}"
        total_f=$((total_f + 1))
    else
        wait "$pid"
        rc=$?
        if [[ $rc -eq 0 ]]; then
            total_p=$((total_p + 1))
        else
            echo "FAIL $name: exit status $rc after ${3:-SIGTERM}"
            tail -n 20 "$work/$name.err" | sed 's/^/    /'
            total_f=$((total_f + 1))
        fi
    fi
    if ((asan)); then
        if grep -aqE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' \
            "$work/$name.err" "$work/$name.out"; then
            echo "FAIL $name: sanitizer report:"
            grep -ahE -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
                "$work/$name.err" "$work/$name.out" | head -n 60 | sed 's/^/    /'
            total_f=$((total_f + 1))
        else
            total_p=$((total_p + 1))
        fi
    fi
}

# wanted NAME: true when COMPAT_SUITES is unset or names NAME
wanted() {
    [[ -z ${COMPAT_SUITES:-} || " $COMPAT_SUITES " == *" $1 "* ]]
}

# run_suite NAME TIMEOUT cmd...: runs one suite, shows its failures, adds its count.
run_suite() {
    local name=$1 limit=$2; shift 2
    wanted "$name" || return 0
    local log=$work/suite-$name.log start=$SECONDS
    (cd "$here" && timeout -k 5 "$limit" "$@") >"$log" 2>&1
    local rc=$?
    local line='' p f
    count_parse "$(cat "$log")" "$rc" && line=ok
    p=$count_p f=$count_f
    [[ $rc -eq 124 ]] && echo "FAIL $name: timed out after ${limit}s"
    # failures, each with its detail lines (a mismatch prints both replies below it)
    grep -aE -A2 '^(FAIL|MISMATCH|SKIP)' "$log" | grep -avE '^(--|([A-Za-z0-9-]+: )?[0-9]+ passed, [0-9]+ failed.*)$' |
        head -n 100
    if [[ $f -ne 0 && -z "$line" ]]; then tail -n 30 "$log" | sed 's/^/    /'; fi
    printf '%s: %d passed, %d failed (%ds)\n' "$name" "$p" "$f" $((SECONDS - start))
    total_p=$((total_p + p))
    total_f=$((total_f + f))
}

# revive NAME-VAR PID-VAR PORT-VAR SUITE [server args]: when the server died during
# SUITE, counts one failure with its exit status and stderr (a sanitizer report shows
# there), and starts a fresh one so the later suites still run.
revive() {
    local namevar=$1 pidvar=$2 portvar=$3 suite=$4; shift 4
    local name=${!namevar} pid=${!pidvar} rc
    [[ $pid == external ]] && return 0 # not run.sh's: the caller watches it
    kill -0 "$pid" 2>/dev/null && return 0
    wait "$pid" 2>/dev/null
    rc=$?
    echo "FAIL $name: the server died during suite $suite (exit status $rc); stderr tail:"
    if grep -aqE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$work/$name.err"; then
        grep -ahE -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$work/$name.err" |
            head -n 40 | sed 's/^/    /'
    else
        tail -n 10 "$work/$name.err" "$work/$name.out" | sed 's/^/    /'
    fi
    total_f=$((total_f + 1))
    local p keep=()
    for p in "${pids[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    pids=("${keep[@]}")
    restarts=$((restarts + 1))
    name=${name%%-r*}-r$restarts
    if ! start_server "$name" "$@"; then
        echo "$total_p passed, $((total_f + 1)) failed"
        exit 1
    fi
    printf -v "$namevar" '%s' "$name"
    printf -v "$pidvar" '%s' "$SRV_PID"
    printf -v "$portvar" '%s' "$SRV_PORT"
}
restarts=0

# suite NAME TIMEOUT cmd...: run_suite, then make sure both servers are still up.
# With COMPAT_DB_BASE (a server that refuses FLUSHALL) each suite gets its own 16
# databases for its fresh key spaces.
suite() {
    local name=$1
    [[ -n ${COMPAT_DB_BASE:-} ]] && export COMPAT_DB_BASE=$((COMPAT_DB_BASE + 16))
    run_suite "$@"
    revive main_name main_pid port "$name"
    revive auth_name auth_pid auth_port "$name" --requirepass "$authpw"
}

authpw="compat-$RANDOM-pw"
main_name=main auth_name=auth
host=127.0.0.1
if [[ -n ${COMPAT_SERVER:-} ]]; then
    host=${COMPAT_SERVER%:*} port=${COMPAT_SERVER##*:} main_pid=external
elif ! start_server main; then
    echo "0 passed, 1 failed"
    exit 1
else
    port=$SRV_PORT main_pid=$SRV_PID
fi
export COMPAT_HOST=$host
if ! start_server auth --requirepass "$authpw"; then
    echo "0 passed, 1 failed"
    exit 1
fi
auth_port=$SRV_PORT auth_pid=$SRV_PID
echo "run.sh: $target $bin on $host:$port (auth server on $auth_port)${COMPAT_POOL:+, pool $COMPAT_POOL}"

# What the main server refuses (a kvd cluster: keyless commands, WATCH), asked on its
# empty key space (FLUSHALL/FLUSHDB there change nothing): "ERR X is not supported".
if [[ -z ${COMPAT_REFUSED+set} ]]; then
    COMPAT_REFUSED=
    for probe in FLUSHALL FLUSHDB DBSIZE 'KEYS *' 'SCAN 0' RANDOMKEY 'WATCH probe-key'; do
        # shellcheck disable=SC2086 # the probe is words
        if timeout 10 redis-cli -h "$host" -p "$port" $probe 2>&1 | grep -q 'not supported'; then
            COMPAT_REFUSED+="${probe%% *} "
        fi
    done
fi
export COMPAT_REFUSED
[[ -n $COMPAT_REFUSED ]] && echo "run.sh: the server refuses: $COMPAT_REFUSED(their checks are skipped)"

# hiredis test binary: built by `make` into build/compat/; compiled here when absent.
hiredis_bin=$root/build/compat/hiredis_test
if [[ ! -x $hiredis_bin || $hiredis_bin -ot $here/hiredis_test.c ]]; then
    hiredis_bin=$work/hiredis_test
    gcc -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror "$here/hiredis_test.c" -lhiredis \
        -o "$hiredis_bin"
fi

if ((asan)); then diff_steps=3000 diff_seeds=3; else diff_steps=5000 diff_seeds=8; fi

suite raw 120 $PY raw_test.py "$port" "$auth_port" "$authpw"
if [[ $target == kvd && -z ${KVD_ARGS:-} ]] && wanted raw; then
    # kvd has two modes; the main server runs the default one, raw_test runs once
    # more against each other mode (maxmemory means eviction in cache mode and
    # memory for caches in persistent mode)
    for mode in cache persistent; do
        timeout 5 "$bin" --help-config 2>&1 | grep -qE "^mode +enum +default \"$mode\"" && continue
        if start_server "mode-$mode" --mode "$mode"; then
            run_suite "raw-$mode" 120 $PY raw_test.py "$SRV_PORT" "$auth_port" "$authpw"
            stop_server "mode-$mode" "$SRV_PID"
        else
            echo "FAIL mode-$mode: kvd --mode $mode did not start"
            total_f=$((total_f + 1))
        fi
    done
fi
suite redis-cli 120 bash cli_test.sh "$port" "$auth_port" "$authpw"
suite hiredis 60 "$hiredis_bin" "$port"
suite redis-py 120 $PY redispy_test.py "$port" "$auth_port" "$authpw"
suite ioredis 90 node ioredis_test.js "$port" "$auth_port" "$authpw"
suite node-redis 90 node noderedis_test.js redis "$port" "$auth_port" "$authpw"
suite node-redis4 90 node noderedis_test.js redis4 "$port" "$auth_port" "$authpw"
# the differential test starts its own pair (the server under test and redis-server)
run_suite differential 150 $PY differential.py --kvd "$bin" --seeds "$diff_seeds" \
    --steps "$diff_steps" "${diff_kvd_args[@]}"
run_suite differential-maxmemory 120 $PY differential.py --kvd "$bin" --seeds 1 \
    --steps "$diff_steps" --first-seed 100 --maxmemory "${diff_kvd_args[@]}"
if [[ $target == kvd && -z ${KVD_ARGS:-} && -z ${COMPAT_SERVER:-} ]]; then
    # the same sequences in cache mode (the default mode is persistent); with
    # maxmemory too, where it means eviction (set large enough never to evict)
    run_suite differential-cache 150 $PY differential.py --kvd "$bin" --seeds "$diff_seeds" \
        --steps "$diff_steps" --kvd-arg=--mode --kvd-arg=cache
    run_suite differential-cache-maxmemory 120 $PY differential.py --kvd "$bin" --seeds 1 \
        --steps "$diff_steps" --first-seed 100 --maxmemory --kvd-arg=--mode --kvd-arg=cache
fi
# COMMAND INFO/DOCS/GETKEYS of every command beside redis-server (its own pair)
if [[ $target == kvd ]]; then
    run_suite command-table 90 $PY command_table_test.py --kvd "$bin" "${diff_kvd_args[@]}"
fi
# huge/negative/overflowing counts, CLIENT REPLY sequences and query-buffer trimming,
# kvd beside redis-server (starts its own pair; see limits_test.py)
run_suite limits 240 $PY limits_test.py --kvd "$bin" "${diff_kvd_args[@]}"
# mutated request bytes, kvd beside redis-server (DIFF lines: damage judged differently)
if ((asan)); then fuzz_args=(--cases 200 --wait 3); else fuzz_args=(--cases 400); fi
run_suite proto-fuzz 120 $PY proto_fuzz.py --kvd "$bin" "${fuzz_args[@]}" "${diff_kvd_args[@]}"
# a command can wait (DEBUG SET-COMMAND-DELAY): pipelines with random waits against
# redis-server, in cache, persistent and appendfsync-always modes; starts its own
# servers; see wait_test.py
if [[ $target == kvd ]]; then
    run_suite wait 300 $PY wait_test.py --kvd "$bin" $( ((asan)) && echo --asan )
fi
# cache mode (eviction, LRU/LFU, expiry): starts its own servers; see cache_test.py
run_suite cache 240 $PY cache_test.py --server "$bin" $( ((asan)) && echo --asan )
# the one clock (debug-clock-offset-ms: TIME, TTLs) and the node id, both modes
run_suite clock 120 $PY clock_test.py --server "$bin"
# a 3-node cluster on 127.0.0.2-.4 (kvd only): membership, KVD NODES/RING/KEYNODES,
# peer authentication, tokens across a restart, cluster-enabled no unchanged
run_suite cluster 180 $PY cluster_test.py --kvd "$bin"
# persistent mode (crash, restart, larger than memory, full disk, LOADING, expiry):
# starts its own servers; see persist_run.sh
run_suite persist 480 bash persist_run.sh "$bin" $( ((asan)) && echo --asan )

# The server must still be answering after every suite, then exit cleanly.
if timeout 3 redis-cli -h "$host" -p "$port" PING 2>/dev/null | grep -q PONG; then
    total_p=$((total_p + 1))
else
    echo "FAIL main: not answering PING after the suites"
    total_f=$((total_f + 1))
fi
[[ $main_pid == external ]] || stop_server "$main_name" "$main_pid"
stop_server "$auth_name" "$auth_pid" --shutdown "$auth_port" "$authpw"
pids=()

echo "$total_p passed, $total_f failed"
[[ $total_f -eq 0 ]]
