#!/usr/bin/env bash
# redis-compat-tests/cli_test.sh PORT AUTH_PORT AUTH_PASSWORD: redis-cli against the
# server: plain commands in raw and formatted output, RESP3 (-3), --pipe mass
# insertion, --scan --pattern, -x, -n, -r, -a, --bigkeys, --memkeys, and errors.
# The server is at COMPAT_HOST (default 127.0.0.1); with COMPAT_POOL="host:port,..."
# each redis-cli invocation goes to the next member in turn (the nodes of a
# cluster; node-local checks such as INFO's port use the member they ran on).
# COMPAT_REFUSED lists the commands the server refuses (a multi-node kvd cluster):
# the checks needing them print a SKIP line, and the key space is a fresh database
# (COMPAT_DB_BASE + 1, + 2) instead of FLUSHALL (respclient.py says the same).
# Ends with "N passed, M failed".
set -uo pipefail
port=$1 auth_port=$2 pw=$3
host=${COMPAT_HOST:-127.0.0.1}
IFS=, read -r -a pool <<<"${COMPAT_POOL:-}"
((${#pool[@]})) || pool=("$host:$port")
pass=0 fail=0
tmp=$(mktemp -d /tmp/kvd-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo 0 >"$tmp/pool-next" # a file: cli runs in $(...) subshells

# refused NAME...: true when the server refuses one of them (COMPAT_REFUSED)
refused() {
    local c
    for c in "$@"; do
        [[ " ${COMPAT_REFUSED:-} " == *" $c "* ]] && return 0
    done
    return 1
}
skip() { # what commands: a check this server cannot run, said with the reason
    printf 'SKIP redis-cli: %s (a multi-node kvd cluster refuses %s until keyless commands run on every node: README "Cluster mode")\n' "$1" "$2"
}
# the databases: db (the suite's) and db_other (-n checks); 0 and 5 when FLUSHALL works
if refused FLUSHALL; then
    db=$((${COMPAT_DB_BASE:-0} + 1)) db_other=$((${COMPAT_DB_BASE:-0} + 2))
else
    db=0 db_other=5
fi
# pick: sets at (host:port) to the next pool member, in turn
pick() {
    local n
    n=$(cat "$tmp/pool-next")
    echo $((n + 1)) >"$tmp/pool-next"
    at=${pool[$((n % ${#pool[@]}))]}
}
# cli ARGS: one redis-cli invocation, at the next member, in database db
cli() {
    local at
    pick
    timeout 30 redis-cli -h "${at%:*}" -p "${at##*:}" -n "$db" "$@" 2>&1
}
flush() { # an empty key space: FLUSHALL, or (refused) the fresh database db already is
    refused FLUSHALL || cli FLUSHALL >/dev/null
}
check() { # name got want
    if [[ "$2" == "$3" ]]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        printf 'FAIL redis-cli: %s\n  want: %q\n  got:  %q\n' "$1" "$3" "$2"
    fi
}
check_match() { # name got extended-regex
    if [[ "$2" =~ $3 ]]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        printf 'FAIL redis-cli: %s\n  want match: %s\n  got:  %q\n' "$1" "$3" "$2"
    fi
}

flush
# plain commands; output to a pipe is --raw unless --no-raw
check 'PING' "$(cli PING)" PONG
check 'SET' "$(cli SET greeting 'hello world')" OK
check 'GET raw' "$(cli GET greeting)" 'hello world'
check 'GET no-raw' "$(cli --no-raw GET greeting)" '"hello world"'
check 'GET missing raw' "$(cli GET nosuch)" ''
check 'GET missing no-raw' "$(cli --no-raw GET nosuch)" '(nil)'
check 'INCR no-raw' "$(cli --no-raw INCR counter)" '(integer) 1'
check 'INCR raw' "$(cli INCR counter)" '2'
check 'MGET no-raw' "$(cli --no-raw MGET greeting nosuch counter)" \
    $'1) "hello world"\n2) (nil)\n3) "2"'
check 'MGET raw' "$(cli --raw MGET greeting nosuch counter)" $'hello world\n\n2'
check 'error no-raw' "$(cli --no-raw INCR greeting)" '(error) ERR value is not an integer or out of range'
check 'error raw' "$(cli INCR greeting)" 'ERR value is not an integer or out of range'
check 'WRONGTYPE' "$(cli HSET greeting a b)" 'WRONGTYPE Operation against a key holding the wrong kind of value'
check 'unknown command' "$(cli NOSUCHCMD x)" "ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' "
check 'arity' "$(cli GET)" "ERR wrong number of arguments for 'get' command"
check 'escapes in no-raw' "$(cli SET bin $'a\nb' >/dev/null; cli --no-raw GET bin)" '"a\nb"'
check 'HSET' "$(cli HSET h f1 v1 f2 v2)" 2
check 'HGETALL raw' "$(cli HGETALL h | sort | tr '\n' ' ')" 'f1 f2 v1 v2 '
check 'TTL no-raw' "$(cli --no-raw TTL h)" '(integer) -1'
check 'EXPIRE NX' "$(cli EXPIRE h 100 NX)" 1
check_match 'TTL after EXPIRE' "$(cli TTL h)" '^(99|100)$'
if refused KEYS DBSIZE; then
    skip 'KEYS (empty array), DBSIZE' 'KEYS/DBSIZE'
else
    check 'empty array no-raw' "$(cli --no-raw KEYS 'zz*')" '(empty array)'
    check 'DBSIZE' "$(cli DBSIZE)" 4
fi
check 'TYPE' "$(cli TYPE h)" hash
pick
check_match 'INFO server' "$(timeout 30 redis-cli -h "${at%:*}" -p "${at##*:}" INFO server)" \
    "tcp_port:${at##*:}"
check_match 'CLIENT LIST' "$(cli CLIENT LIST)" 'cmd=client\|list'
check_match 'TIME' "$(cli TIME | head -n 1)" '^[0-9]{10}$'
check 'CONFIG GET' "$(cli CONFIG GET maxmemory-policy | head -n 1)" maxmemory-policy
check 'repeat -r' "$(cli -r 3 INCR rcount | tr '\n' ' ')" '1 2 3 '

# RESP3
check 'RESP3 HGETALL' "$(cli -3 --no-raw HGETALL h | sort)" $'1# "f1" => "v1"\n2# "f2" => "v2"'
check 'RESP3 null' "$(cli -3 --no-raw GET nosuch)" '(nil)'
check 'RESP3 CONFIG GET map' "$(cli -3 --no-raw CONFIG GET maxmemory-policy)" \
    "1# \"maxmemory-policy\" => \"$(cli CONFIG GET maxmemory-policy | tail -n 1)\""
check_match 'RESP3 HELLO' "$(cli -3 --no-raw HELLO 3)" '3# "proto" => \(integer\) 3'

# -x: last argument from stdin
printf 'from\nstdin' | cli -x SET xkey >/dev/null
check '-x' "$(cli GET xkey)" $'from\nstdin'
head -c 100000 /dev/urandom | base64 -w0 >"$tmp/big"
cli -x SET bigx <"$tmp/big" >/dev/null
check '-x 130 KB' "$(cli STRLEN bigx)" "$(stat -c %s "$tmp/big")"

# -n db (the last -n wins over cli's own)
check '-n 5 SET' "$(cli -n "$db_other" SET dbkey five)" OK
check '-n 5 GET' "$(cli -n "$db_other" GET dbkey)" five
check 'db 0 does not see db 5' "$(cli -n "$db" EXISTS dbkey)" 0
if refused DBSIZE FLUSHDB; then
    skip '-n 5 DBSIZE, FLUSHDB' 'DBSIZE/FLUSHDB'
else
    check '-n 5 DBSIZE' "$(cli -n 5 DBSIZE)" 1
    cli -n 5 FLUSHDB >/dev/null
fi

# --pipe mass insertion: 100k SETs as RESP
/usr/bin/python3 - "$tmp/mass" <<'EOF'
import sys
with open(sys.argv[1], 'wb') as f:
    for i in range(100000):
        k = b'mass:%06d' % i
        v = b'value-%d' % i
        f.write(b'*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n' % (len(k), k, len(v), v))
EOF
refused DBSIZE || before=$(cli DBSIZE)
pick
out=$(timeout 60 redis-cli -h "${at%:*}" -p "${at##*:}" -n "$db" --pipe <"$tmp/mass" 2>&1)
check_match '--pipe 100k' "$out" 'errors: 0, replies: 100000'
if refused DBSIZE; then
    skip '--pipe DBSIZE' DBSIZE
else
    check '--pipe DBSIZE' "$(cli DBSIZE)" $((before + 100000))
fi
check '--pipe value' "$(cli GET mass:054321)" value-54321
check '--pipe first and last value' "$(cli MGET mass:000000 mass:099999 | tr '\n' ' ')" \
    'value-0 value-99999 '
# inline commands through --pipe, with one error among them
printf 'SET p1 a\r\nINCR p1\r\nGET p1\r\n' >"$tmp/inl"
pick
out=$(timeout 30 redis-cli -h "${at%:*}" -p "${at##*:}" -n "$db" --pipe <"$tmp/inl" 2>&1)
check_match '--pipe counts errors' "$out" 'errors: 1, replies: 3'

# --scan
if refused SCAN; then
    skip '--scan, --bigkeys, --memkeys' SCAN
else
check '--scan --pattern' "$(cli --scan --pattern 'mass:00000*' | sort | tr '\n' ' ')" \
    "$(for i in 0 1 2 3 4 5 6 7 8 9; do printf 'mass:00000%d ' $i; done)"
check '--scan count all' "$(cli --scan --pattern 'mass:*' | sort -u | wc -l)" 100000
check '--scan -i (SCAN COUNT 10 by default)' "$(cli --scan -i 0 --pattern 'mass:01234?' | sort | head -n 1)" mass:012340
cli DEL h >/dev/null
cli HSET hb a 1 b 2 c 3 >/dev/null
check_match '--bigkeys' "$(cli --bigkeys)" 'Biggest +hash found .*"hb".* 3 fields'
check_match '--memkeys' "$(cli --memkeys)" 'Biggest string found .*has [0-9]+ bytes'
fi

# AUTH
auth_cli() { timeout 30 redis-cli -h 127.0.0.1 -p "$auth_port" "$@" 2>&1; }
check 'NOAUTH' "$(auth_cli --no-raw GET a)" '(error) NOAUTH Authentication required.'
check '-a' "$(auth_cli --no-auth-warning -a "$pw" PING)" PONG
check '-a wrong' "$(auth_cli --no-auth-warning -a wrong PING)" \
    $'AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\nNOAUTH Authentication required.'
check '--user --pass' "$(auth_cli --no-auth-warning --user default --pass "$pw" SET k v)" OK
check '-3 -a' "$(auth_cli --no-auth-warning -3 -a "$pw" GET k)" v
REDISCLI_AUTH=$pw check 'REDISCLI_AUTH' "$(REDISCLI_AUTH=$pw auth_cli GET k)" v

flush
echo "redis-cli: $pass passed, $fail failed"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
