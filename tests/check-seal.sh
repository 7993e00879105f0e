#!/usr/bin/env bash
# tests/check-seal.sh: command handlers are sealed behind the coordinator seam.
#
# Every server/cmd/cmd_*.c must not name a database or the keyspace's internals:
#   - no `->db` member (c->db: the client's database pointer) and no `struct kv_db`,
#   - no kv_dict_* (the keyspace's tables), ks_val_* (raw value accessors), KE_*
#     (entry flags),
#   - no #include of the store's headers (server/store/*.h; check-layers.sh lets
#     server/cmd/ include only server/store/store.h of them).
# The key families (every cmd_*.c except the node-local administration files of the
# core, cmd_conn.c, cmd_info.c, cmd_config.c, cmd_command.c, cmd_admin.c, cmd_debug.c
# and cmd_kvd.c, which server/cmd/cmd.h lists as node-local files) include, of the
# project's headers, only server/cmd/cmd.h, server/coord/coord.h and server/base/base.h, never
# name `server.db`, and never call the keyspace (ks_*): they read entries with the
# value helpers (server/store/obj.h, which coord.h brings).
# A violation prints "file:line: reason". Ends with "N passed, M failed": one check
# per file, plus a self-test proving that a sealed-off line is caught.
# Usage: tests/check-seal.sh [files...]   (default: server/cmd/cmd_*.c)
set -uo pipefail
cd "$(dirname "$0")/.."

core_files=" server/cmd/cmd_conn.c server/cmd/cmd_info.c server/cmd/cmd_config.c server/cmd/cmd_command.c server/cmd/cmd_admin.c server/cmd/cmd_debug.c server/cmd/cmd_kvd.c "

# check_file FILE -> prints violations, returns 1 when there are any
check_file() {
    local f=$1 bad=0 out
    out=$(grep -nE -- '->db\b|struct kv_db\b|\bkv_dict_[a-z_]*|\bks_val_[a-z_]*|\bKE_[A-Z_]+' "$f")
    if [[ -n $out ]]; then
        sed "s|^|$f:|; s|$|   (names a database or keyspace internals)|" <<<"$out"
        bad=1
    fi
    out=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"server/store/[a-z_]+\.h"' "$f")
    if [[ -n $out ]]; then
        sed "s|^|$f:|; s|$|   (includes a layer below the seam)|" <<<"$out"
        bad=1
    fi
    if [[ $core_files != *" $f "* ]]; then
        out=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
              grep -vE '"server/(cmd/cmd|coord/coord|base/base)\.h"')
        if [[ -n $out ]]; then
            sed "s|^|$f:|; s|$|   (a key family includes only cmd/cmd.h, coord/coord.h, base/base.h)|" <<<"$out"
            bad=1
        fi
        out=$(grep -nE '\bserver\.db\b' "$f")
        if [[ -n $out ]]; then
            sed "s|^|$f:|; s|$|   (names server.db)|" <<<"$out"
            bad=1
        fi
        out=$(grep -nE '\bks_[a-z_0-9]+' "$f")
        if [[ -n $out ]]; then
            sed "s|^|$f:|; s|$|   (calls the keyspace: use server/store/obj.h or coord.h)|" <<<"$out"
            bad=1
        fi
    fi
    return $bad
}

pass=0 fail=0

# self-test: a file with one sealed-off line of each kind must fail, and the same
# file without them must pass
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include "server/cmd/cmd.h"\n#include "server/coord/coord.h"\nvoid f(struct client *c) { (void)c; }\n' >"$tmp/cmd_ok.c"
selftest_ok=1
check_file "$tmp/cmd_ok.c" >/dev/null || selftest_ok=0
for line in 'x = obj_str_append(c->db, e, p, n);' 'struct kv_db *db;' \
            'n = kv_dict_slots(&d);' 'ks_val_set_int(e, 1);' 'if (e->flags & KE_EXPIRE) {}' \
            '#include "server/store/ks.h"' '#include "server/store/persist.h"' \
            '#include "server/store/store.h"' '#include "server/net/net.h"' \
            '#include "server/client/client.h"' 'n = ks_db_size(server.db[0]);' \
            'k = ks_entry_key(e, &n);'; do
    printf '#include "server/coord/coord.h"\n%s\n' "$line" >"$tmp/cmd_bad.c"
    if check_file "$tmp/cmd_bad.c" >/dev/null; then
        echo "self-test: not caught: $line"
        selftest_ok=0
    fi
done
if ((selftest_ok)); then
    pass=$((pass + 1))
else
    fail=$((fail + 1))
fi

files=("$@")
if ((${#files[@]} == 0)); then
    files=(server/cmd/cmd_*.c)
fi
for f in "${files[@]}"; do
    if check_file "$f"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
((fail == 0))
