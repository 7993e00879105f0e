#!/usr/bin/python3
"""redis-compat-tests/differential.py: kvd against a real redis-server, reply by reply.

Starts the server under test (--kvd BIN) and redis-server (--redis BIN), each on a
free loopback port with its own dir, stopped by PID at the end. For each seed it
generates a reproducible random command sequence over a small key space (so commands
interact and collide on types) covering every deterministic command of
server/cmd/commands.def, with wrong arity, wrong types, bad numbers, out-of-range values,
syntax errors and unknown options mixed in. Each command goes to both servers and the
replies are compared by wire type and bytes, except:
  - TTL/PTTL/EXPIRETIME/PEXPIRETIME within a tolerance (1 s), when positive;
  - unordered replies (KEYS, HKEYS, HVALS, HGETALL) compared sorted; SCAN and HSCAN
    run to the end of a full iteration and compared as sets;
  - HRANDFIELD and RANDOMKEY checked for shape and membership on each server;
  - nondeterministic replies (TIME, INFO, CLIENT ID/LIST/INFO, OBJECT IDLETIME,
    MEMORY USAGE, LASTSAVE, SLOWLOG, HELLO's id) checked for shape only.
A part of each sequence runs in RESP3 (HELLO 3). A mismatch prints the seed, the
step, the command and both replies. Every compared step is one test case; ends with
"N passed, M failed".

Usage: differential.py --kvd BIN [--redis redis-server] [--seeds N] [--first-seed S]
                       [--steps N] [--maxmemory] [--verbose] [--kvd-addr HOST:PORT]
--kvd-addr compares a kvd already running there (a node of a cluster:
tests/cluster/compat3.py) instead of starting one; it is neither started nor
stopped here. COMPAT_REFUSED (run.sh's probe; a multi-node kvd cluster refuses
keyless commands and WATCH) names commands the sequence then leaves out, each
reported once as a SKIP line; where FLUSHALL is refused, a fresh start DELs the
sequence's key space (its ten keys in databases 0-2) on both servers instead.
--maxmemory starts both with --maxmemory 1gb --maxmemory-policy allkeys-lru (nothing
is evicted at that size; it catches regressions of the eviction bookkeeping).
"""
import argparse
import os
import random
import re
import sys
import time
import traceback

from respclient import Conn, encode
from serverctl import Server

KEYS = ['a', 'b', 'c', 'k1', 'k2', 'h1', 'h2', 'n', 'x:1', 'x:2']
FIELDS = ['f0', 'f1', 'f2', 'f3', 'fx']
VALUES = ['', 'v', 'hello', 'world', '0', '1', '-1', '42', '10.5', '3.0e2', '007', '+5', ' 1',
          '9223372036854775807', '-9223372036854775808', '9223372036854775808', 'abc', '1e308',
          'inf', '-0', '0.1', '5e-3', 'x' * 50, 'y' * 300, '\x00\r\n\x00', '12345678901234567890',
          'e' * 44, 'r' * 45, 'm' * 64, 'n' * 65, '-9223372036854775809', '0.0', '1.0', '-', '1e-400',
          '1.7976931348623157e308', '-1.5']
INTS = ['0', '1', '-1', '2', '5', '10', '100', '-100', '9223372036854775807',
        '-9223372036854775808', '9223372036854775808', 'abc', '1.5', '', ' 3', '0x10', '+7']
FLOATS = ['0', '1', '-1', '0.5', '1.5', '-2.25', '1e3', '3.0e-2', 'abc', 'inf', '-inf', 'nan', '',
          '1e308', '10.1', '.5', '5.', '1e', '0x10']
TTLS = ['100', '200', '500', '1000', '5000', '100000', '0', '-1', '-100', 'abc', '1.5',
        '9223372036854775807', '4611686018427387', '']
PTTLS = ['100000', '200000', '5000000', '0', '-1', 'abc', '1.5', '9223372036854775807', '']
PATTERNS = ['*', 'a*', 'k?', 'x:*', '[ab]', '[^a]*', 'h\\1', '*1', '?', 'nomatch*', 'x:[1-2]']
EXPIRE_OPTS = [[], [], ['NX'], ['XX'], ['GT'], ['LT'], ['NX', 'XX'], ['GT', 'LT'], ['FOO'], ['nx'],
               ['XX', 'GT']]
COMMAND_NAMES = ['get', 'set', 'mset', 'hset', 'hgetall', 'expire', 'del', 'scan', 'copy', 'ping',
                 'object', 'client', 'config', 'incrbyfloat', 'watch', 'exec',
                 'nosuchcmd']
# Commands of server/cmd/commands.def the sequence leaves out, and why.
EXCLUDED = {
    'quit': 'closes the connection (covered by raw_test.py)',
    'shutdown': 'stops the server',
    'debug': "kvd's subcommands differ from Redis's; not a compatibility surface",
    'monitor': 'turns the connection into a stream (raw_test.py checks its lines)',
    'kvd': "kvd's own cluster commands (KVD NODES, CONSISTENCY, ...): Redis has none "
           '(cluster_test.py and tests/cluster/ cover them)',
    # SAVE, BGSAVE and BGREWRITEAOF appear only with bad arguments, and SAVE inside
    # MULTI: run for real, kvd flushes memtables / compacts where Redis writes an RDB
    # or AOF, so their replies and timing are not Redis's to compare.
}
# Commands the server under test refuses (COMPAT_REFUSED: a multi-node kvd cluster's
# keyless commands and WATCH, README "Cluster mode"): never generated.
REFUSED = set(os.environ.get('COMPAT_REFUSED', '').upper().split())
if os.environ.get('COMPAT_CLUSTER') == '1':
    REFUSED.add('WATCH')  # a one-node cluster refuses WATCH too
REFUSED_WHY = 'the server under test refuses it (COMPAT_REFUSED; README "Cluster mode")'
# what the generator may CONFIG SET, and the value both get back after a mismatch
RESYNC_CONFIG = [('maxmemory-samples', '5'), ('slowlog-max-len', '128'), ('lfu-log-factor', '10')]
CONFIG_PARAMS = ['maxmemory-policy', 'databases', 'maxmemory-samples', 'timeout',
                 'proto-max-bulk-len', 'lfu-log-factor', 'lfu-decay-time', 'nosuch-param']


class Gen:
    """One command at a time: returns (args, kind). kind says how replies compare."""

    def __init__(self, rng, now_ms):
        self.r = rng
        self.now_ms = now_ms

    def key(self):
        return self.r.choice(KEYS)

    def val(self):
        return self.r.choice(VALUES)

    def int_(self):
        return self.r.choice(INTS)

    def ttl(self):
        return self.r.choice(TTLS)

    def pttl(self):
        """Milliseconds: long enough that nothing expires while the sequence runs
        (expiry at a moment between the two servers' replies would be a race), or
        invalid, or at once."""
        return self.r.choice(PTTLS)

    def field(self):
        return self.r.choice(FIELDS)

    def pick(self, *xs):
        return self.r.choice(xs)

    def maybe(self, p=0.5):
        return self.r.random() < p

    def abs_time(self, unit_ms, past=True):
        """An absolute time: mostly far future, sometimes past (unless past=False) or
        junk. SET with a past EXAT/PXAT leaves a logically expired key that DBSIZE
        counts until the active expiry cycle reclaims it, at a moment of each
        server's own: so SET gets no past times."""
        r = self.r.random()
        if r < 0.7 or (not past and r < 0.85):
            t = self.now_ms + self.r.choice([100, 600, 3600, 86400]) * 1000
        elif r < 0.85:
            t = self.r.choice([1000, self.now_ms - 10000])
        else:
            return self.pick('abc', '-1', '9223372036854775807', '1.5')
        return str(t // unit_ms)

    # ---- families ----
    def strings(self):
        g = self
        k, v = g.key(), g.val()
        c = g.r.randrange(24)
        if c == 0:
            opts = []
            for _ in range(g.r.randrange(4)):
                o = g.pick('NX', 'XX', 'GET', 'KEEPTTL', 'EX', 'PX', 'EXAT', 'PXAT', 'FOO', 'ex')
                if o in ('EX', 'ex'):
                    opts += [o, g.ttl()] if g.maybe(0.9) else [o]
                elif o == 'PX':
                    opts += [o, g.pttl()] if g.maybe(0.9) else [o]
                elif o == 'EXAT':
                    opts += [o, g.abs_time(1000, past=False)]
                elif o == 'PXAT':
                    opts += [o, g.abs_time(1, past=False)]
                else:
                    opts.append(o)
            return ['SET', k, v] + opts, 'exact'
        table = [
            (['GET', k], 'exact'),
            (['SETNX', k, v], 'exact'),
            (['SETEX', k, g.ttl(), v], 'exact'),
            (['PSETEX', k, g.pick('100000', '5000000', '0', '-5', 'x'), v], 'exact'),
            (['GETSET', k, v], 'exact'),
            (['GETDEL', k], 'exact'),
            (['GETEX', k] + g.pick([], ['PERSIST'], ['EX', g.ttl()], ['PX', g.pttl()],
                                   ['EXAT', g.abs_time(1000)], ['PXAT', g.abs_time(1)],
                                   ['EX'], ['FOO'], ['EX', '100', 'PERSIST']), 'exact'),
            (['MGET'] + [g.key() for _ in range(g.r.randrange(1, 5))], 'exact'),
            (['MSET'] + sum([[g.key(), g.val()] for _ in range(g.r.randrange(1, 4))], []), 'exact'),
            (['MSETNX'] + sum([[g.key(), g.val()] for _ in range(g.r.randrange(1, 3))], []), 'exact'),
            (['APPEND', k, v], 'exact'),
            (['STRLEN', k], 'exact'),
            (['GETRANGE', k, g.int_(), g.int_()], 'exact'),
            (['SUBSTR', k, g.pick('0', '1', '-1', '-3'), g.pick('0', '2', '-1', '100')], 'exact'),
            (['SETRANGE', k, g.pick('0', '1', '3', '10', '-1', 'abc', '536870912', '536870911'),
              g.pick('', 'xy', 'zzz')], 'exact'),
            (['INCR', k], 'exact'),
            (['DECR', k], 'exact'),
            (['INCRBY', k, g.int_()], 'exact'),
            (['DECRBY', k, g.int_()], 'exact'),
            (['INCRBYFLOAT', k, g.r.choice(FLOATS)], 'exact'),
            (['MSET', k], 'exact'),                   # arity
            (['GET', k, k], 'exact'),                 # arity
            (['SET', k], 'exact'),                    # arity
        ]
        return table[c - 1] if c - 1 < len(table) else table[0]

    def keyspace(self):
        g = self
        k = g.key()
        c = g.r.randrange(20)
        table = [
            (['DEL'] + [g.key() for _ in range(g.r.randrange(1, 4))], 'exact'),
            (['UNLINK'] + [g.key() for _ in range(g.r.randrange(1, 3))], 'exact'),
            (['EXISTS'] + [g.key() for _ in range(g.r.randrange(1, 4))], 'exact'),
            (['TYPE', k], 'exact'),
            (['RENAME', k, g.key()], 'exact'),
            (['RENAMENX', k, g.key()], 'exact'),
            (['KEYS', g.r.choice(PATTERNS)], 'sorted'),
            (['SCAN', '0'] + g.scan_opts(), 'scan'),
            (['RANDOMKEY'], 'randomkey'),
            (['TOUCH'] + [g.key() for _ in range(g.r.randrange(1, 3))], 'exact'),
            (['COPY', k, g.key()] + g.pick([], [], ['REPLACE'], ['DB', g.pick('0', '1', '2', '99', 'x')],
                                            ['DB', '1', 'REPLACE'], ['FOO']), 'exact'),
            (['OBJECT', 'ENCODING', k], 'exact'),
            (['OBJECT', g.pick('FREQ', 'REFCOUNT', 'NOSUCH')] + [k], 'errors-exact'),
            (['OBJECT', 'IDLETIME', k], 'shape'),
            (['DBSIZE'], 'exact'),
            (['MEMORY', 'USAGE', k], 'shape'),
            (['SCAN', g.pick('abc', '1.5', '18446744073709551616')], 'exact'),
            (['KEYS'], 'exact'),
            (['TYPE'], 'exact'),
            (g.pick(['FLUSHDB'], ['FLUSHALL'], ['FLUSHDB', 'ASYNC'], ['FLUSHALL', 'FOO'])
             if g.maybe(0.1) else ['DBSIZE'], 'exact'),
        ]
        return table[c]

    def scan_opts(self):
        g = self
        opts = []
        if g.maybe(0.4):
            opts += ['MATCH', g.r.choice(PATTERNS)]
        if g.maybe(0.4):
            opts += ['COUNT', g.pick('1', '3', '10', '1000', '0', 'x')]
        if g.maybe(0.3):
            opts += ['TYPE', g.pick('string', 'hash', 'list', 'nosuchtype')]
        if g.maybe(0.05):
            opts += ['FOO']
        return opts

    def expiry(self):
        g = self
        k = g.key()
        c = g.r.randrange(11)
        table = [
            (['EXPIRE', k, g.ttl()] + g.r.choice(EXPIRE_OPTS), 'exact'),
            (['PEXPIRE', k, g.pick('100000', '500000', '2000000', '0', '-1', 'x')] + g.r.choice(EXPIRE_OPTS),
             'exact'),
            (['EXPIREAT', k, g.abs_time(1000)] + g.r.choice(EXPIRE_OPTS), 'exact'),
            (['PEXPIREAT', k, g.abs_time(1)] + g.r.choice(EXPIRE_OPTS), 'exact'),
            (['TTL', k], 'ttl'),
            (['PTTL', k], 'pttl'),
            (['PERSIST', k], 'exact'),
            (['EXPIRETIME', k], 'ttl'),
            (['PEXPIRETIME', k], 'pttl'),
            (['EXPIRE', k], 'exact'),
            (['TTL', k, k], 'exact'),
        ]
        return table[c]

    def hashes(self):
        g = self
        k, f = g.key(), g.field()
        c = g.r.randrange(23)
        pairs = sum([[g.field(), g.val()] for _ in range(g.r.randrange(1, 4))], [])
        table = [
            (['HSET', k] + pairs, 'exact'),
            (['HSETNX', k, f, g.val()], 'exact'),
            (['HGET', k, f], 'exact'),
            (['HMSET', k] + pairs, 'exact'),
            (['HMGET', k] + [g.field() for _ in range(g.r.randrange(1, 4))], 'exact'),
            (['HGETALL', k], 'pairs'),
            (['HDEL', k] + [g.field() for _ in range(g.r.randrange(1, 3))], 'exact'),
            (['HEXISTS', k, f], 'exact'),
            (['HLEN', k], 'exact'),
            (['HSTRLEN', k, f], 'exact'),
            (['HINCRBY', k, f, g.int_()], 'exact'),
            (['HINCRBYFLOAT', k, f, g.r.choice(FLOATS)], 'exact'),
            (['HKEYS', k], 'sorted'),
            (['HVALS', k], 'sorted'),
            (['HSCAN', k, '0'] + g.hscan_opts(), 'hscan'),
            (['HRANDFIELD', k] + g.pick([], [g.pick('1', '3', '10', '-3', '0', 'x')],
                                        [g.pick('2', '-4', '10'), 'WITHVALUES'], ['1', 'FOO']),
             'hrandfield'),
            (['HSET', k, f], 'exact'),                    # arity
            (['HSET', k] + pairs + [f], 'exact'),         # odd
            (['HMGET', k], 'exact'),
            (['HSCAN', k, g.pick('x', '18446744073709551616')], 'exact'),
            (['HGET', k], 'exact'),
            (['HINCRBY', k, f, '1', '2'], 'exact'),
            # past hash-max-listpack-entries (128): the encoding changes
            (['HSET', k] + sum([['g%d' % i, str(i)] for i in range(g.r.choice([127, 128, 129, 200]))], []),
             'exact'),
        ]
        return table[c]

    def hscan_opts(self):
        g = self
        opts = []
        if g.maybe(0.4):
            opts += ['MATCH', g.pick('f*', 'f?', 'fx', '*', '[f]0', 'z*')]
        if g.maybe(0.3):
            opts += ['COUNT', g.pick('1', '2', '100', '0', 'y')]
        if g.maybe(0.05):
            opts += [g.pick('NOVALUES', 'TYPE', 'FOO')]
        return opts

    def connection(self):
        g = self
        c = g.r.randrange(22)
        table = [
            (['PING'] + g.pick([], ['msg'], ['a', 'b']), 'exact'),
            (['ECHO'] + g.pick(['x'], ['\x00y'], [], ['a', 'b']), 'exact'),
            (['SELECT', g.pick('0', '0', '1', '2', '16', '-1', 'x', '1.0')], 'exact'),
            (['CLIENT', 'SETNAME', g.pick('n1', 'n2', 'bad name', '')], 'exact'),
            (['CLIENT', 'GETNAME'], 'exact'),
            (['CLIENT', g.pick('ID', 'INFO', 'LIST')], 'shape'),
            (['CLIENT', 'NOSUCHSUB'], 'exact'),
            (['AUTH', 'pw'], 'exact'),
            (['WAIT', g.pick('0', 'x'), g.pick('0', '-1')], 'exact'),
            (['TIME'], 'shape'),
            (['INFO'] + g.pick([], ['server'], ['keyspace'], ['nosuch']), 'shape'),
            (['CONFIG', 'GET', g.r.choice(CONFIG_PARAMS)], 'exact'),
            (['COMMAND', 'GETKEYS'] + g.pick(['GET', 'a'], ['MSET', 'a', '1', 'b', '2'], ['PING', 'x'],
                                              ['NOSUCH', 'a'], ['SET', 'a'], ['COPY', 'a', 'b']), 'exact'),
            (['NOSUCHCOMMAND', g.key()], 'exact'),
            (['COMMAND', 'INFO'] + [g.r.choice(COMMAND_NAMES) for _ in range(g.r.randrange(1, 3))],
             'command-info'),
            # persistence commands: only their argument checks (what they do differs by
            # design: kvd flushes memtables, Redis writes an RDB; see EXCLUDED)
            (g.pick(['SAVE', 'x'], ['BGREWRITEAOF', 'x'], ['BGSAVE', 'x'], ['BGSAVE', 'SCHEDULE', 'x']),
             'exact'),
            (['CONFIG', 'SET', g.pick('maxmemory-samples', 'slowlog-max-len', 'lfu-log-factor',
                                      'nosuch-param'), g.pick('5', '10', '0', '-1', 'abc', '100000')],
             'exact'),
            (['CONFIG', g.pick('SET', 'GET', 'NOSUCH')], 'exact'),
            (['LASTSAVE'], 'shape'),
            (['SLOWLOG', g.pick('LEN', 'GET', 'RESET')], 'shape'),
            (['SLOWLOG', g.pick('NOSUCH', 'GET x')], 'exact'),
            # CLIENT KILL's argument errors, and filters that match no client
            (['CLIENT', 'KILL'] + g.pick(['ID', '0'], ['ID', 'abc'], ['TYPE', 'bogus'],
                                         ['USER', 'nobody'], ['SKIPME', 'maybe'],
                                         ['ADDR', '127.0.0.1:1', 'ID'], ['ADDR', '127.0.0.1:1'],
                                         ['LADDR', '127.0.0.1:1', 'SKIPME', 'no'], ['FOO', 'bar'],
                                         ['127.0.0.1:1']), 'exact'),
        ]
        return table[c]

    def multi_block(self):
        """A MULTI ... EXEC/DISCARD block, sometimes with WATCH of a key it then
        touches itself (EXEC returns nil), sometimes with a queued error."""
        g = self
        cmds = []
        # (a cluster refuses WATCH: README "Cluster mode")
        if g.maybe(0.35) and 'WATCH' not in REFUSED:
            k = g.key()
            cmds.append((['WATCH', k], 'exact'))
            r = g.r.random()
            if r < 0.3:
                cmds.append((['SET', k, g.val()], 'exact'))
            elif r < 0.8:
                # a second connection (db 0, RESP2) writes between WATCH and EXEC:
                # the watched key, or another one (no conflict), or reads it
                w = g.pick(['SET', k, g.val()], ['DEL', k], ['EXPIRE', k, '1000'],
                           ['HSET', k, 'f0', 'v'], ['INCR', k], ['SET', g.key(), 'x'],
                           ['GET', k], ['PERSIST', k], ['EXPIRE', k, '-1'])
                cmds.append((w, 'other'))
        cmds.append((['MULTI'], 'exact'))
        for _ in range(g.r.randrange(0, 5)):
            args, kind = g.pick(g.strings, g.hashes, g.expiry)()
            if kind in ('hscan', 'hrandfield'):  # not comparable inside EXEC's reply
                args = ['HLEN', args[1]]
            cmds.append((args, 'exact'))  # each replies +QUEUED (or an error)
        if g.maybe(0.2):
            cmds.append((['GET'], 'exact'))
        if g.maybe(0.05):
            cmds.append((['SAVE'], 'exact'))  # not allowed inside a transaction
        if g.maybe(0.1):
            cmds.append((['MULTI'], 'exact'))
        cmds.append((g.pick(['EXEC'], ['EXEC'], ['EXEC'], ['DISCARD']), 'exec'))
        return cmds

    def next(self):
        for _ in range(100):  # bounded: most draws are not refused
            group = self._next()
            if not REFUSED or all(str(a[0]).upper() not in REFUSED for a, _ in group):
                return group
        return [(['PING'], 'exact')]

    def _next(self):
        r = self.r.random()
        if r < 0.30:
            return [self.strings()]
        if r < 0.50:
            return [self.hashes()]
        if r < 0.65:
            return [self.keyspace()]
        if r < 0.78:
            return [self.expiry()]
        if r < 0.91:
            return [self.connection()]
        if r < 0.96:
            return self.multi_block()
        return [(self.pick(['UNWATCH'], ['EXEC'], ['DISCARD'], ['WATCH'], ['RESET']), 'reset')]


# ---- comparison ---------------------------------------------------------------------
def sort_key(x):
    return repr(x)


def norm(kind, reply):
    """Reduces a reply to what must be equal for this kind of command."""
    t = reply[0]
    if t == 'error':
        return reply
    if kind == 'sorted' and t in ('array', 'set'):
        return ('array', sorted(reply[1], key=sort_key))
    if kind == 'pairs':
        if t == 'array':
            items = reply[1]
            return ('pairs', sorted(zip(items[0::2], items[1::2]), key=sort_key))
        if t == 'map':
            return ('map', sorted(reply[1], key=sort_key))
    if kind == 'shape':
        return (t,)
    if kind == 'command-info' and t == 'array':
        # name, arity, flags (as a set), first, last, step; Redis 7 adds ACL
        # categories, tips, key specs and subcommands after them, which kvd need not copy
        out = []
        for e in reply[1]:
            if e[0] != 'array':
                out.append(e)
                continue
            f = e[1]
            out.append((f[0], f[1], sorted(x[1] for x in f[2][1]), f[3], f[4], f[5]))
        return ('array', out)
    if kind == 'errors-exact':
        return (t,)
    return reply


def ttl_equal(a, b, tol):
    if a[0] == 'int' and b[0] == 'int':
        if a[1] < 0 or b[1] < 0:
            return a[1] == b[1]
        return abs(a[1] - b[1]) <= tol
    return a == b


class Pair:
    """The two servers' connections, kept in the same state (db, RESP version)."""

    def __init__(self, kvd_port, redis_port, kvd_host='127.0.0.1'):
        self.a = Conn(kvd_port, host=kvd_host, timeout=30)
        self.b = Conn(redis_port, timeout=30)
        self.a2 = Conn(kvd_port, host=kvd_host, timeout=30)  # the other client, for WATCH conflicts
        self.b2 = Conn(redis_port, timeout=30)

    def call(self, args):
        return self.a.call(*args), self.b.call(*args)

    def close(self):
        for c in (self.a, self.b, self.a2, self.b2):
            c.close()


def full_scan(conn, first_args, is_hash):
    """Runs SCAN/HSCAN from cursor 0 until it returns 0. Returns (reply of the first
    call if it was an error or malformed, else the set of keys / dict of fields)."""
    cursor = b'0'
    out = {} if is_hash else set()
    for _ in range(100000):
        args = list(first_args)
        args[2 if is_hash else 1] = cursor
        r = conn.call(*args)
        if r[0] != 'array' or len(r[1]) != 2 or r[1][0][0] != 'bulk' or r[1][1][0] != 'array':
            return ('reply', r)
        items = [x[1] for x in r[1][1][1]]
        if is_hash:
            if 'NOVALUES' in [str(x).upper() for x in args]:
                out.update((k, None) for k in items)
            else:
                out.update(zip(items[0::2], items[1::2]))
        else:
            out.update(items)
        cursor = r[1][0][1]
        if cursor == b'0':
            return ('items', sorted(out.items()) if is_hash else sorted(out))
    return ('reply', ('error', b'scan did not finish'))


def hrandfield_ok(conn, args, reply):
    """Checks a HRANDFIELD reply against the hash it came from on the same server."""
    if reply[0] == 'error':
        return True
    h = conn.call('HGETALL', args[1])
    if h[0] == 'error':
        return False
    if h[0] == 'map':
        fields = dict((k[1], v[1]) for k, v in h[1])
    else:
        items = [x[1] for x in h[1]]
        fields = dict(zip(items[0::2], items[1::2]))
    if len(args) == 2:
        if reply[0] in ('nullbulk', 'null'):
            return not fields
        return reply[0] == 'bulk' and reply[1] in fields
    n = int(args[2])
    withvalues = len(args) > 3
    if reply[0] != 'array':
        return False
    items = reply[1]
    if withvalues:
        if items and items[0][0] == 'array':  # RESP3: pairs
            pairs = [(p[1][0][1], p[1][1][1]) for p in items]
        else:
            pairs = [(items[i][1], items[i + 1][1]) for i in range(0, len(items), 2)]
    else:
        pairs = [(x[1], fields.get(x[1])) for x in items]
    if any(f not in fields or fields[f] != v for f, v in pairs):
        return False
    want = min(n, len(fields)) if n >= 0 else (abs(n) if fields else 0)
    if len(pairs) != want:
        return False
    return n < 0 or len(set(f for f, _ in pairs)) == len(pairs)


LAST = {}  # the command in flight, for the report when a server drops the connection


PIPELINABLE = {'exact', 'sorted', 'pairs', 'ttl', 'pttl', 'shape', 'errors-exact', 'exec',
               'command-info'}


def compare(p, kind, args, ra, rb):
    """True when the two replies to args agree for this kind of command."""
    if kind == 'ttl':
        return ttl_equal(ra, rb, 1)
    if kind == 'pttl':
        return ttl_equal(ra, rb, 1500)
    if kind == 'hrandfield':
        return (ra[0] == rb[0] and (ra[0] != 'error' or ra == rb) and
                hrandfield_ok(p.a, args, ra) and hrandfield_ok(p.b, args, rb))
    if kind == 'randomkey':
        return ra[0] == rb[0] and (ra[0] != 'bulk' or
                                   (p.a.call('EXISTS', ra[1]) == ('int', 1) and
                                    p.b.call('EXISTS', rb[1]) == ('int', 1)))
    if kind == 'errors-exact':
        return ra == rb if ra[0] == 'error' or rb[0] == 'error' else ra[0] == rb[0]
    if kind == 'exec':
        return exec_equal(ra, rb)
    return norm(kind, ra) == norm(kind, rb)


def send_pipelined(conn, cmds, rng, split):
    """Sends cmds in one go (split: in random pieces of 1..300 bytes, so frames
    arrive cut anywhere) and reads every reply."""
    data = b''.join(encode(c) for c in cmds)
    if split:
        i = 0
        while i < len(data):
            n = rng.randrange(1, 300)
            conn.send_raw(data[i:i + n])
            i += n
    else:
        conn.send_raw(data)
    return [conn.read() for _ in cmds]


def empty_keyspace(conn):
    """FLUSHALL, or where the server under test refuses it, DEL of every key the
    sequence uses in every database it reaches (SELECT and COPY DB: 0-2); the
    connection is left in database 0."""
    if 'FLUSHALL' not in REFUSED:
        conn.call('FLUSHALL')
        return
    for db in ('2', '1', '0'):
        conn.call('SELECT', db)
        conn.call('DEL', *KEYS)


def run_seed(seed, steps, kvd_port, redis_port, verbose, max_fail=50, kvd_host='127.0.0.1'):
    """Runs one seed's sequence: steps 20-40% go pipelined (up to 40 commands per
    write, split at random byte boundaries on the way to kvd), steps 60-80% in
    RESP3, the rest one command at a time in RESP2."""
    rng = random.Random(seed)
    gen = Gen(rng, int(time.time() * 1000))
    split_rng = random.Random(seed + 7777)
    p = Pair(kvd_port, redis_port, kvd_host)
    passed = failed = 0
    for conn in (p.a, p.b):
        empty_keyspace(conn)
    p.call(['HELLO', '2'])
    resp3_from, resp3_to = int(steps * 0.6), int(steps * 0.8)
    pipe_from, pipe_to = int(steps * 0.2), int(steps * 0.4)
    in_resp3 = False
    resync = False
    step = 0
    pending = []  # pipelined (step, args, kind) not yet sent
    while step < steps and failed < max_fail:
        if not in_resp3 and resp3_from <= step < resp3_to:
            ra, rb = p.call(['HELLO', '3'])
            in_resp3 = True
            ok = ra[0] == rb[0] == 'map' and mask_hello(ra) == mask_hello(rb)
            passed, failed = tally(ok, passed, failed, seed, step, ['HELLO', '3'], ra, rb)
        elif in_resp3 and step >= resp3_to:
            ra, rb = p.call(['HELLO', '2'])
            in_resp3 = False
            ok = ra[0] == rb[0] == 'array' and mask_hello(ra) == mask_hello(rb)
            passed, failed = tally(ok, passed, failed, seed, step, ['HELLO', '2'], ra, rb)
        group = gen.next()
        pipelined = pipe_from <= step < pipe_to and all(k in PIPELINABLE for _, k in group)
        if pipelined:
            for args, kind in group:
                step += 1
                pending.append((step, args, kind))
            if len(pending) < 40 and pipe_from <= step < pipe_to:
                continue
            group = []
        if pending:
            LAST.update(seed=seed, step=pending[0][0], args=['(pipeline of %d)' % len(pending)])
            cmds = [a for _, a, _ in pending]
            ras = send_pipelined(p.a, cmds, split_rng, True)
            rbs = send_pipelined(p.b, cmds, split_rng, False)
            for (st, args, kind), ra, rb in zip(pending, ras, rbs):
                ok = compare(p, kind, args, ra, rb)
                passed, failed = tally(ok, passed, failed, seed, st, args, ra, rb)
                resync = resync or not ok
            pending = []
        for args, kind in group:
            step += 1
            LAST.update(seed=seed, step=step, args=args)
            if verbose:
                print('seed %d step %d: %r' % (seed, step, args))
            if kind in ('scan', 'hscan'):
                ra = full_scan(p.a, args, kind == 'hscan')
                rb = full_scan(p.b, args, kind == 'hscan')
                ok = ra == rb
            elif kind == 'other':
                ra, rb = p.a2.call(*args), p.b2.call(*args)
                ok = ra == rb
            else:
                ra, rb = p.call(args)
                ok = compare(p, kind, args, ra, rb)
                if kind == 'reset' and args[0] == 'RESET':
                    in_resp3 = False
            passed, failed = tally(ok, passed, failed, seed, step, args, ra, rb)
            resync = resync or not ok
        if resync:
            # After a mismatch the two states differ; start both over from the same
            # empty state so one difference is reported once, not as a cascade.
            for conn in (p.a, p.b):
                conn.call('DISCARD')
                conn.call('UNWATCH')
                conn.call('SELECT', '0')
                empty_keyspace(conn)
                for name, value in RESYNC_CONFIG:
                    conn.call('CONFIG', 'SET', name, value)
            resync = False
    if failed >= max_fail:
        print('seed %d: stopped after %d mismatches' % (seed, failed))
    p.close()
    return passed, failed


def exec_equal(ra, rb):
    """EXEC replies: element by element; TTL-like values cannot appear with a fixed
    tolerance here, so unordered and TTL results are compared leniently."""
    if ra[0] != rb[0]:
        return False
    if ra[0] != 'array':
        return ra == rb
    if len(ra[1]) != len(rb[1]):
        return False
    for x, y in zip(ra[1], rb[1]):
        if x == y:
            continue
        if x[0] == 'int' and y[0] == 'int' and x[1] > 1000 and abs(x[1] - y[1]) <= 1500:
            continue  # TTL/PTTL/EXPIRETIME inside the transaction
        if x[0] == y[0] and x[0] in ('array', 'map') and \
                sorted(map(repr, flatten(x))) == sorted(map(repr, flatten(y))):
            continue  # HKEYS/HVALS/HGETALL order
        return False
    return True


def flatten(r):
    if r[0] in ('array', 'set'):
        return r[1]
    if r[0] == 'map':
        return [x for kv in r[1] for x in kv]
    return [r]


def mask_hello(r):
    items = r[1] if r[0] == 'array' else [x for kv in r[1] for x in kv]
    out = []
    skip = False
    for x in items:
        if skip:
            out.append('*')
            skip = False
            continue
        out.append(x)
        if x in (('bulk', b'id'), ('simple', b'id')):
            skip = True
    return out


def show(r, limit=600):
    s = repr(r)
    return s if len(s) <= limit else s[:limit] + '...(%d chars)' % len(s)


def show_arg(a):
    a = str(a)
    return a if a and a.isprintable() and ' ' not in a else repr(a)


def tally(ok, passed, failed, seed, step, args, ra, rb):
    if ok:
        return passed + 1, failed
    print('MISMATCH seed %d step %d: %s\n  kvd:   %s\n  redis: %s' %
          (seed, step, ' '.join(show_arg(a) for a in args),
           show(ra), show(rb)), flush=True)
    return passed, failed + 1


def coverage():
    """The commands of server/cmd/commands.def that neither the generator nor EXCLUDED
    covers (empty when every command is covered)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        with open(os.path.join(here, '..', 'server', 'cmd', 'commands.def')) as f:
            table = re.findall(r'^CMD\(\s*\w+\s*,\s*"([^"]+)"', f.read(), re.M)
    except OSError as e:
        return ['(the table could not be read: %s)' % e]  # a failure, never a silent pass
    gen = Gen(random.Random(0), int(time.time() * 1000))
    seen = {'hello'}  # run_seed switches protocols with HELLO
    for _ in range(50000):
        for args, _kind in gen.next():
            seen.add(str(args[0]).lower())
    return [c for c in table if c not in seen and c not in EXCLUDED and c.upper() not in REFUSED]


class External:
    """A kvd already running at HOST:PORT (--kvd-addr), in place of a Server: never
    started or stopped here (its owner checks how it exits)."""

    def __init__(self, addr):
        self.name = 'kvd'
        self.host, port = addr.rsplit(':', 1)
        self.port = int(port)
        self.proc = None

    def stop(self):
        return None

    def cleanup(self):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--kvd', required=True)
    ap.add_argument('--redis', default='redis-server')
    ap.add_argument('--seeds', type=int, default=4)
    ap.add_argument('--first-seed', type=int, default=1)
    ap.add_argument('--steps', type=int, default=3000)
    ap.add_argument('--maxmemory', action='store_true')
    ap.add_argument('--kvd-arg', action='append', default=[], help='an extra option for kvd')
    ap.add_argument('--verbose', action='store_true')
    ap.add_argument('--kvd-addr', help='HOST:PORT of a kvd already running (not started here)')
    o = ap.parse_args()
    redis_bin = o.redis if '/' in o.redis else next(
        (os.path.join(d, o.redis) for d in os.environ.get('PATH', '').split(':')
         if os.access(os.path.join(d, o.redis), os.X_OK)), o.redis)
    extra = ['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-lru'] if o.maxmemory else []
    a = b = None
    passed = failed = 0
    try:
        a = External(o.kvd_addr) if o.kvd_addr else Server(o.kvd, extra + o.kvd_arg, name='kvd')
        b = Server(redis_bin, extra, name='redis')
        for c in sorted(REFUSED):
            print('SKIP differential: %s is never generated (%s)' % (c, REFUSED_WHY))
        missing = coverage()
        if missing:
            print('FAIL differential: commands of server/cmd/commands.def never generated: %s'
                  % ' '.join(missing))
            failed += 1
        else:
            passed += 1
        label = ' (maxmemory 1gb allkeys-lru)' if o.maxmemory else ''
        for seed in range(o.first_seed, o.first_seed + o.seeds):
            t0 = time.time()
            p, f = run_seed(seed, o.steps, a.port, b.port, o.verbose, kvd_host=getattr(a, 'host', '127.0.0.1'))
            print('seed %d%s: %d passed, %d failed (%.1fs)' % (seed, label, p, f, time.time() - t0),
                  flush=True)
            passed += p
            failed += f
        for s in (a, b):
            c = Conn(s.port, host=getattr(s, 'host', '127.0.0.1'))
            ok = c.call('PING') == ('simple', b'PONG')
            c.close()
            passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
            if not ok:
                print('FAIL differential: %s stopped answering' % s.name)
    except Exception as e:  # noqa: BLE001 - a crash (e.g. a connection reset) is a failure
        failed += 1
        print('FAIL differential: %s: %s, at seed %s step %s: %s' % (
            type(e).__name__, e, LAST.get('seed'), LAST.get('step'),
            ' '.join(show_arg(x) for x in LAST.get('args', []))))
        traceback.print_exc(limit=2, file=sys.stdout)
        if a is not None and a.proc is not None and a.proc.poll() is not None:
            print('FAIL differential: kvd exited with status %s; log tail:\n%s' % (a.proc.returncode,
                                                                                 a._tail()))
    finally:
        for s in (a, b):
            if s is not None:
                rc = s.stop()
                if s is a and rc not in (0, None):
                    print('FAIL differential: kvd exit status %s after SIGTERM' % rc)
                    failed += 1
                s.cleanup()
    print('differential: %d passed, %d failed' % (passed, failed))
    print('%d passed, %d failed' % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
