#!/usr/bin/python3
"""redis-compat-tests/raw_test.py: every command family over a raw socket, replies
checked exactly (wire type and bytes), as Redis 7.0 gives them.

Usage: raw_test.py PORT AUTH_PORT AUTH_PASSWORD
  PORT       a server with no password (flushed here)
  AUTH_PORT  a server started with --requirepass AUTH_PASSWORD
Environment: COMPAT_TARGET=kvd enables the checks of what kvd adds beyond Redis 7.0
(CLIENT NO-TOUCH, CLIENT SETINFO); with COMPAT_TARGET=redis they are skipped.
Also covers: RESP3 types, pipelines, MULTI/EXEC/WATCH, binary-safe values, a 1 MB
value, SELECT isolation, AUTH, error texts, protocol errors and inline commands.
"""
import os
import random
import re
import socket
import sys
import time

from respclient import CLUSTER, CLUSTER_WATCH, Conn, Harness, plain

PORT = int(sys.argv[1])
AUTH_PORT = int(sys.argv[2])
AUTH_PW = sys.argv[3]
TARGET = os.environ.get('COMPAT_TARGET', 'kvd')
H = Harness('raw')

OK = ('simple', b'OK')
NIL = ('nullbulk',)
QUEUED = ('simple', b'QUEUED')
E_WRONGTYPE = ('error', b'WRONGTYPE Operation against a key holding the wrong kind of value')
E_NOTINT = ('error', b'ERR value is not an integer or out of range')
E_SYNTAX = ('error', b'ERR syntax error')
E_NOTFLOAT = ('error', b'ERR value is not a valid float')


def I(n):
    return ('int', n)


def B(s):
    return ('bulk', s if isinstance(s, bytes) else s.encode())


def A(*xs):
    return ('array', list(xs))


def arity(cmd):
    return ('error', b"ERR wrong number of arguments for '%s' command" % cmd.encode())


def conn():
    c = Conn(PORT)
    return c


def info_field(c, section, field):
    r = c.call('INFO', section)
    for line in plain(r).split(b'\r\n'):
        if line.startswith(field.encode() + b':'):
            return line.split(b':', 1)[1].decode()
    return None


# ---------------------------------------------------------------------------------
def t_handshake():
    c = conn()
    H.eq('PING', c.call('PING'), ('simple', b'PONG'))
    H.eq('PING msg', c.call('PING', 'hi there'), B('hi there'))
    H.eq('PING arity', c.call('PING', 'a', 'b'), arity('ping'))
    r = c.call('HELLO')
    H.eq('HELLO is an array in RESP2', r[0], 'array')
    kv = dict(zip([plain(x) for x in r[1][0::2]], [plain(x) for x in r[1][1::2]]))
    H.eq('HELLO server', kv.get(b'server'), b'redis')
    H.eq('HELLO proto', kv.get(b'proto'), 2)
    H.check('HELLO version looks like 7.x', str(kv.get(b'version', b''), 'ascii').startswith('7.'),
            kv.get(b'version'))
    H.check('HELLO id is an int', isinstance(kv.get(b'id'), int))
    H.eq('HELLO mode', kv.get(b'mode'), b'standalone')
    H.eq('HELLO role', kv.get(b'role'), b'master')
    H.eq('HELLO 4', c.call('HELLO', '4'), ('error', b'NOPROTO unsupported protocol version'))
    H.eq('HELLO junk', c.call('HELLO', 'x'),
         ('error', b'ERR Protocol version is not an integer or out of range'))
    r = c.call('HELLO', '3', 'SETNAME', 'hs1')
    H.eq('HELLO 3 is a map', r[0], 'map')
    kv = dict((plain(k), plain(v)) for k, v in r[1])
    H.eq('HELLO 3 proto', kv.get(b'proto'), 3)
    H.eq('HELLO SETNAME sets the name', c.call('CLIENT', 'GETNAME'), B('hs1'))
    r = c.call('HELLO', '2')
    H.eq('HELLO 2 back to an array', r[0], 'array')
    H.eq('ECHO', c.call('ECHO', 'a\r\nb'), B(b'a\r\nb'))
    H.eq('ECHO arity', c.call('ECHO'), arity('echo'))
    H.eq('RESET', c.call('RESET'), ('simple', b'RESET'))
    H.eq('GETNAME after RESET', c.call('CLIENT', 'GETNAME'), NIL)
    H.eq('QUIT', c.call('QUIT'), OK)
    H.check('QUIT closes', c.closed_by_peer())
    c.close()


def t_strings():
    c = conn()
    c.call('FLUSHALL')
    H.eq('SET', c.call('SET', 's', 'v1'), OK)
    H.eq('GET', c.call('GET', 's'), B('v1'))
    H.eq('GET missing', c.call('GET', 'nosuch'), NIL)
    H.eq('SET NX existing', c.call('SET', 's', 'v2', 'NX'), NIL)
    H.eq('SET XX missing', c.call('SET', 's2', 'v2', 'XX'), NIL)
    H.eq('SET XX existing', c.call('SET', 's', 'v2', 'XX'), OK)
    H.eq('SET GET returns old', c.call('SET', 's', 'v3', 'GET'), B('v2'))
    H.eq('SET GET missing', c.call('SET', 'sg', 'x', 'GET'), NIL)
    H.eq('SET NX GET existing', c.call('SET', 's', 'zz', 'NX', 'GET'), B('v3'))
    H.eq('SET NX GET kept old', c.call('GET', 's'), B('v3'))
    H.eq('SET NX XX', c.call('SET', 's', 'v', 'NX', 'XX'), E_SYNTAX)
    H.eq('SET EX PX', c.call('SET', 's', 'v', 'EX', '10', 'PX', '100'), E_SYNTAX)
    H.eq('SET EX 0', c.call('SET', 's', 'v', 'EX', '0'),
         ('error', b"ERR invalid expire time in 'set' command"))
    H.eq('SET EX -5', c.call('SET', 's', 'v', 'EX', '-5'),
         ('error', b"ERR invalid expire time in 'set' command"))
    H.eq('SET EX abc', c.call('SET', 's', 'v', 'EX', 'abc'), E_NOTINT)
    H.eq('SET EX missing arg', c.call('SET', 's', 'v', 'EX'), E_SYNTAX)
    H.eq('SET unknown option', c.call('SET', 's', 'v', 'FOO'), E_SYNTAX)
    H.eq('SET EX 100', c.call('SET', 'e', 'v', 'EX', '100'), OK)
    H.check('TTL after SET EX', 98 <= plain(c.call('TTL', 'e')) <= 100)
    H.eq('SET KEEPTTL', c.call('SET', 'e', 'v2', 'KEEPTTL'), OK)
    H.check('TTL kept', 98 <= plain(c.call('TTL', 'e')) <= 100)
    H.eq('SET clears TTL', c.call('SET', 'e', 'v3'), OK)
    H.eq('TTL cleared', c.call('TTL', 'e'), I(-1))
    H.eq('SET PX', c.call('SET', 'e', 'v', 'PX', '50000'), OK)
    H.check('PTTL after SET PX', 48000 <= plain(c.call('PTTL', 'e')) <= 50000)
    now = int(time.time())
    H.eq('SET EXAT', c.call('SET', 'e', 'v', 'EXAT', now + 200), OK)
    H.eq('EXPIRETIME after EXAT', c.call('EXPIRETIME', 'e'), I(now + 200))
    H.eq('SET PXAT', c.call('SET', 'e', 'v', 'PXAT', now * 1000 + 300123), OK)
    H.eq('PEXPIRETIME after PXAT', c.call('PEXPIRETIME', 'e'), I(now * 1000 + 300123))
    H.eq('SET PXAT past', c.call('SET', 'e', 'v', 'PXAT', '1000'), OK)
    H.eq('SET PXAT past: reads as gone', c.call('EXISTS', 'e'), I(0))
    H.eq('SET arity', c.call('SET', 's'), arity('set'))
    H.eq('SETNX new', c.call('SETNX', 'n1', 'a'), I(1))
    H.eq('SETNX existing', c.call('SETNX', 'n1', 'b'), I(0))
    H.eq('SETEX', c.call('SETEX', 'x1', '100', 'val'), OK)
    H.check('SETEX TTL', 98 <= plain(c.call('TTL', 'x1')) <= 100)
    H.eq('SETEX 0', c.call('SETEX', 'x1', '0', 'val'),
         ('error', b"ERR invalid expire time in 'setex' command"))
    H.eq('SETEX bad', c.call('SETEX', 'x1', 'zz', 'val'), E_NOTINT)
    H.eq('PSETEX', c.call('PSETEX', 'x2', '100000', 'val'), OK)
    H.check('PSETEX PTTL', 98000 <= plain(c.call('PTTL', 'x2')) <= 100000)
    H.eq('PSETEX -1', c.call('PSETEX', 'x2', '-1', 'val'),
         ('error', b"ERR invalid expire time in 'psetex' command"))
    H.eq('GETSET', c.call('GETSET', 'n1', 'c'), B('a'))
    H.eq('GETSET missing', c.call('GETSET', 'gs-new', 'c'), NIL)
    H.eq('GETDEL', c.call('GETDEL', 'n1'), B('c'))
    H.eq('GETDEL gone', c.call('GET', 'n1'), NIL)
    H.eq('GETDEL missing', c.call('GETDEL', 'n1'), NIL)
    c.call('SET', 'gx', 'v')
    H.eq('GETEX plain', c.call('GETEX', 'gx'), B('v'))
    H.eq('GETEX EX', c.call('GETEX', 'gx', 'EX', '100'), B('v'))
    H.check('GETEX EX sets TTL', 98 <= plain(c.call('TTL', 'gx')) <= 100)
    H.eq('GETEX PERSIST', c.call('GETEX', 'gx', 'PERSIST'), B('v'))
    H.eq('GETEX PERSIST TTL', c.call('TTL', 'gx'), I(-1))
    H.eq('GETEX EX 0', c.call('GETEX', 'gx', 'EX', '0'),
         ('error', b"ERR invalid expire time in 'getex' command"))
    H.eq('GETEX bad option', c.call('GETEX', 'gx', 'FOO'), E_SYNTAX)
    H.eq('GETEX EX PERSIST', c.call('GETEX', 'gx', 'EX', '10', 'PERSIST'), E_SYNTAX)
    H.eq('GETEX missing', c.call('GETEX', 'nosuch', 'EX', '10'), NIL)
    H.eq('MSET', c.call('MSET', 'm1', 'a', 'm2', 'b'), OK)
    H.eq('MSET odd', c.call('MSET', 'm1', 'a', 'm2'), arity('mset'))
    H.eq('MGET', c.call('MGET', 'm1', 'nosuch', 'm2'), A(B('a'), NIL, B('b')))
    H.eq('MSETNX one exists', c.call('MSETNX', 'm1', 'x', 'm3', 'y'), I(0))
    H.eq('MSETNX wrote nothing', c.call('EXISTS', 'm3'), I(0))
    H.eq('MSETNX none exists', c.call('MSETNX', 'm3', 'x', 'm4', 'y'), I(1))
    H.eq('APPEND new', c.call('APPEND', 'ap', 'hello'), I(5))
    H.eq('APPEND', c.call('APPEND', 'ap', ' world'), I(11))
    H.eq('STRLEN', c.call('STRLEN', 'ap'), I(11))
    H.eq('STRLEN missing', c.call('STRLEN', 'nosuch'), I(0))
    H.eq('GETRANGE', c.call('GETRANGE', 'ap', '0', '4'), B('hello'))
    H.eq('GETRANGE negative', c.call('GETRANGE', 'ap', '-5', '-1'), B('world'))
    H.eq('GETRANGE past end', c.call('GETRANGE', 'ap', '6', '100'), B('world'))
    H.eq('GETRANGE inverted', c.call('GETRANGE', 'ap', '5', '2'), B(''))
    H.eq('GETRANGE missing', c.call('GETRANGE', 'nosuch', '0', '-1'), B(''))
    H.eq('GETRANGE bad', c.call('GETRANGE', 'ap', 'a', '2'), E_NOTINT)
    H.eq('SUBSTR', c.call('SUBSTR', 'ap', '0', '0'), B('h'))
    H.eq('SETRANGE', c.call('SETRANGE', 'ap', '6', 'WORLD'), I(11))
    H.eq('SETRANGE value', c.call('GET', 'ap'), B('hello WORLD'))
    H.eq('SETRANGE pads', c.call('SETRANGE', 'sr', '3', 'x'), I(4))
    H.eq('SETRANGE padded value', c.call('GET', 'sr'), B(b'\0\0\0x'))
    H.eq('SETRANGE negative', c.call('SETRANGE', 'sr', '-1', 'x'),
         ('error', b'ERR offset is out of range'))
    H.eq('SETRANGE too big', c.call('SETRANGE', 'sr', '536870912', 'x'),
         ('error', b'ERR string exceeds maximum allowed size (proto-max-bulk-len)'))
    H.eq('SETRANGE empty on missing', c.call('SETRANGE', 'sr-none', '5', ''), I(0))
    H.eq('SETRANGE empty created nothing', c.call('EXISTS', 'sr-none'), I(0))
    H.eq('INCR new', c.call('INCR', 'cnt'), I(1))
    H.eq('INCRBY', c.call('INCRBY', 'cnt', '10'), I(11))
    H.eq('DECR', c.call('DECR', 'cnt'), I(10))
    H.eq('DECRBY', c.call('DECRBY', 'cnt', '-5'), I(15))
    H.eq('INCR on text', c.call('INCR', 'ap'), E_NOTINT)
    H.eq('INCRBY bad arg', c.call('INCRBY', 'cnt', '1.5'), E_NOTINT)
    c.call('SET', 'big', '9223372036854775807')
    H.eq('INCR overflow', c.call('INCR', 'big'),
         ('error', b'ERR increment or decrement would overflow'))
    c.call('SET', 'sp', ' 1')
    H.eq('INCR leading space', c.call('INCR', 'sp'), E_NOTINT)
    H.eq('DECRBY min', c.call('DECRBY', 'cnt', '-9223372036854775808'),
         ('error', b'ERR decrement would overflow'))
    H.eq('INCRBYFLOAT', c.call('INCRBYFLOAT', 'fl', '10.5'), B('10.5'))
    H.eq('INCRBYFLOAT exp', c.call('INCRBYFLOAT', 'fl', '5.0e3'), B('5010.5'))
    H.eq('INCRBYFLOAT neg', c.call('INCRBYFLOAT', 'fl', '-5010.5'), B('0'))
    H.eq('INCRBYFLOAT bad', c.call('INCRBYFLOAT', 'fl', 'abc'), E_NOTFLOAT)
    H.eq('INCRBYFLOAT on text', c.call('INCRBYFLOAT', 'ap', '1'), E_NOTFLOAT)
    H.eq('INCRBYFLOAT inf', c.call('INCRBYFLOAT', 'fl', 'inf'),
         ('error', b'ERR increment would produce NaN or Infinity'))
    H.eq('INCRBYFLOAT int key', c.call('INCRBYFLOAT', 'cnt', '0.25'), B('15.25'))
    H.eq('OBJECT ENCODING int', (c.call('SET', 'oi', '12345'), c.call('OBJECT', 'ENCODING', 'oi'))[1],
         B('int'))
    c.call('SET', 'oe', 'short')
    H.eq('OBJECT ENCODING embstr', c.call('OBJECT', 'ENCODING', 'oe'), B('embstr'))
    c.call('SET', 'or', 'x' * 100)
    H.eq('OBJECT ENCODING raw', c.call('OBJECT', 'ENCODING', 'or'), B('raw'))
    H.eq('OBJECT ENCODING missing', c.call('OBJECT', 'ENCODING', 'nosuch'), NIL)
    c.close()


def t_keys():
    c = conn()
    c.call('FLUSHALL')
    c.call('MSET', 'k1', 'a', 'k2', 'b', 'k3', 'c', 'other', 'd')
    H.eq('DEL counts', c.call('DEL', 'k1', 'k1', 'nosuch'), I(1))
    H.eq('UNLINK', c.call('UNLINK', 'k2', 'nosuch'), I(1))
    H.eq('EXISTS counts duplicates', c.call('EXISTS', 'k3', 'k3', 'nosuch'), I(2))
    c.call('HSET', 'h', 'f', 'v')
    H.eq('TYPE string', c.call('TYPE', 'k3'), ('simple', b'string'))
    H.eq('TYPE hash', c.call('TYPE', 'h'), ('simple', b'hash'))
    H.eq('TYPE none', c.call('TYPE', 'nosuch'), ('simple', b'none'))
    H.eq('RENAME', c.call('RENAME', 'k3', 'k4'), OK)
    H.eq('RENAME moved', c.call('MGET', 'k3', 'k4'), A(NIL, B('c')))
    H.eq('RENAME missing', c.call('RENAME', 'nosuch', 'x'), ('error', b'ERR no such key'))
    H.eq('RENAME same', c.call('RENAME', 'k4', 'k4'), OK)
    c.call('SET', 'k5', 'e', 'EX', '100')
    H.eq('RENAME keeps TTL', (c.call('RENAME', 'k5', 'k6'), 98 <= plain(c.call('TTL', 'k6')) <= 100)[1],
         True)
    H.eq('RENAME overwrites', c.call('RENAME', 'k6', 'other'), OK)
    H.eq('RENAME overwritten value', c.call('GET', 'other'), B('e'))
    H.eq('RENAMENX target exists', c.call('RENAMENX', 'k4', 'other'), I(0))
    H.eq('RENAMENX', c.call('RENAMENX', 'k4', 'k7'), I(1))
    H.eq('RENAMENX missing', c.call('RENAMENX', 'nosuch', 'k8'), ('error', b'ERR no such key'))
    H.eq('COPY', c.call('COPY', 'k7', 'k8'), I(1))
    H.eq('COPY value', c.call('GET', 'k8'), B('c'))
    H.eq('COPY target exists', c.call('COPY', 'k7', 'k8'), I(0))
    c.call('SET', 'k7', 'c2')
    H.eq('COPY REPLACE', c.call('COPY', 'k7', 'k8', 'REPLACE'), I(1))
    H.eq('COPY REPLACE value', c.call('GET', 'k8'), B('c2'))
    H.eq('COPY missing', c.call('COPY', 'nosuch', 'k9'), I(0))
    H.eq('COPY hash', c.call('COPY', 'h', 'h2'), I(1))
    H.eq('COPY hash value', c.call('HGET', 'h2', 'f'), B('v'))
    H.eq('COPY DB', c.call('COPY', 'k7', 'k7', 'DB', '1'), I(1))
    H.eq('COPY same key same db', c.call('COPY', 'k7', 'k7'),
         ('error', b'ERR source and destination objects are the same'))
    H.eq('COPY bad option', c.call('COPY', 'k7', 'k9', 'FOO'), E_SYNTAX)
    H.eq('COPY DB out of range', c.call('COPY', 'k7', 'k9', 'DB', '99999'),
         ('error', b'ERR DB index is out of range'))
    c.call('SELECT', '1')
    H.eq('COPY DB landed in db 1', c.call('GET', 'k7'), B('c2'))
    c.call('FLUSHDB')
    c.call('SELECT', '0')
    H.eq('TOUCH', c.call('TOUCH', 'k7', 'k8', 'nosuch'), I(2))
    # KEYS and SCAN over a known set
    c.call('FLUSHDB')
    names = ['user:%d' % i for i in range(200)] + ['item:%d' % i for i in range(50)]
    c.pipeline([('SET', n, 'x') for n in names])
    c.call('HSET', 'user:h', 'a', '1')
    H.eq('DBSIZE', c.call('DBSIZE'), I(251))
    r = plain(c.call('KEYS', 'item:*'))
    H.eq('KEYS pattern', sorted(r), sorted(n.encode() for n in names if n.startswith('item:')))
    H.eq('KEYS ?', sorted(plain(c.call('KEYS', 'item:?'))),
         sorted(('item:%d' % i).encode() for i in range(10)))
    H.eq('KEYS class', sorted(plain(c.call('KEYS', 'item:[1-2]'))), [b'item:1', b'item:2'])
    H.eq('KEYS none', c.call('KEYS', 'zzz*'), A())
    seen, cursor, calls, cursors = [], b'0', 0, []
    while True:
        r = c.call('SCAN', cursor, 'COUNT', '17')
        H.check('SCAN reply shape', r[0] == 'array' and len(r[1]) == 2 and r[1][0][0] == 'bulk',
                r) if calls == 0 else None
        cursor, batch = r[1][0][1], plain(r[1][1])
        cursors.append(int(cursor))
        seen += batch
        calls += 1
        if cursor == b'0' or calls > 10000:
            break
    allk = sorted([n.encode() for n in names] + [b'user:h'])
    H.eq('SCAN full iteration covers every key', sorted(set(seen)), allk)
    # clients such as node-redis 4 read the cursor as a double: exact below 2^53
    H.check('SCAN cursors below 2^53 and increasing',
            max(cursors) < 2 ** 53 and all(a < b for a, b in zip(cursors, cursors[1:-1])),
            cursors[:4])
    H.check('SCAN took several calls', calls > 1, calls)
    seen, cursor = [], b'0'
    while True:
        r = plain(c.call('SCAN', cursor, 'MATCH', 'item:*', 'COUNT', '1000'))
        cursor = r[0]
        seen += r[1]
        if cursor == b'0':
            break
    H.eq('SCAN MATCH', sorted(set(seen)), sorted(n.encode() for n in names if n.startswith('item')))
    seen, cursor = [], b'0'
    while True:
        r = plain(c.call('SCAN', cursor, 'TYPE', 'hash', 'COUNT', '1000'))
        cursor = r[0]
        seen += r[1]
        if cursor == b'0':
            break
    H.eq('SCAN TYPE hash', seen, [b'user:h'])
    H.eq('SCAN bad cursor', c.call('SCAN', 'abc'), ('error', b'ERR invalid cursor'))
    H.eq('SCAN bad COUNT', c.call('SCAN', '0', 'COUNT', '0'), E_SYNTAX)
    H.eq('SCAN unknown option', c.call('SCAN', '0', 'FOO', 'x'), E_SYNTAX)
    rk = plain(c.call('RANDOMKEY'))
    H.check('RANDOMKEY is an existing key', rk in allk, rk)
    c.call('FLUSHDB')
    H.eq('RANDOMKEY empty', c.call('RANDOMKEY'), NIL)
    H.eq('DBSIZE after FLUSHDB', c.call('DBSIZE'), I(0))
    H.eq('FLUSHDB ASYNC', c.call('FLUSHDB', 'ASYNC'), OK)
    H.eq('FLUSHDB bad', c.call('FLUSHDB', 'FOO'), E_SYNTAX)
    c.close()


def t_expire():
    c = conn()
    c.call('FLUSHALL')
    c.call('SET', 'k', 'v')
    H.eq('TTL no expiry', c.call('TTL', 'k'), I(-1))
    H.eq('TTL missing', c.call('TTL', 'nosuch'), I(-2))
    H.eq('PTTL missing', c.call('PTTL', 'nosuch'), I(-2))
    H.eq('EXPIRE missing', c.call('EXPIRE', 'nosuch', '10'), I(0))
    H.eq('EXPIRE XX without ttl', c.call('EXPIRE', 'k', '100', 'XX'), I(0))
    H.eq('EXPIRE GT without ttl', c.call('EXPIRE', 'k', '100', 'GT'), I(0))
    H.eq('EXPIRE NX', c.call('EXPIRE', 'k', '100', 'NX'), I(1))
    H.eq('EXPIRE NX again', c.call('EXPIRE', 'k', '200', 'NX'), I(0))
    H.eq('EXPIRE XX', c.call('EXPIRE', 'k', '200', 'XX'), I(1))
    H.eq('EXPIRE GT smaller', c.call('EXPIRE', 'k', '50', 'GT'), I(0))
    H.eq('EXPIRE GT larger', c.call('EXPIRE', 'k', '300', 'GT'), I(1))
    H.eq('EXPIRE LT larger', c.call('EXPIRE', 'k', '400', 'LT'), I(0))
    H.eq('EXPIRE LT smaller', c.call('EXPIRE', 'k', '250', 'LT'), I(1))
    H.check('TTL after LT', 248 <= plain(c.call('TTL', 'k')) <= 250)
    H.eq('EXPIRE NX GT', c.call('EXPIRE', 'k', '10', 'NX', 'GT'),
         ('error', b'ERR NX and XX, GT or LT options at the same time are not compatible'))
    H.eq('EXPIRE GT LT', c.call('EXPIRE', 'k', '10', 'GT', 'LT'),
         ('error', b'ERR GT and LT options at the same time are not compatible'))
    H.eq('EXPIRE bad option', c.call('EXPIRE', 'k', '10', 'FOO'),
         ('error', b'ERR Unsupported option FOO'))
    H.eq('EXPIRE not int', c.call('EXPIRE', 'k', 'ten'), E_NOTINT)
    H.eq('EXPIRE overflow', c.call('EXPIRE', 'k', '9223372036854775807'),
         ('error', b"ERR invalid expire time in 'expire' command"))
    H.eq('PERSIST', c.call('PERSIST', 'k'), I(1))
    H.eq('PERSIST again', c.call('PERSIST', 'k'), I(0))
    H.eq('PERSIST missing', c.call('PERSIST', 'nosuch'), I(0))
    H.eq('LT without ttl counts as infinite', c.call('EXPIRE', 'k', '100', 'LT'), I(1))
    H.eq('PEXPIRE', c.call('PEXPIRE', 'k', '123456'), I(1))
    H.check('PTTL', 120000 <= plain(c.call('PTTL', 'k')) <= 123456)
    now = int(time.time())
    H.eq('EXPIREAT', c.call('EXPIREAT', 'k', now + 1000), I(1))
    H.eq('EXPIRETIME', c.call('EXPIRETIME', 'k'), I(now + 1000))
    H.eq('PEXPIRETIME', c.call('PEXPIRETIME', 'k'), I((now + 1000) * 1000))
    H.eq('PEXPIREAT', c.call('PEXPIREAT', 'k', (now + 2000) * 1000 + 7), I(1))
    H.eq('PEXPIRETIME ms', c.call('PEXPIRETIME', 'k'), I((now + 2000) * 1000 + 7))
    H.eq('EXPIRETIME rounds down', c.call('EXPIRETIME', 'k'), I(now + 2000))
    H.eq('EXPIRETIME no ttl', (c.call('SET', 'n', 'v'), c.call('EXPIRETIME', 'n'))[1], I(-1))
    H.eq('EXPIRETIME missing', c.call('EXPIRETIME', 'nosuch'), I(-2))
    H.eq('PEXPIRETIME missing', c.call('PEXPIRETIME', 'nosuch'), I(-2))
    c.call('SET', 'far', 'v')
    H.eq('PEXPIREAT at int64 max', c.call('PEXPIREAT', 'far', '9223372036854775807'), I(1))
    H.eq('PEXPIRETIME at int64 max', c.call('PEXPIRETIME', 'far'), I(9223372036854775807))
    H.eq('EXPIRETIME at int64 max rounds, no overflow', c.call('EXPIRETIME', 'far'), I(9223372036854776))
    H.check('TTL at int64 max', plain(c.call('TTL', 'far')) > 9223370000000000)
    H.eq('EXPIREAT past deletes', c.call('EXPIREAT', 'k', now - 10), I(1))
    H.eq('EXPIREAT past: gone', c.call('EXISTS', 'k'), I(0))
    c.call('SET', 'neg', 'v')
    H.eq('EXPIRE negative deletes', c.call('EXPIRE', 'neg', '-1'), I(1))
    H.eq('EXPIRE negative: gone', c.call('GET', 'neg'), NIL)
    c.call('SET', 'short', 'v', 'PX', '100')
    c.call('HSET', 'hshort', 'f', 'v')
    c.call('PEXPIRE', 'hshort', '100')
    time.sleep(0.6)
    H.eq('expired string is gone', c.call('GET', 'short'), NIL)
    H.eq('expired hash is gone', c.call('HGETALL', 'hshort'), A())
    H.eq('expired keys not counted', c.call('EXISTS', 'short', 'hshort'), I(0))
    H.eq('TTL of expired', c.call('TTL', 'short'), I(-2))
    c.close()


def t_hashes():
    c = conn()
    c.call('FLUSHALL')
    H.eq('HSET new fields', c.call('HSET', 'h', 'a', '1', 'b', '2'), I(2))
    H.eq('HSET update counts new only', c.call('HSET', 'h', 'a', '10', 'c', '3'), I(1))
    H.eq('HSET odd', c.call('HSET', 'h', 'a', '1', 'b'), arity('hset'))
    H.eq('HGET', c.call('HGET', 'h', 'a'), B('10'))
    H.eq('HGET missing field', c.call('HGET', 'h', 'zz'), NIL)
    H.eq('HGET missing key', c.call('HGET', 'nosuch', 'a'), NIL)
    H.eq('HSETNX existing', c.call('HSETNX', 'h', 'a', 'x'), I(0))
    H.eq('HSETNX new', c.call('HSETNX', 'h', 'd', '4'), I(1))
    H.eq('HMSET', c.call('HMSET', 'h', 'e', '5', 'f', '6'), OK)
    H.eq('HMGET', c.call('HMGET', 'h', 'a', 'zz', 'f'), A(B('10'), NIL, B('6')))
    H.eq('HMGET missing key', c.call('HMGET', 'nosuch', 'a', 'b'), A(NIL, NIL))
    H.eq('HLEN', c.call('HLEN', 'h'), I(6))
    H.eq('HLEN missing', c.call('HLEN', 'nosuch'), I(0))
    H.eq('HSTRLEN', c.call('HSTRLEN', 'h', 'a'), I(2))
    H.eq('HSTRLEN missing', c.call('HSTRLEN', 'h', 'zz'), I(0))
    H.eq('HEXISTS', c.call('HEXISTS', 'h', 'a'), I(1))
    H.eq('HEXISTS missing', c.call('HEXISTS', 'h', 'zz'), I(0))
    r = plain(c.call('HGETALL', 'h'))
    H.eq('HGETALL pairs', sorted(zip(r[0::2], r[1::2])),
         sorted([(b'a', b'10'), (b'b', b'2'), (b'c', b'3'), (b'd', b'4'), (b'e', b'5'), (b'f', b'6')]))
    H.eq('HGETALL missing', c.call('HGETALL', 'nosuch'), A())
    H.eq('HKEYS', sorted(plain(c.call('HKEYS', 'h'))), [b'a', b'b', b'c', b'd', b'e', b'f'])
    H.eq('HVALS', sorted(plain(c.call('HVALS', 'h'))), [b'10', b'2', b'3', b'4', b'5', b'6'])
    H.eq('HKEYS order matches HVALS and HGETALL',
         list(zip(plain(c.call('HKEYS', 'h')), plain(c.call('HVALS', 'h')))),
         list(zip(r[0::2], r[1::2])))
    H.eq('HDEL', c.call('HDEL', 'h', 'a', 'zz', 'b'), I(2))
    H.eq('HDEL missing key', c.call('HDEL', 'nosuch', 'a'), I(0))
    H.eq('HINCRBY', c.call('HINCRBY', 'h', 'c', '5'), I(8))
    H.eq('HINCRBY new field', c.call('HINCRBY', 'h', 'n', '-3'), I(-3))
    H.eq('HINCRBY bad arg', c.call('HINCRBY', 'h', 'c', 'x'), E_NOTINT)
    c.call('HSET', 'h', 'txt', 'hello')
    H.eq('HINCRBY on text', c.call('HINCRBY', 'h', 'txt', '1'),
         ('error', b'ERR hash value is not an integer'))
    c.call('HSET', 'h', 'max', '9223372036854775807')
    H.eq('HINCRBY overflow', c.call('HINCRBY', 'h', 'max', '1'),
         ('error', b'ERR increment or decrement would overflow'))
    H.eq('HINCRBYFLOAT', c.call('HINCRBYFLOAT', 'h', 'fl', '10.5'), B('10.5'))
    H.eq('HINCRBYFLOAT again', c.call('HINCRBYFLOAT', 'h', 'fl', '0.1'), B('10.6'))
    H.eq('HINCRBYFLOAT quarter', c.call('HINCRBYFLOAT', 'h', 'fl', '0.15'), B('10.75'))
    H.eq('HINCRBYFLOAT exp', c.call('HINCRBYFLOAT', 'h', 'fl', '2.0e2'), B('210.75'))
    H.eq('HINCRBYFLOAT on int', c.call('HINCRBYFLOAT', 'h', 'c', '1.5'), B('9.5'))
    H.eq('HINCRBYFLOAT on text', c.call('HINCRBYFLOAT', 'h', 'txt', '1'),
         ('error', b'ERR hash value is not a float'))
    H.eq('HINCRBYFLOAT bad arg', c.call('HINCRBYFLOAT', 'h', 'fl', 'x'), E_NOTFLOAT)
    H.eq('HINCRBYFLOAT inf', c.call('HINCRBYFLOAT', 'h', 'fl', 'inf'),
         ('error', b'ERR value is NaN or Infinity'))
    c.call('SET', 's', 'v')
    for cmd in (('HGET', 's', 'a'), ('HSET', 's', 'a', 'b'), ('HGETALL', 's'), ('HLEN', 's'),
                ('HDEL', 's', 'a'), ('HINCRBY', 's', 'a', '1'), ('HKEYS', 's'), ('HSCAN', 's', '0'),
                ('HRANDFIELD', 's'), ('HEXISTS', 's', 'a'), ('HMGET', 's', 'a')):
        H.eq('WRONGTYPE %s' % cmd[0], c.call(*cmd), E_WRONGTYPE)
    for cmd in (('GET', 'h'), ('APPEND', 'h', 'x'), ('INCR', 'h'), ('STRLEN', 'h'),
                ('GETRANGE', 'h', '0', '1'), ('SETRANGE', 'h', '0', 'x'), ('GETDEL', 'h'),
                ('GETEX', 'h'), ('GETSET', 'h', 'x')):
        H.eq('WRONGTYPE %s' % cmd[0], c.call(*cmd), E_WRONGTYPE)
    H.eq('MGET skips hash', c.call('MGET', 'h', 's'), A(NIL, B('v')))
    H.eq('SET over hash', c.call('SET', 'h', 'x'), OK)
    H.eq('TYPE after SET over hash', c.call('TYPE', 'h'), ('simple', b'string'))
    H.eq('HDEL last field deletes key', (c.call('HSET', 'one', 'f', 'v'), c.call('HDEL', 'one', 'f'),
                                          c.call('EXISTS', 'one'))[2], I(0))
    # HSCAN, small (listpack: one call) and large (hashtable: cursor)
    fields = {('f%d' % i).encode(): ('v%d' % i).encode() for i in range(600)}
    args = ['HSET', 'big']
    for k, v in fields.items():
        args += [k, v]
    c.call(*args)
    H.eq('OBJECT ENCODING hashtable', c.call('OBJECT', 'ENCODING', 'big'), B('hashtable'))
    c.call('HSET', 'small', 'a', '1', 'b', '2')
    H.eq('OBJECT ENCODING listpack', c.call('OBJECT', 'ENCODING', 'small'), B('listpack'))
    got, cursor, calls, cursors = {}, b'0', 0, []
    while True:
        r = plain(c.call('HSCAN', 'big', cursor, 'COUNT', '20'))
        cursor = r[0]
        cursors.append(int(cursor))
        for k, v in zip(r[1][0::2], r[1][1::2]):
            got[k] = v
        calls += 1
        if cursor == b'0' or calls > 10000:
            break
    H.eq('HSCAN full iteration', got, fields)
    H.check('HSCAN cursors below 2^53', max(cursors) < 2 ** 53, cursors[:4])
    got, cursor = {}, b'0'
    while True:
        r = plain(c.call('HSCAN', 'big', cursor, 'MATCH', 'f1?', 'COUNT', '1000'))
        cursor = r[0]
        got.update(zip(r[1][0::2], r[1][1::2]))
        if cursor == b'0':
            break
    H.eq('HSCAN MATCH', sorted(got), sorted(('f1%d' % i).encode() for i in range(10)))
    H.eq('HSCAN small', sorted(plain(c.call('HSCAN', 'small', '0'))[1]), [b'1', b'2', b'a', b'b'])
    H.eq('HSCAN missing', c.call('HSCAN', 'nosuch', '0'), A(B('0'), A()))
    H.eq('HSCAN bad cursor', c.call('HSCAN', 'big', 'x'), ('error', b'ERR invalid cursor'))
    # HRANDFIELD
    r = plain(c.call('HRANDFIELD', 'big'))
    H.check('HRANDFIELD single is a field', r in fields, r)
    r = plain(c.call('HRANDFIELD', 'big', '10'))
    H.check('HRANDFIELD 10 distinct fields', len(r) == 10 and len(set(r)) == 10 and
            all(x in fields for x in r), r)
    r = plain(c.call('HRANDFIELD', 'small', '10'))
    H.eq('HRANDFIELD count > size gives all', sorted(r), [b'a', b'b'])
    r = plain(c.call('HRANDFIELD', 'small', '-7'))
    H.check('HRANDFIELD negative count repeats', len(r) == 7 and set(r) <= {b'a', b'b'}, r)
    r = plain(c.call('HRANDFIELD', 'big', '5', 'WITHVALUES'))
    H.check('HRANDFIELD WITHVALUES pairs', len(r) == 10 and
            all(fields.get(k) == v for k, v in zip(r[0::2], r[1::2])), r)
    H.eq('HRANDFIELD missing', c.call('HRANDFIELD', 'nosuch'), NIL)
    H.eq('HRANDFIELD missing count', c.call('HRANDFIELD', 'nosuch', '3'), A())
    H.eq('HRANDFIELD 0', c.call('HRANDFIELD', 'big', '0'), A())
    H.eq('HRANDFIELD bad count', c.call('HRANDFIELD', 'big', 'x'), E_NOTINT)
    H.eq('HRANDFIELD bad option', c.call('HRANDFIELD', 'big', '1', 'FOO'), E_SYNTAX)
    c.close()


def t_connection():
    c = conn()
    c.call('FLUSHALL')
    H.eq('SELECT', c.call('SELECT', '3'), OK)
    H.eq('SELECT out of range', c.call('SELECT', '100000'), ('error', b'ERR DB index is out of range'))
    H.eq('SELECT negative', c.call('SELECT', '-1'), ('error', b'ERR DB index is out of range'))
    H.eq('SELECT not int', c.call('SELECT', 'x'), E_NOTINT)
    c.call('SET', 'iso', 'db3')
    c.call('SELECT', '0')
    H.eq('SELECT isolation: db0 does not see db3', c.call('GET', 'iso'), NIL)
    c.call('SET', 'iso', 'db0')
    H.eq('DBSIZE db0', c.call('DBSIZE'), I(1))
    c.call('SELECT', '3')
    H.eq('SELECT isolation: db3 value', c.call('GET', 'iso'), B('db3'))
    H.eq('FLUSHDB only this db', (c.call('FLUSHDB'), c.call('DBSIZE'))[1], I(0))
    c.call('SELECT', '0')
    H.eq('FLUSHDB left db0', c.call('GET', 'iso'), B('db0'))
    H.eq('FLUSHALL', c.call('FLUSHALL'), OK)
    H.eq('FLUSHALL emptied db0', c.call('DBSIZE'), I(0))
    H.eq('CLIENT GETNAME unset', c.call('CLIENT', 'GETNAME'), NIL)
    H.eq('CLIENT SETNAME', c.call('CLIENT', 'SETNAME', 'compat-1'), OK)
    H.eq('CLIENT GETNAME', c.call('CLIENT', 'GETNAME'), B('compat-1'))
    H.eq('CLIENT SETNAME space', c.call('CLIENT', 'SETNAME', 'a b'),
         ('error', b'ERR Client names cannot contain spaces, newlines or special characters.'))
    cid = c.call('CLIENT', 'ID')
    H.eq('CLIENT ID is an int', cid[0], 'int')
    d = Conn(PORT)
    H.check('CLIENT ID grows', plain(d.call('CLIENT', 'ID')) > cid[1])
    info = plain(c.call('CLIENT', 'INFO'))
    H.check('CLIENT INFO id', (b'id=%d ' % cid[1]) in info, info)
    H.check('CLIENT INFO name', b' name=compat-1 ' in info, info)
    H.check('CLIENT INFO db', b' db=0 ' in info, info)
    H.check('CLIENT INFO cmd', b' cmd=client|info' in info, info)
    H.check('CLIENT INFO ends in newline', info.endswith(b'\n'), info)
    lst = plain(c.call('CLIENT', 'LIST'))
    lines = [l for l in lst.split(b'\n') if l]
    H.check('CLIENT LIST has both clients', len(lines) >= 2 and
            any(l.startswith(b'id=%d ' % cid[1]) for l in lines), lst)
    H.check('CLIENT LIST addr field', all(b' addr=127.0.0.1:' in l for l in lines), lst)
    lst = plain(c.call('CLIENT', 'LIST', 'ID', cid[1]))
    H.eq('CLIENT LIST ID', len([l for l in lst.split(b'\n') if l]), 1)
    H.eq('CLIENT bad subcommand', c.call('CLIENT', 'FOOBAR'),
         ('error', b"ERR unknown subcommand 'FOOBAR'. Try CLIENT HELP."))
    H.eq('CLIENT KILL ID', c.call('CLIENT', 'KILL', 'ID', plain(d.call('CLIENT', 'ID'))), I(1))
    H.check('CLIENT KILL closed the other', d.closed_by_peer())
    d.close()
    # CLIENT REPLY: OFF drops replies until ON, SKIP drops the next one
    e = Conn(PORT)
    e.send('CLIENT', 'REPLY', 'OFF')
    e.send('SET', 'rk', '1')
    e.send('INCR', 'rk')
    e.send('CLIENT', 'REPLY', 'SKIP')
    e.send('INCR', 'rk')
    H.eq('CLIENT REPLY OFF: nothing until ON', e.call('CLIENT', 'REPLY', 'ON'), OK)
    H.eq('CLIENT REPLY OFF/SKIP: commands ran', e.call('GET', 'rk'), B('3'))
    e.send('CLIENT', 'REPLY', 'SKIP')
    e.send('INCR', 'rk')
    H.eq('CLIENT REPLY SKIP skips one', e.call('GET', 'rk'), B('4'))
    H.eq('CLIENT REPLY bad', e.call('CLIENT', 'REPLY', 'MAYBE'), E_SYNTAX)
    H.eq('CLIENT NO-EVICT', e.call('CLIENT', 'NO-EVICT', 'ON'), OK)
    H.check('CLIENT INFO flags has e', b'flags=e' in plain(e.call('CLIENT', 'INFO')))
    H.eq('CLIENT NO-EVICT bad', e.call('CLIENT', 'NO-EVICT', 'x'), E_SYNTAX)
    e.close()
    # MONITOR streams every other client's command
    m = Conn(PORT)
    H.eq('MONITOR', m.call('MONITOR'), OK)
    c.call('SET', 'mon key', 'a"b')
    r = m.read()
    H.check('MONITOR line', r[0] == 'simple' and
            re.match(rb'^\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] "SET" "mon key" "a\\"b"$', r[1]) is not None, r)
    m.close()
    if TARGET == 'kvd':  # Redis 7.2 additions that kvd provides
        H.eq('CLIENT NO-TOUCH ON', c.call('CLIENT', 'NO-TOUCH', 'ON'), OK)
        H.check('CLIENT INFO flags has T', b'flags=T' in plain(c.call('CLIENT', 'INFO')))
        H.eq('CLIENT NO-TOUCH bad', c.call('CLIENT', 'NO-TOUCH', 'MAYBE'), E_SYNTAX)
        H.eq('CLIENT NO-TOUCH OFF', c.call('CLIENT', 'NO-TOUCH', 'OFF'), OK)
        H.eq('CLIENT SETINFO lib-name', c.call('CLIENT', 'SETINFO', 'LIB-NAME', 'compat'), OK)
        H.eq('CLIENT SETINFO lib-ver', c.call('CLIENT', 'SETINFO', 'LIB-VER', '1.2'), OK)
        info = plain(c.call('CLIENT', 'INFO'))
        H.check('CLIENT INFO lib-name', b'lib-name=compat ' in info and b'lib-ver=1.2' in info, info)
        H.eq('CLIENT SETINFO bad attr', c.call('CLIENT', 'SETINFO', 'FOO', 'x'),
             ('error', b"ERR Unrecognized option 'FOO'"))
    c.close()


def t_server():
    c = conn()
    c.call('FLUSHALL')
    info = plain(c.call('INFO'))
    H.check('INFO is a bulk with CRLF lines', isinstance(info, bytes) and b'\r\n' in info)
    for sect in (b'# Server', b'# Clients', b'# Memory', b'# Stats', b'# Keyspace'):
        H.check('INFO has %s' % sect.decode(), sect in info)
    H.eq('INFO server tcp_port', info_field(c, 'server', 'tcp_port'), str(PORT))
    H.check('INFO server redis_version', (info_field(c, 'server', 'redis_version') or '').startswith('7.'))
    H.check('INFO server process_id', (info_field(c, 'server', 'process_id') or 'x').isdigit())
    H.check('INFO server uptime_in_seconds',
            (info_field(c, 'server', 'uptime_in_seconds') or 'x').isdigit())
    H.check('INFO clients connected_clients >= 1',
            int(info_field(c, 'clients', 'connected_clients') or 0) >= 1)
    H.check('INFO memory used_memory > 0', int(info_field(c, 'memory', 'used_memory') or 0) > 0)
    H.check('INFO memory maxmemory_policy', info_field(c, 'memory', 'maxmemory_policy') is not None)
    n1 = int(info_field(c, 'stats', 'total_commands_processed') or -1)
    n2 = int(info_field(c, 'stats', 'total_commands_processed') or -1)
    H.check('INFO stats total_commands_processed grows', n1 >= 0 and n2 > n1, (n1, n2))
    c.call('SET', 'a', '1')
    c.call('SET', 'b', '1', 'EX', '1000')
    c.call('GET', 'a')
    c.call('GET', 'nosuch')
    H.check('INFO keyspace db0',
            (info_field(c, 'keyspace', 'db0') or '').startswith('keys=2,expires=1,avg_ttl='),
            info_field(c, 'keyspace', 'db0'))
    h = int(info_field(c, 'stats', 'keyspace_hits') or 0)
    m = int(info_field(c, 'stats', 'keyspace_misses') or 0)
    c.call('GET', 'a')
    c.call('GET', 'nosuch')
    H.eq('INFO keyspace_hits/misses count GETs',
         (int(info_field(c, 'stats', 'keyspace_hits') or 0) - h,
          int(info_field(c, 'stats', 'keyspace_misses') or 0) - m), (1, 1))
    ks = plain(c.call('INFO', 'keyspace'))
    H.check('INFO keyspace has only that section', b'# Server' not in ks and b'# Keyspace' in ks)
    both = plain(c.call('INFO', 'server', 'clients'))
    H.check('INFO two sections', b'# Server' in both and b'# Clients' in both and b'# Memory' not in both)
    H.check('INFO commandstats', b'cmdstat_get:calls=' in plain(c.call('INFO', 'commandstats')))
    # fields clients and tools read (ioredis's ready check reads loading; sentinels
    # and libraries read role; redis-cli --stat reads the clients/stats counters)
    for section, field, pattern in (
            ('server', 'redis_mode', r'^standalone$'), ('server', 'run_id', r'^[0-9a-f]{40}$'),
            ('server', 'arch_bits', r'^(32|64)$'), ('server', 'uptime_in_days', r'^\d+$'),
            ('server', 'hz', r'^\d+$'), ('server', 'executable', r'.'),
            ('clients', 'blocked_clients', r'^\d+$'), ('clients', 'maxclients', r'^\d+$'),
            ('memory', 'used_memory_human', r'^[\d.]+[BKMG]$'), ('memory', 'used_memory_peak', r'^\d+$'),
            ('memory', 'maxmemory', r'^\d+$'), ('memory', 'maxmemory_human', r'^[\d.]+[BKMG]$'),
            ('memory', 'used_memory_rss', r'^\d+$'), ('memory', 'mem_fragmentation_ratio', r'^[\d.]+$'),
            ('persistence', 'loading', r'^0$'), ('replication', 'role', r'^master$'),
            ('replication', 'connected_slaves', r'^0$'),
            ('stats', 'total_connections_received', r'^\d+$'), ('stats', 'instantaneous_ops_per_sec', r'^\d+$'),
            ('stats', 'expired_keys', r'^\d+$'), ('stats', 'evicted_keys', r'^\d+$'),
            ('stats', 'total_net_input_bytes', r'^\d+$'), ('stats', 'rejected_connections', r'^\d+$')):
        v = info_field(c, section, field)
        H.check('INFO %s %s' % (section, field), v is not None and re.search(pattern, v) is not None, v)
    everything = plain(c.call('INFO', 'everything'))
    H.check('INFO everything has commandstats and keyspace',
            b'# Commandstats' in everything and b'# Keyspace' in everything)
    H.check('INFO default has no commandstats', b'# Commandstats' not in plain(c.call('INFO')))
    H.eq('INFO unknown section is empty', c.call('INFO', 'nosuchsection'), B(''))
    # CONFIG
    r = c.call('CONFIG', 'GET', 'maxmemory')
    H.check('CONFIG GET maxmemory', r[0] == 'array' and len(r[1]) == 2 and r[1][0] == B('maxmemory')
            and plain(r[1][1]).isdigit(), r)
    r = plain(c.call('CONFIG', 'GET', 'maxmemory*'))
    names = r[0::2]
    H.check('CONFIG GET glob', b'maxmemory' in names and b'maxmemory-policy' in names, names)
    H.eq('CONFIG GET unknown', c.call('CONFIG', 'GET', 'no-such-option'), A())
    H.eq('CONFIG GET port', plain(c.call('CONFIG', 'GET', 'port')), [b'port', str(PORT).encode()])
    old = plain(c.call('CONFIG', 'GET', 'maxmemory-policy'))[1]
    H.eq('CONFIG SET', c.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru'), OK)
    H.eq('CONFIG SET took', plain(c.call('CONFIG', 'GET', 'maxmemory-policy')),
         [b'maxmemory-policy', b'allkeys-lru'])
    c.call('CONFIG', 'SET', 'maxmemory-policy', old)
    H.eq('CONFIG SET bad enum', c.call('CONFIG', 'SET', 'maxmemory-policy', 'bogus'),
         ('error', b"ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - "
                   b"argument(s) must be one of the following: volatile-lru, volatile-lfu, "
                   b"volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, "
                   b"noeviction"))
    H.eq('CONFIG SET unknown', c.call('CONFIG', 'SET', 'no-such-option', '1'),
         ('error', b"ERR Unknown option or number of arguments for CONFIG SET - 'no-such-option'"))
    H.eq('CONFIG SET memory unit', c.call('CONFIG', 'SET', 'maxmemory', '2gb'), OK)
    H.eq('CONFIG GET memory unit', plain(c.call('CONFIG', 'GET', 'maxmemory'))[1], b'2147483648')
    c.call('CONFIG', 'SET', 'maxmemory', '0')
    H.eq('CONFIG SET not a number', c.call('CONFIG', 'SET', 'maxmemory', 'lots'),
         ('error', b"ERR CONFIG SET failed (possibly related to argument 'maxmemory') - "
                   b"argument must be a memory value"))
    H.eq('CONFIG RESETSTAT', c.call('CONFIG', 'RESETSTAT'), OK)
    H.eq('CONFIG bad sub', c.call('CONFIG', 'FOO'),
         ('error', b"ERR unknown subcommand 'FOO'. Try CONFIG HELP."))
    # DBSIZE, TIME, LASTSAVE, WAIT
    H.eq('DBSIZE', c.call('DBSIZE'), I(2))
    r = c.call('TIME')
    H.check('TIME shape', r[0] == 'array' and len(r[1]) == 2 and all(x[0] == 'bulk' for x in r[1]), r)
    H.check('TIME is now', abs(int(plain(r)[0]) - time.time()) < 5 and 0 <= int(plain(r)[1]) < 1000000, r)
    H.eq('LASTSAVE is an int', c.call('LASTSAVE')[0], 'int')
    H.eq('WAIT', c.call('WAIT', '0', '0'), I(0))
    # COMMAND
    count = c.call('COMMAND', 'COUNT')
    H.eq('COMMAND COUNT is an int', count[0], 'int')
    allc = c.call('COMMAND')
    H.eq('COMMAND COUNT matches COMMAND', len(allc[1]), count[1])
    names = set(plain(x)[0] for x in allc[1])
    H.check('COMMAND lists get, hset, client', {b'get', b'hset', b'client'} <= names)
    r = plain(c.call('COMMAND', 'INFO', 'get', 'nosuchcmd'))
    H.check('COMMAND INFO get', r[0][0] == b'get' and r[0][1] == 2 and b'readonly' in r[0][2]
            and b'fast' in r[0][2] and r[0][3:6] == [1, 1, 1], r)
    H.eq('COMMAND INFO unknown is nil', r[1], None)
    r = plain(c.call('COMMAND', 'INFO', 'mset'))
    H.check('COMMAND INFO mset', r[0][1] == -3 and b'write' in r[0][2] and r[0][3:6] == [1, -1, 2], r)
    r = c.call('COMMAND', 'DOCS', 'get')
    H.check('COMMAND DOCS get', r[0] == 'array' and plain(r)[0] == b'get' and
            b'summary' in plain(r)[1], r)
    H.eq('COMMAND GETKEYS SET', c.call('COMMAND', 'GETKEYS', 'SET', 'ka', 'v'), A(B('ka')))
    H.eq('COMMAND GETKEYS MSET', c.call('COMMAND', 'GETKEYS', 'MSET', 'a', '1', 'b', '2'),
         A(B('a'), B('b')))
    H.eq('COMMAND GETKEYS no keys', c.call('COMMAND', 'GETKEYS', 'PING', 'x'),
         ('error', b'ERR The command has no key arguments'))
    H.eq('COMMAND GETKEYS unknown', c.call('COMMAND', 'GETKEYS', 'FOO', 'a'),
         ('error', b'ERR Invalid command specified'))
    H.eq('COMMAND GETKEYS arity', c.call('COMMAND', 'GETKEYS', 'GET', 'a', 'b'),
         ('error', b'ERR Invalid number of arguments specified for command'))
    # SLOWLOG
    H.eq('SLOWLOG RESET', c.call('SLOWLOG', 'RESET'), OK)
    old = plain(c.call('CONFIG', 'GET', 'slowlog-log-slower-than'))[1]
    c.call('CONFIG', 'SET', 'slowlog-log-slower-than', '0')
    c.call('SET', 'slowkey', 'slowval')
    c.call('CONFIG', 'SET', 'slowlog-log-slower-than', old)
    n = plain(c.call('SLOWLOG', 'LEN'))
    H.check('SLOWLOG LEN counts', isinstance(n, int) and n >= 1, n)
    r = plain(c.call('SLOWLOG', 'GET', '10'))
    ent = [e for e in r if e[3][:1] == [b'SET']]
    H.check('SLOWLOG GET entry shape', len(ent) == 1 and isinstance(ent[0][0], int) and
            abs(ent[0][1] - time.time()) < 10 and isinstance(ent[0][2], int) and
            ent[0][3] == [b'SET', b'slowkey', b'slowval'] and ent[0][4].startswith(b'127.0.0.1:'), r)
    H.eq('SLOWLOG GET 1 is one entry', len(plain(c.call('SLOWLOG', 'GET', '1'))), 1)
    c.call('SLOWLOG', 'RESET')
    H.eq('SLOWLOG LEN after RESET', c.call('SLOWLOG', 'LEN'), I(0))
    # MEMORY
    c.call('SET', 'mk', 'x' * 1000)
    r = c.call('MEMORY', 'USAGE', 'mk')
    H.check('MEMORY USAGE', r[0] == 'int' and 1000 <= r[1] < 4000, r)
    H.eq('MEMORY USAGE missing', c.call('MEMORY', 'USAGE', 'nosuch'), NIL)
    H.check('MEMORY STATS', c.call('MEMORY', 'STATS')[0] == 'array')
    # unknown command and arity
    H.eq('unknown command', c.call('FOOBAR', 'a', 'b'),
         ('error', b"ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' "))
    H.eq('unknown command no args', c.call('FOOBAR'),
         ('error', b"ERR unknown command 'FOOBAR', with args beginning with: "))
    H.eq('arity GET', c.call('GET'), arity('get'))
    H.eq('arity GET too many', c.call('GET', 'a', 'b'), arity('get'))
    H.eq('arity keeps case', c.call('GeT'), arity('get'))
    H.eq('arity CONFIG GET', c.call('CONFIG', 'GET'),
         ('error', b"ERR wrong number of arguments for 'config|get' command"))
    c.close()


def t_pipeline():
    c = conn()
    c.call('FLUSHALL')
    cmds = []
    for i in range(2000):
        cmds.append(('SET', 'p%d' % i, 'v%d' % i))
        cmds.append(('INCR', 'pc'))
        cmds.append(('GET', 'p%d' % i))
    replies = c.pipeline(cmds)
    ok = all(replies[3 * i] == OK and replies[3 * i + 1] == I(i + 1) and
             replies[3 * i + 2] == B('v%d' % i) for i in range(2000))
    H.check('pipeline of 6000 commands in order', ok)
    # a pipeline split at every byte boundary
    data = b''.join(b'*2\r\n$3\r\nGET\r\n$2\r\np%d\r\n' % i for i in range(1, 10))
    for b in data:
        c.send_raw(bytes([b]))
    H.eq('commands sent one byte at a time', [c.read() for _ in range(9)],
         [B('v%d' % i) for i in range(1, 10)])
    c.close()


def t_multi():
    c = conn()
    c.call('FLUSHALL')
    H.eq('MULTI', c.call('MULTI'), OK)
    H.eq('queued SET', c.call('SET', 'a', '1'), QUEUED)
    H.eq('queued INCR', c.call('INCR', 'a'), QUEUED)
    H.eq('queued GET', c.call('GET', 'a'), QUEUED)
    H.eq('EXEC', c.call('EXEC'), A(OK, I(2), B('2')))
    H.eq('MULTI nested', (c.call('MULTI'), c.call('MULTI'))[1],
         ('error', b'ERR MULTI calls can not be nested'))
    H.eq('WATCH inside MULTI', c.call('WATCH', 'a'),
         ('error', b'ERR WATCH inside MULTI is not allowed'))
    H.eq('DISCARD', c.call('DISCARD'), OK)
    H.eq('EXEC without MULTI', c.call('EXEC'), ('error', b'ERR EXEC without MULTI'))
    H.eq('DISCARD without MULTI', c.call('DISCARD'), ('error', b'ERR DISCARD without MULTI'))
    # a queued syntax / arity / unknown error aborts EXEC
    c.call('MULTI')
    c.call('SET', 'b', '1')
    H.eq('queued arity error', c.call('GET'), arity('get'))
    H.eq('queued unknown', c.call('NOSUCHCMD', 'x'),
         ('error', b"ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' "))
    H.eq('EXECABORT', c.call('EXEC'),
         ('error', b'EXECABORT Transaction discarded because of previous errors.'))
    H.eq('EXECABORT applied nothing', c.call('EXISTS', 'b'), I(0))
    # errors at run time stay inside the reply
    c.call('SET', 's', 'text')
    c.call('MULTI')
    c.call('INCR', 's')
    c.call('SET', 'c', '1')
    c.call('SET', 'c', '2', 'EX', '0')
    c.call('HSET', 's', 'f', 'v')
    H.eq('EXEC with run-time errors', c.call('EXEC'),
         A(E_NOTINT, OK, ('error', b"ERR invalid expire time in 'set' command"), E_WRONGTYPE))
    H.eq('EXEC applied the rest', c.call('GET', 'c'), B('1'))
    c.call('MULTI')
    H.eq('EXEC empty', c.call('EXEC'), A())
    if CLUSTER:
        H.skip('WATCH between two connections', CLUSTER_WATCH)
        c.close()
        return
    # WATCH between two connections
    d = conn()
    c.call('SET', 'w', '1')
    H.eq('WATCH', c.call('WATCH', 'w'), OK)
    d.call('SET', 'w', '2')
    c.call('MULTI')
    c.call('SET', 'w', '3')
    H.eq('EXEC after a watched key changed is nil', c.call('EXEC'), ('nullarray',))
    H.eq('the other write stands', c.call('GET', 'w'), B('2'))
    c.call('WATCH', 'w')
    c.call('MULTI')
    c.call('INCR', 'w')
    H.eq('EXEC with an untouched watch', c.call('EXEC'), A(I(3)))
    c.call('WATCH', 'w')
    d.call('GET', 'w')
    c.call('MULTI')
    c.call('INCR', 'w')
    H.eq('a read does not break WATCH', c.call('EXEC'), A(I(4)))
    c.call('WATCH', 'w')
    c.call('UNWATCH')
    d.call('SET', 'w', '10')
    c.call('MULTI')
    c.call('INCR', 'w')
    H.eq('UNWATCH forgets', c.call('EXEC'), A(I(11)))
    c.call('WATCH', 'gone')
    d.call('SET', 'gone', 'x')
    d.call('DEL', 'gone')
    c.call('MULTI')
    c.call('SET', 'gone', 'y')
    H.eq('WATCH sees a create+delete', c.call('EXEC'), ('nullarray',))
    c.call('WATCH', 'w')
    d.call('FLUSHDB')
    c.call('MULTI')
    c.call('SET', 'w', '1')
    H.eq('FLUSHDB breaks WATCH', c.call('EXEC'), ('nullarray',))
    c.call('SET', 'exp', 'v')
    c.call('WATCH', 'exp')
    d.call('EXPIRE', 'exp', '100')
    c.call('MULTI')
    c.call('GET', 'exp')
    H.eq('EXPIRE breaks WATCH', c.call('EXEC'), ('nullarray',))
    c.close()
    d.close()


def t_binary():
    c = conn()
    c.call('FLUSHALL')
    key = b'bin\x00key\r\n\xff'
    val = bytes(range(256)) * 4 + b'\r\n\x00\r\n'
    H.eq('binary SET', c.call('SET', key, val), OK)
    H.eq('binary GET', c.call('GET', key), B(val))
    H.eq('binary STRLEN', c.call('STRLEN', key), I(len(val)))
    H.eq('binary KEYS', c.call('KEYS', 'bin*'), A(B(key)))
    H.eq('binary HSET', c.call('HSET', key + b'h', b'f\x00\r\n', b'\x00v\r\n'), I(1))
    H.eq('binary HGET', c.call('HGET', key + b'h', b'f\x00\r\n'), B(b'\x00v\r\n'))
    H.eq('empty value', (c.call('SET', 'empty', ''), c.call('GET', 'empty'))[1], B(b''))
    H.eq('empty key', (c.call('SET', '', 'ev'), c.call('GET', ''))[1], B('ev'))
    big = os.urandom(512 * 1024).hex().encode()  # 1 MiB of text, random
    H.eq('1 MB SET', c.call('SET', 'big', big), OK)
    H.eq('1 MB GET', c.call('GET', 'big'), B(big))
    H.eq('1 MB STRLEN', c.call('STRLEN', 'big'), I(len(big)))
    H.eq('1 MB APPEND', c.call('APPEND', 'big', 'tail'), I(len(big) + 4))
    H.eq('1 MB GETRANGE tail', c.call('GETRANGE', 'big', '-6', '-1'), B(big[-2:] + b'tail'))
    c.close()


def t_resp3():
    c = conn()
    c.call('FLUSHALL')
    r = c.call('HELLO', '3')
    kv = dict((plain(k), plain(v)) for k, v in r[1])
    H.eq('HELLO 3 server field', kv.get(b'server'), b'redis')
    H.check('HELLO 3 modules is an array', dict((plain(k), v) for k, v in r[1]).get(b'modules', ('x',))[0]
            == 'array')
    H.eq('RESP3 GET missing is null', c.call('GET', 'nosuch'), ('null',))
    H.eq('RESP3 OK', c.call('SET', 'k', 'v'), OK)
    c.call('HSET', 'h', 'a', '1', 'b', '2')
    r = c.call('HGETALL', 'h')
    H.check('RESP3 HGETALL is a map', r[0] == 'map' and sorted(plain(r)) == [(b'a', b'1'), (b'b', b'2')], r)
    H.eq('RESP3 HGETALL missing is an empty map', c.call('HGETALL', 'nosuch'), ('map', []))
    r = c.call('CONFIG', 'GET', 'maxmemory')
    H.check('RESP3 CONFIG GET is a map', r[0] == 'map' and plain(r)[0][0] == b'maxmemory', r)
    H.eq('RESP3 HMGET nulls', c.call('HMGET', 'h', 'a', 'zz'), A(B('1'), ('null',)))
    H.eq('RESP3 MGET nulls', c.call('MGET', 'k', 'zz'), A(B('v'), ('null',)))
    r = c.call('HRANDFIELD', 'h', '2', 'WITHVALUES')
    H.check('RESP3 HRANDFIELD WITHVALUES is an array of pairs', r[0] == 'array' and len(r[1]) == 2 and
            all(x[0] == 'array' and len(x[1]) == 2 for x in r[1]) and
            sorted(plain(r)) == [[b'a', b'1'], [b'b', b'2']], r)
    H.eq('RESP3 INCRBYFLOAT stays bulk', c.call('INCRBYFLOAT', 'f', '1.5'), B('1.5'))
    H.eq('RESP3 HINCRBYFLOAT stays bulk', c.call('HINCRBYFLOAT', 'h', 'f', '2.5'), B('2.5'))
    H.eq('RESP3 errors unchanged', c.call('INCR', 'h'), E_WRONGTYPE)
    if CLUSTER:
        H.skip('RESP3 aborted EXEC is null', CLUSTER_WATCH)
    else:
        d = conn()
        c.call('WATCH', 'k')
        d.call('SET', 'k', 'x')
        c.call('MULTI')
        c.call('GET', 'k')
        H.eq('RESP3 aborted EXEC is null', c.call('EXEC'), ('null',))
        d.close()
    r = c.call('COMMAND', 'DOCS', 'get')
    H.eq('RESP3 COMMAND DOCS is a map', r[0], 'map')
    r = c.call('CLIENT', 'INFO')
    H.check('RESP3 CLIENT INFO is verbatim or bulk', r[0] in ('verbatim', 'bulk'), r)
    r = c.call('INFO', 'server')
    H.check('RESP3 INFO is verbatim or bulk', r[0] in ('verbatim', 'bulk') and
            b'# Server' in plain(r), r)
    r = c.call('SCAN', '0', 'COUNT', '100')
    H.check('RESP3 SCAN is an array', r[0] == 'array' and r[1][1][0] == 'array', r)
    r = c.call('HSCAN', 'h', '0')
    H.check('RESP3 HSCAN stays a flat array', r[0] == 'array' and r[1][1][0] == 'array' and
            len(r[1][1][1]) == 6, r)
    H.eq('RESP3 EXISTS int', c.call('EXISTS', 'k'), I(1))
    c.close()


def t_auth():
    c = Conn(AUTH_PORT)
    H.eq('NOAUTH before AUTH', c.call('GET', 'a'), ('error', b'NOAUTH Authentication required.'))
    H.eq('NOAUTH on a write', c.call('SET', 'a', 'b'),
         ('error', b'NOAUTH Authentication required.'))
    H.eq('WRONGPASS', c.call('AUTH', 'wrong'),
         ('error', b'WRONGPASS invalid username-password pair or user is disabled.'))
    H.eq('WRONGPASS with user', c.call('AUTH', 'default', 'wrong'),
         ('error', b'WRONGPASS invalid username-password pair or user is disabled.'))
    H.eq('still NOAUTH', c.call('PING'), ('error', b'NOAUTH Authentication required.'))
    H.eq('AUTH', c.call('AUTH', AUTH_PW), OK)
    H.eq('after AUTH', c.call('PING'), ('simple', b'PONG'))
    c.close()
    c = Conn(AUTH_PORT)
    H.eq('AUTH default user', c.call('AUTH', 'default', AUTH_PW), OK)
    c.close()
    c = Conn(AUTH_PORT)
    H.eq('HELLO 3 without AUTH', c.call('HELLO', '3'),
         ('error', b'NOAUTH HELLO must be called with the client already authenticated, otherwise the '
                   b'HELLO AUTH <user> <pass> option can be used to authenticate the client '
                   b'and select the RESP protocol version at the same time'))
    r = c.call('HELLO', '3', 'AUTH', 'default', 'bad')
    H.eq('HELLO AUTH wrong', r, ('error', b'WRONGPASS invalid username-password pair or user is disabled.'))
    r = c.call('HELLO', '3', 'AUTH', 'default', AUTH_PW)
    H.check('HELLO 3 AUTH default pw', r[0] == 'map' and dict(plain(r)).get(b'proto') == 3, r)
    H.eq('after HELLO AUTH', c.call('SET', 'x', '1'), OK)
    c.close()
    c = Conn(PORT)
    H.eq('AUTH without a password set', c.call('AUTH', 'x'),
         ('error', b'ERR AUTH <password> called without any password configured for the default user. '
                   b'Are you sure your configuration is correct?'))
    c.close()


def raw_expect_close(data, want, what):
    c = Conn(PORT)
    c.send_raw(data)
    try:
        r = c.read()
    except (EOFError, OSError) as e:
        r = ('no reply', str(e))
    H.eq(what, r, ('error', want))
    H.check(what + ': connection closed', c.closed_by_peer())
    c.close()


def t_protocol():
    c = conn()
    c.call('FLUSHALL')
    raw_expect_close(b'*1\r\n$abc\r\n', b'ERR Protocol error: invalid bulk length', 'bad bulk length')
    raw_expect_close(b'*abc\r\n', b'ERR Protocol error: invalid multibulk length', 'bad multibulk length')
    raw_expect_close(b'*1\r\nfoo\r\n', b"ERR Protocol error: expected '$', got 'f'", 'missing $')
    raw_expect_close(b'*1\r\n$-5\r\n', b'ERR Protocol error: invalid bulk length', 'negative bulk length')
    raw_expect_close(b'*3000000000\r\n', b'ERR Protocol error: invalid multibulk length',
                     'huge multibulk length')
    raw_expect_close(b'SET "a b\r\n', b'ERR Protocol error: unbalanced quotes in request',
                     'unbalanced quotes inline')
    used0 = int(info_field(c, 'memory', 'used_memory'))
    raw_expect_close(b'*2\r\n$3\r\nGET\r\n$9999999999\r\n', b'ERR Protocol error: invalid bulk length',
                     'bulk length over proto-max-bulk-len')
    raw_expect_close(b'*2\r\n$3\r\nGET\r\n$9223372036854775807\r\n',
                     b'ERR Protocol error: invalid bulk length', 'bulk length of int64 max')
    used1 = int(info_field(c, 'memory', 'used_memory'))
    H.check('huge bulk header allocated nothing', used1 - used0 < 16 * 1024 * 1024, (used0, used1))
    if TARGET == 'kvd':
        # A 400 MB bulk within proto-max-bulk-len, of which 100 bytes arrive: kvd
        # grows the buffer with the bytes, not the header (Redis 7.0 reserves the
        # whole length up front for big arguments, so this is kvd's own promise).
        d = Conn(PORT)
        d.send_raw(b'*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$400000000\r\n' + b'x' * 100)
        time.sleep(0.3)
        used2 = int(info_field(c, 'memory', 'used_memory'))
        H.check('declared 400 MB bulk allocates nothing up front', used2 - used1 < 16 * 1024 * 1024,
                (used1, used2))
        d.close()
    # a header without its line end, too long to be a header
    d = Conn(PORT)
    d.send_raw(b'*1\r\n$' + b'1' * 70000)
    try:
        r = d.read()
    except (EOFError, OSError) as e:
        r = ('no reply', str(e))
    H.check('over-long bulk header line rejected', r[0] == 'error' and
            r[1].startswith(b'ERR Protocol error'), r)
    H.check('over-long header: connection closed', d.closed_by_peer())
    d.close()
    # an inline request with no line end, past 64 KB
    d = Conn(PORT)
    d.send_raw(b'SET k ' + b'a' * 70000)
    try:
        r = d.read()
    except (EOFError, OSError) as e:
        r = ('no reply', str(e))
    H.eq('too big inline request', r, ('error', b'ERR Protocol error: too big inline request'))
    H.check('too big inline request: connection closed', d.closed_by_peer())
    d.close()
    # proto-max-bulk-len lowered at run time
    old = plain(c.call('CONFIG', 'GET', 'proto-max-bulk-len'))[1]
    H.eq('CONFIG SET proto-max-bulk-len 1mb', c.call('CONFIG', 'SET', 'proto-max-bulk-len', '1mb'), OK)
    raw_expect_close(b'*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n',
                     b'ERR Protocol error: invalid bulk length', 'bulk over a lowered proto-max-bulk-len')
    d = Conn(PORT)
    H.eq('bulk at the lowered limit', d.call('SET', 'k', b'b' * (1024 * 1024)), OK)
    d.close()
    c.call('CONFIG', 'SET', 'proto-max-bulk-len', old)
    H.eq('server still serves after protocol errors', c.call('PING'), ('simple', b'PONG'))
    # inline commands
    d = Conn(PORT)
    d.send_raw(b'PING\r\n')
    H.eq('inline PING', d.read(), ('simple', b'PONG'))
    d.send_raw(b'SET inl "hello world"\r\n')
    H.eq('inline SET quoted', d.read(), OK)
    d.send_raw(b'GET inl\n')
    H.eq('inline with LF only', d.read(), B('hello world'))
    d.send_raw(b'SET inl2 "a\\x41\\n"\r\nGET inl2\r\n')
    H.eq('inline escapes', [d.read(), d.read()], [OK, B(b'aA\n')])
    d.send_raw(b'\r\n\r\nPING\r\n')
    H.eq('inline empty lines ignored', d.read(), ('simple', b'PONG'))
    d.send_raw(b'   ECHO    x   \r\n')
    H.eq('inline extra spaces', d.read(), B('x'))
    d.send_raw(b'*0\r\nPING\r\n')
    H.eq('empty multibulk ignored', d.read(), ('simple', b'PONG'))
    d.close()


def server_mode(c):
    """'persistent' or 'cache' for kvd (CONFIG GET mode); 'cache' for Redis, whose
    maxmemory semantics are cache mode's."""
    r = plain(c.call('CONFIG', 'GET', 'mode'))
    return r[1].decode() if isinstance(r, list) and len(r) == 2 else 'cache'


def t_maxmemory():
    """maxmemory set at run time. Cache mode (and Redis): noeviction refuses writes
    with -OOM (reads and deletes go on); allkeys-lru evicts and holds used_memory
    near the limit. Persistent mode: data past maxmemory lives on disk, so nothing
    is refused or evicted and every key reads back."""
    c = conn()
    if server_mode(c) == 'persistent':
        c.close()
        return t_maxmemory_persistent()
    c.call('FLUSHALL')
    time.sleep(0.2)
    base = int(info_field(c, 'memory', 'used_memory'))
    limit = base + 4 * 1024 * 1024
    val = b'x' * 1000
    try:
        c.call('SET', 'keep', 'v')
        H.eq('CONFIG SET maxmemory-policy noeviction', c.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction'), OK)
        H.eq('CONFIG SET maxmemory', c.call('CONFIG', 'SET', 'maxmemory', str(limit)), OK)
        oom = None
        for i in range(0, 20000, 500):
            rs = c.pipeline([('SET', 'mm:%d' % j, val) for j in range(i, i + 500)])
            errs = [r for r in rs if r != OK]
            if errs:
                oom = errs[0]
                break
        H.eq('noeviction: writes over maxmemory get OOM', oom,
             ('error', b"OOM command not allowed when used memory > 'maxmemory'."))
        H.eq('noeviction: reads still served', c.call('GET', 'keep'), B('v'))
        H.eq('noeviction: DEL still served', c.call('DEL', 'mm:0'), I(1))
        H.eq('noeviction: nothing evicted', int(info_field(c, 'stats', 'evicted_keys')), 0)
        H.eq('CONFIG SET allkeys-lru', c.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru'), OK)
        refused = 0
        for i in range(20000, 40000, 500):
            rs = c.pipeline([('SET', 'mm:%d' % j, val) for j in range(i, i + 500)])
            refused += sum(1 for r in rs if r != OK)
        H.eq('allkeys-lru: no write refused', refused, 0)
        H.check('allkeys-lru: keys evicted', int(info_field(c, 'stats', 'evicted_keys')) > 0)
        used = int(info_field(c, 'memory', 'used_memory'))
        H.check('allkeys-lru: used_memory held near maxmemory', used < limit + 2 * 1024 * 1024, (limit, used))
        H.check('allkeys-lru: the newest key is there', c.call('GET', 'mm:39999') == B(val))
    finally:
        c.call('CONFIG', 'SET', 'maxmemory', '0')
        c.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
        c.call('FLUSHALL')
        c.close()


def t_maxmemory_persistent():
    c = conn()
    c.call('FLUSHALL')
    time.sleep(0.2)
    base = int(info_field(c, 'memory', 'used_memory'))
    val = b'p' * 1000
    try:
        for policy in ('noeviction', 'allkeys-lru'):
            H.eq('persistent: CONFIG SET maxmemory-policy ' + policy,
                 c.call('CONFIG', 'SET', 'maxmemory-policy', policy), OK)
        H.eq('persistent: CONFIG SET maxmemory', c.call('CONFIG', 'SET', 'maxmemory', str(base + (4 << 20))), OK)
        refused = []
        for i in range(0, 40000, 500):
            rs = c.pipeline([('SET', 'pm:%d' % j, val + b'%d' % j) for j in range(i, i + 500)])
            refused += [r for r in rs if r != OK]
        H.eq('persistent: 40 MB over a 4 MB maxmemory, no write refused', refused[:1], [])
        H.eq('persistent: every key kept', c.call('DBSIZE'), I(40000))
        H.eq('persistent: nothing evicted', int(info_field(c, 'stats', 'evicted_keys')), 0)
        rng = random.Random(5)
        sample = [rng.randrange(40000) for _ in range(300)]
        got = c.pipeline([('GET', 'pm:%d' % j) for j in sample])
        H.check('persistent: keys written long ago read back',
                all(g == B(val + b'%d' % j) for g, j in zip(got, sample)),
                [(j, g[:1]) for g, j in zip(got, sample) if g != B(val + b'%d' % j)][:3])
    finally:
        c.call('CONFIG', 'SET', 'maxmemory', '0')
        c.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
        c.call('FLUSHALL')
        c.close()


def t_limits():
    """timeout and maxclients set at run time; CLIENT KILL ADDR; CONFIG REWRITE
    without a config file."""
    c = conn()
    try:
        H.eq('CONFIG SET timeout 1', c.call('CONFIG', 'SET', 'timeout', '1'), OK)
        idle = Conn(PORT)
        idle.call('PING')
        t0 = time.time()
        closed = busy_ok = False
        while not closed and time.time() - t0 < 8:
            busy_ok = c.call('PING') == ('simple', b'PONG')  # c keeps busy meanwhile
            closed = idle.closed_by_peer(wait=0.3)
        H.check('an idle client is closed after timeout', closed and time.time() - t0 >= 0.9,
                (closed, time.time() - t0))
        idle.close()
        H.check('a busy client stays', busy_ok and c.call('CONFIG', 'SET', 'timeout', '0') == OK)
        n = int(info_field(c, 'clients', 'connected_clients'))
        H.eq('CONFIG SET maxclients', c.call('CONFIG', 'SET', 'maxclients', str(n + 2)), OK)
        extra = [Conn(PORT), Conn(PORT)]
        H.eq('up to maxclients: served', [x.call('PING') for x in extra], [('simple', b'PONG')] * 2)
        over = Conn(PORT)
        if CLUSTER:
            H.skip('over maxclients: refused at once', 'cluster mode keeps a connection over '
                   'maxclients until its first command, which may be a peer\'s KVD.PEER')
        else:
            try:
                r = over.read()
            except (EOFError, OSError) as e:
                r = ('no reply', str(e))
            H.eq('over maxclients: refused', r, ('error', b'ERR max number of clients reached'))
            H.check('over maxclients: closed', over.closed_by_peer())
        over.close()
        for x in extra:
            x.close()
        time.sleep(0.2)
        victim = Conn(PORT)
        victim.call('CLIENT', 'SETNAME', 'victim')
        addr = [l for l in plain(c.call('CLIENT', 'LIST')).split(b'\n') if b' name=victim ' in l]
        addr = addr[0].split(b' addr=')[1].split(b' ')[0] if addr else b'?'
        H.eq('CLIENT KILL ADDR (old form)', c.call('CLIENT', 'KILL', addr), OK)
        H.check('CLIENT KILL ADDR closed it', victim.closed_by_peer())
        victim.close()
        H.eq('CLIENT KILL unknown ADDR', c.call('CLIENT', 'KILL', '127.0.0.1:1'),
             ('error', b'ERR No such client'))
        H.eq('CLIENT KILL ADDR filter, none', c.call('CLIENT', 'KILL', 'ADDR', '127.0.0.1:1'), I(0))
        H.eq('CLIENT KILL ID SKIPME', c.call('CLIENT', 'KILL', 'ID', plain(c.call('CLIENT', 'ID')),
                                              'SKIPME', 'yes'), I(0))
        H.eq('CONFIG REWRITE without a config file', c.call('CONFIG', 'REWRITE'),
             ('error', b'ERR The server is running without a config file'))
    finally:
        c.call('CONFIG', 'SET', 'timeout', '0')
        c.call('CONFIG', 'SET', 'maxclients', '10000')
        c.close()


def t_huge_ttls():
    """Last, as it may bring a server down: the active expiry cycle samples keys
    whose TTLs sum past 2^63 ms."""
    c = conn()
    c.call('FLUSHALL')
    for i in range(4):
        c.call('SET', 'huge%d' % i, 'v', 'EX', '4611686018427387')
    time.sleep(0.5)
    ttl = plain(c.call('TTL', 'huge0'))
    H.check('huge TTLs survive the active expiry cycle',
            ttl in (4611686018427386, 4611686018427387), ttl)
    H.eq('server alive after sampling huge TTLs', c.call('PING'), ('simple', b'PONG'))
    c.call('FLUSHALL')
    c.close()


def main():
    for t in (t_handshake, t_strings, t_keys, t_expire, t_hashes, t_connection, t_server,
              t_pipeline, t_multi, t_binary, t_resp3, t_auth, t_protocol, t_maxmemory, t_limits, t_huge_ttls):
        H.case(t)
    return H.summary()


if __name__ == '__main__':
    sys.exit(main())
