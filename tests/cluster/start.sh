#!/usr/bin/env bash
# tests/cluster/start.sh [KVD_BINARY]: `make cluster`.
#
# Starts a 3-node kvd cluster on this machine, in persistent mode: node i listens on
# 127.0.0.(i+1) port BASE+i (BASE=${CLUSTER_PORT_BASE:-7001}), keeps its data, node id
# and tokens in build/cluster/node<i>/ (with its kv.conf and kvd.log), so stopping and
# starting again brings the same cluster back. The secret is made once and kept in
# build/cluster/secret. Waits (bounded, 60 s) until every node's KVD NODES shows all
# three up, prints how to connect, then stays in the foreground; Ctrl-C (or SIGTERM)
# stops the three nodes by their PIDs.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/build/kvd}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
base=${CLUSTER_PORT_BASE:-7001}
top=$root/build/cluster
n=3

help=$("$bin" --help-config 2>&1)
if ! grep -q '^cluster-enabled' <<<"$help"; then
    echo "make cluster: $bin has no cluster yet (no cluster-enabled directive)" >&2
    exit 1
fi
mkdir -p "$top"
[[ -s $top/secret ]] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$top/secret"
secret=$(cat "$top/secret")

ips=() ports=() seeds=()
for ((i = 1; i <= n; i++)); do
    ips+=("127.0.0.$((i + 1))")
    ports+=($((base + i - 1)))
    seeds+=("127.0.0.$((i + 1)):$((base + i - 1))")
done
seedlist=$(IFS=,; echo "${seeds[*]}")

pids=()
stop_all() {
    trap - INT TERM EXIT
    echo
    echo "stopping the cluster (PIDs ${pids[*]:-none})"
    local p i
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for ((i = 0; i < 200; i++)); do
        local left=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    exit 0
}
trap stop_all INT TERM EXIT

for ((i = 0; i < n; i++)); do
    d=$top/node$((i + 1))
    mkdir -p "$d"
    if redis-cli -h "${ips[$i]}" -p "${ports[$i]}" PING >/dev/null 2>&1; then
        echo "make cluster: ${ips[$i]}:${ports[$i]} is already in use (another make cluster?)" >&2
        exit 1
    fi
    cat >"$d/kv.conf" <<CONF
# node $((i + 1)) of the \`make cluster\` cluster (written by tests/cluster/start.sh)
mode persistent
bind ${ips[$i]}
port ${ports[$i]}
dir $d
cluster-enabled yes
cluster-seeds $seedlist
cluster-secret $secret
replication-factor 3
write-quorum 2
read-quorum 2
vnodes 16
CONF
    (cd "$d" && exec "$bin" "$d/kv.conf") >>"$d/kvd.log" 2>&1 &
    pids+=($!)
done

echo "started kvd nodes: PIDs ${pids[*]}; waiting for every node to see all members up"
deadline=$((SECONDS + 60))
up=0
while ((SECONDS < deadline)); do
    up=1
    for ((i = 0; i < n; i++)); do
        kill -0 "${pids[$i]}" 2>/dev/null || { echo "node $((i + 1)) exited; log:"; tail -n 20 "$top/node$((i + 1))/kvd.log"; exit 1; }
        cnt=$(timeout 2 redis-cli -h "${ips[$i]}" -p "${ports[$i]}" KVD NODES 2>/dev/null | grep -c ' up ')
        ((cnt == n)) || up=0
    done
    ((up)) && break
    sleep 0.3
done
if ((!up)); then
    echo "make cluster: not every node saw all members up within 60 s; KVD NODES of node 1:"
    timeout 2 redis-cli -h "${ips[0]}" -p "${ports[0]}" KVD NODES
    echo "logs: $top/node*/kvd.log (left running; Ctrl-C stops them)"
else
    timeout 2 redis-cli -h "${ips[0]}" -p "${ports[0]}" KVD NODES
fi
cat <<EOT

kvd cluster of $n nodes (N=3 W=2 R=2, persistent, data in $top/node1..node$n):
EOT
for ((i = 0; i < n; i++)); do
    echo "  node $((i + 1)): redis-cli -h ${ips[$i]} -p ${ports[$i]}     (log $top/node$((i + 1))/kvd.log)"
done
cat <<EOT
Any node serves any key, e.g.
  redis-cli -h ${ips[0]} -p ${ports[0]} SET greeting hello
  redis-cli -h ${ips[2]} -p ${ports[2]} GET greeting
  redis-cli -h ${ips[1]} -p ${ports[1]} KVD KEYNODES greeting
Ctrl-C stops all $n nodes.
EOT
while :; do
    for p in "${pids[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "a node (PID $p) exited; stopping the others"
            stop_all
        fi
    done
    sleep 1
done
