#!/usr/bin/env bash
# tests/jepsen/run.sh KVD_BINARY [--long] [jepsen.py options...]: `make test-cluster`.
#
# Short (default, about 1.5 min: 40 s of load per workload): the workloads today's kvd passes at QUORUM under
# one fault at a time (kill, pause, partition, clock skew): registers with one
# writer per key, and registers with concurrent writers but no DEL. Any anomaly
# fails the run and keeps the history (the path is printed).
# --long (`make test-long`, about 12 min): every workload for longer; the anomalies
# today's Dynamo-style path is known to show (README.md here, "What today's kvd
# shows") are expected by name, so any other kind still fails the run.
# Ends with "N passed, M failed" (tests/counts.sh); SKIPs while the binary has no
# cluster. Partition rules (comment kvd-jepsen-test) are removed at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: run.sh KVD_BINARY [--long] [jepsen.py options...]}
shift
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
PY=/usr/bin/python3
long=0
if [[ ${1:-} == --long ]]; then long=1; shift; fi
[[ ${1:-} == --asan ]] && shift  # run-all.sh passes it to every cluster suite
out=$(mktemp -d /tmp/kvd-jepsen.XXXXXX)
trap '(cd "$here" && $PY -c "import sys; sys.path.insert(0, \"../cluster\")
import nemesis; nemesis.heal_partitions()")' EXIT

total_p=0 total_f=0
run() { # label, limit, jepsen.py arguments...
    local label=$1 limit=$2 line p f
    shift 2
    local log=$out/$label.log
    (cd "$here" && timeout -k 10 "$limit" $PY jepsen.py "$bin" --out "$out" "$@") >"$log" 2>&1
    local rc=$?
    # every summary line; of the anomalies only the first few (the history has them all)
    grep -aE '^(jepsen |SKIP|FAIL|history kept|Traceback)' "$log"
    grep -aE '^(ANOMALY|EXPECTED|NOTE) ' "$log" | head -n 12
    line=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [[ -z $line ]]; then
        echo "FAIL $label: no counts (exit $rc); log $log"
        tail -n 20 "$log" | sed 's/^/    /'
        p=0 f=1
    else
        p=${line%% passed*} f=${line#*passed, } f=${f%% failed*}
        [[ $rc -ne 0 && $f -eq 0 ]] && f=1
    fi
    echo "$label: $p passed, $f failed"
    total_p=$((total_p + p)) total_f=$((total_f + f))
}

if (( long )); then
    run pass 900 --workload registers-1w,registers --del-ratio 0 --time 120 "$@"
    run anomalies 1200 --workload registers,counters,locks,sets --time 90 \
        --expect-anomalies nonlinearizable,counter-duplicate,counter-lost,counter-nonmonotonic,lock-overlap,lock-lost-early,set-lost,set-stale "$@"
else
    run short 300 --workload registers-1w,registers --del-ratio 0 --time 40 "$@"
fi
if (( total_f == 0 && ! long )); then rm -rf "$out"; else echo "histories and logs kept in $out"; fi
echo "$total_p passed, $total_f failed"
[[ $total_f -eq 0 ]]
