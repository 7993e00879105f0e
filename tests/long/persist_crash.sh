#!/usr/bin/env bash
# tests/long/persist_crash.sh: redis-compat-tests/persist_crash.py at length: 50
# rounds of SIGKILL mid-traffic (appendfsync always), 6 writers, 2000 keys each, up
# to 6 s of traffic per round, every acknowledged write checked after each restart.
# Run by `make test-long`; KVD overrides the binary (KVD=/usr/bin/redis-server checks
# the test against Redis with --appendonly yes). About 5 minutes. Ends with
# "N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kvd=${KVD:-$root/build/kvd}
cd "$root/redis-compat-tests"
exec timeout -k 10 1200 /usr/bin/python3 persist_crash.py --server "$kvd" --rounds 50 \
    --writers 6 --keys 2000 --max-traffic 6
