#!/usr/bin/env bash
# tests/long/server-soak.sh: build/kvd (or $KVD) under sustained mixed load for
# $SOAK_SECONDS (default 300): model-checked clients, redis-benchmark alongside,
# connection churn, then leak, eviction and clean-shutdown checks
# (tests/long/server_soak.py). Ends with "N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exec timeout 1800 /usr/bin/python3 "$root/tests/long/server_soak.py" "${KVD:-$root/build/kvd}" \
    --seconds "${SOAK_SECONDS:-300}"
