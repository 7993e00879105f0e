#!/usr/bin/env bash
# redis-compat-tests/persist_run.sh SERVER_BINARY [--asan | --long]
#
# Persistent mode (kvd --mode persistent on its LSM engine), through the server:
#   persist_crash.py    SIGKILL mid-traffic (appendfsync always): nothing acknowledged lost
#   persist_restart.py  SHUTDOWN/SIGKILL/SIGTERM restarts keep every key, type, value,
#                       TTL of all 16 databases, compared with a redis-server
#   persist_bigdata.py  data far past --maxmemory 64mb reads back; VmRSS < 256 MB
#   persist_disk.py     full disk (tmpfs, engine fault layer): loud write errors,
#                       reads work, nothing lost, recovery when space returns
#   persist_loading.py  -LOADING and loading:1 while 1M writes replay; replay time
#   persist_expire.py   due keys never seen (also after a restart); 1M-key flushes
#   persist_upgrade.py  a data dir written by an earlier kvd (tests/fixtures/) opens with
#                       every key, then takes writes and restarts (kvd only)
# Each starts its own servers (temp dirs under /tmp, stopped by PID). Prints one line
# per test and ends with the total "N passed, M failed".
#
# Sizes: default is `make test`'s (about 2-3 minutes); --asan smaller (the sanitizer
# build is ~3x slower; RSS bounds skipped); --long the full sizes (1.5 GB, 50 crash
# rounds), as tests/long/persist_*.sh run. SERVER_BINARY may be a redis-server
# (run with --appendonly yes): the tests are checked against Redis that way.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../tests/counts.sh" # count_parse
bin=${1:?usage: persist_run.sh SERVER_BINARY [--asan|--long]}
size=${2:-normal}
size=${size#--}
[[ "$bin" == */* ]] || bin=$(command -v "$bin")
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
PY=/usr/bin/python3
asan_flag=()
case $size in
    normal)
        crash=(--rounds 5) restart=(--steps 3000) big=(--mb 300)
        loading=(--keys 1000000) expire=(--keys 1000000) ;;
    asan)
        crash=(--rounds 3 --keys 200) restart=(--steps 1500) big=(--mb 150)
        loading=(--keys 200000) expire=(--keys 200000)
        asan_flag=(--asan) ;;
    long)
        crash=(--rounds 50 --writers 6 --keys 2000 --max-traffic 6) restart=(--steps 20000)
        big=(--mb 1536) loading=(--keys 3000000) expire=(--keys 3000000 --flush-limit 2.0) ;;
    *) echo "persist_run.sh: unknown size $size" >&2; exit 2 ;;
esac

# Until persistent mode lands, kvd refuses it at startup with this message: then
# the whole suite is one clear skip rather than six failures for every `make test`.
if grep -aq 'mode persistent is not available' "$bin" 2>/dev/null; then
    echo "SKIP persist: $bin refuses --mode persistent (not built yet); 6 tests skipped"
    echo "0 passed, 0 failed"
    exit 0
fi

total_p=0
total_f=0
logdir=$(mktemp -d /tmp/kvd-persist-run.XXXXXX)
trap 'rm -rf "$logdir"' EXIT

# one NAME TIMEOUT cmd...: runs a test, shows its failures and notes, adds its count.
one() {
    local name=$1 limit=$2; shift 2
    local log=$logdir/$name.log start=$SECONDS rc line p=0 f=0
    (cd "$here" && timeout -k 10 "$limit" "$@") >"$log" 2>&1
    rc=$?
    count_parse "$(cat "$log")" "$rc" && line=ok
    p=$count_p f=$count_f
    [[ $rc -eq 124 ]] && echo "FAIL $name: timed out after ${limit}s"
    grep -aE '^(FAIL|MISMATCH|SKIP)' -A2 "$log" | grep -avE '^(--|.*[0-9]+ passed, [0-9]+ failed)$' |
        head -n 60
    # what the tests measure (times, replay, RSS), for the log
    grep -aE '^(round|restart|replay|write|read|VmRSS|wrote|flush|FLUSH|tmpfs|fault|persist_[a-z]+: (seed|[0-9.]+ s|[0-9]+ skipped))' \
        "$log" | sed 's/^/    /' | head -n 40
    if [[ $f -ne 0 && -z "$line" ]]; then tail -n 30 "$log" | sed 's/^/    /'; fi
    printf '%s: %d passed, %d failed (%ds)\n' "$name" "$p" "$f" $((SECONDS - start))
    total_p=$((total_p + p))
    total_f=$((total_f + f))
}

one persist_crash 600 $PY persist_crash.py --server "$bin" "${crash[@]}"
one persist_restart 600 $PY persist_restart.py --server "$bin" "${restart[@]}"
one persist_bigdata 1800 $PY persist_bigdata.py --server "$bin" "${big[@]}" "${asan_flag[@]}"
one persist_disk 300 $PY persist_disk.py --server "$bin" "${asan_flag[@]}"
one persist_loading 600 $PY persist_loading.py --server "$bin" "${loading[@]}"
one persist_expire 900 $PY persist_expire.py --server "$bin" "${expire[@]}"
if [[ $(basename "$bin") != *redis-server* ]]; then
    one persist_upgrade 180 $PY persist_upgrade.py --server "$bin"
fi

echo "$total_p passed, $total_f failed"
[[ $total_f -eq 0 ]]
