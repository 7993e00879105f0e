#!/usr/bin/env bash
# tests/long/jepsen.sh: the Jepsen-style suite's long run (tests/jepsen/run.sh --long,
# about 12 min): the passing register workloads for longer, then every workload with
# the anomalies today's Dynamo-style path shows expected by name (tests/jepsen/README.md).
# Run by `make test-long`; ends with "N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exec bash "$root/tests/jepsen/run.sh" "$root/build/kvd" --long
