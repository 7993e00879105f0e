#!/usr/bin/env bash
# tests/check-seams.sh: the seams the store's events and interface promise
# (server/store/events.h, server/store/store.h), checked by counting calls in the sources:
#   - coord.c has no mode branch (persist_on) and calls no persist_* function;
#   - the keyspace (server/store/ks*.c, tests excluded) calls no WATCH (watch_*) and no
#     persistence (persist_*) function, and counts no statistic of a change
#     (stat_expiredkeys, stat_evictedkeys, server.dirty): it emits events;
#   - the headers below dispatch (server/base/base.h, server/store/*.h,
#     server/client/client.h, server/coord/coord.h) declare no watch_touch_* /
#     watch_before_flush hook for the keyspace to call upward;
#   - the store (server/store/*.c, tests excluded) calls none of the client
#     layer's functions by name (client_*): it holds replies through the hooks
#     persist_set_client_hooks registers.
# Comments are stripped before counting. Ends with "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."

pass=0
fail=0

# code FILE: FILE without /* */ and // comments
code() {
    sed -e 's://.*$::' "$1" | perl -0pe 's:/\*.*?\*/::gs'
}

# expect_none LABEL REGEX FILE...: no line of FILE's code matches REGEX
expect_none() {
    local label=$1 re=$2 f n
    shift 2
    for f in "$@"; do
        n=$(code "$f" | grep -cE "$re")
        if [[ $n -eq 0 ]]; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1))
            echo "FAIL $label: $f has $n:"
            code "$f" | grep -nE "$re" | sed 's/^/    /'
        fi
    done
}

ks_files=()
for f in server/store/ks*.c; do
    [[ $f == *_test.c ]] || ks_files+=("$f")
done

expect_none "coord.c: no mode branch" '\bpersist_on\b' server/coord/coord.c
expect_none "coord.c: no persistence call" '\bpersist_[a-z_]+\s*\(' server/coord/coord.c
expect_none "coord.c: no WATCH call" '\bwatch_[a-z_]+\s*\(' server/coord/coord.c
expect_none "keyspace: no WATCH call" '\bwatch_[a-z_]+\s*\(' "${ks_files[@]}"
expect_none "keyspace: no persistence call" '\bpersist_[a-z_]+\s*\(' "${ks_files[@]}"
expect_none "keyspace: no statistic of a change" \
    'stat_expiredkeys|stat_evictedkeys|server\.dirty' "${ks_files[@]}"
expect_none "headers below dispatch: no WATCH hook for the keyspace" \
    'watch_touch_|watch_before_flush' server/base/base.h server/store/*.h \
    server/client/client.h server/coord/coord.h
store_files=()
for f in server/store/*.c; do
    [[ $f == *_test.c ]] || store_files+=("$f")
done
# the client layer's functions: every name client.h declares or defines
client_fns=$(code server/client/client.h | grep -oE '\b(client|reply|arg|errorstat)_[a-z_]+\s*\(' |
             sed -E 's/\s*\($//' | sort -u | paste -sd'|')
if [[ -z $client_fns ]]; then
    fail=$((fail + 1))
    echo "FAIL no client-layer function found in server/client/client.h"
    client_fns=client_hold
fi
expect_none "store: no call into the client layer" "\\b($client_fns)\\s*\\(" "${store_files[@]}"

# the checks themselves must be able to fail: a line with the pattern is counted
if [[ $(printf 'x = persist_on();\n' | grep -cE '\bpersist_on\b') -eq 1 &&
      $(printf 'watch_touch_key(db, &k);\n' | grep -cE '\bwatch_[a-z_]+\s*\(') -eq 1 &&
      $(printf 'e = ks_persist(db, e);\n' | grep -cE '\bpersist_[a-z_]+\s*\(') -eq 0 ]]; then
    pass=$((pass + 1))
else
    fail=$((fail + 1))
    echo "FAIL the patterns do not match what they should"
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
