#!/usr/bin/python3
"""redis-compat-tests/limits_test.py: bad counts, lengths and offsets, CLIENT REPLY
sequences and query-buffer trimming, kvd beside a real redis-server.

Starts the server under test (--kvd BIN) and redis-server (--redis BIN), each on a
free loopback port with its own dir, stopped by PID at the end. Then:
  1. every count, length, offset, index and time argument of every command family
     gets huge, negative, overflowing and malformed values (9223372036854775807,
     -9223372036854775808, 18446744073709551616, 1e400, nan, '', ...), alone and
     inside MULTI; each reply is compared with Redis's (errors byte for byte;
     SCAN as the set of keys a full iteration returns; random replies by shape).
     After each family the server must still answer PING;
  2. HRANDFIELD: Redis's range checks (WITHVALUES and +-LONG_MAX/2), and counts
     whose reply Redis would stream until it runs out of memory: kvd answers an
     error at once (no output limit) or closes the client at its output limit, as
     Redis does then;
  3. at the end the server under test must have stayed small: INFO used_memory and
     the peak RSS (VmHWM) grew by less than a few tens of MB;
  4. CLIENT REPLY ON/OFF/SKIP in every order up to four commands, pipelined and
     one at a time and inside MULTI: the raw bytes each server sends are compared
     (a reply that never comes fails on a timeout instead of hanging the test);
  5. the query buffer: after a 900 KiB request followed by a partial command, or
     after one big request on a busy connection, CLIENT LIST qbuf-free must come
     back under 64 KiB within a few seconds (the cron's trim), on both servers.
Ends with "N passed, M failed". Usage:
  limits_test.py --kvd BIN [--redis redis-server] [--kvd-arg=--mode --kvd-arg=cache]
"""
import argparse
import itertools
import os
import re
import socket
import sys
import time

from respclient import Conn, Harness, encode
from serverctl import Server

NUMS = ['9223372036854775807', '-9223372036854775808', '9223372036854775808',
        '-9223372036854775809', '18446744073709551616', '18446744073709551615', '1e400',
        'nan', 'inf', '-inf', '-1', '0', '-0', '1', '2', '4611686018427387904',
        '-4611686018427387904', '4611686018427387903', '-4611686018427387903',
        '2147483647', '2147483648', '-2147483649', '4294967296', '9223372036854775',
        '9223372036854776', '-9223372036854776', '536870911', '536870912', '1048575',
        '1048576', '1.5', '', ' 1', '+1', '0x10', 'abc']

SETUP = [['set', 's', 'hello'], ['set', 'i', '10'], ['set', 'f', '1.5'],
         ['hset', 'h', 'a', '1', 'b', '2', 'c', '3'], ['set', 'k', 'v']]

# (template, kind): N is replaced by each of NUMS. kinds: exact, scan (errors exact,
# else compared after a full iteration), shape (errors exact, else same wire type),
# hrand (errors exact, else same length and members of the hash).
FAMILIES = {
    'string': [
        (['getrange', 's', 'N', '2'], 'exact'), (['getrange', 's', '1', 'N'], 'exact'),
        (['substr', 's', 'N', 'N'], 'exact'), (['setrange', 's2', 'N', 'x'], 'exact'),
        (['setrange', 's', 'N', 'x'], 'exact'), (['setrange', 's', 'N', ''], 'exact'),
        (['setrange', 'nokey', 'N', ''], 'exact'), (['incrby', 'i', 'N'], 'exact'),
        (['decrby', 'i', 'N'], 'exact'), (['incrbyfloat', 'f', 'N'], 'exact'),
        (['set', 'k', 'v', 'ex', 'N'], 'exact'), (['set', 'k', 'v', 'px', 'N'], 'exact'),
        (['set', 'k', 'v', 'exat', 'N'], 'exact'), (['set', 'k', 'v', 'pxat', 'N'], 'exact'),
        (['setex', 'k', 'N', 'v'], 'exact'), (['psetex', 'k', 'N', 'v'], 'exact'),
        (['getex', 's', 'ex', 'N'], 'exact'), (['getex', 's', 'px', 'N'], 'exact'),
        (['getex', 's', 'exat', 'N'], 'exact'), (['getex', 's', 'pxat', 'N'], 'exact'),
    ],
    'hash': [
        (['hincrby', 'h', 'a', 'N'], 'exact'), (['hincrbyfloat', 'h', 'b', 'N'], 'exact'),
        (['hrandfield', 'h', 'N'], 'hrand'), (['hrandfield', 'h', 'N', 'withvalues'], 'hrand'),
        (['hrandfield', 'nokey', 'N'], 'exact'),
        (['hrandfield', 'nokey', 'N', 'withvalues'], 'exact'),
        (['hrandfield', 'h', 'N', 'withvalues', 'x'], 'exact'),
        (['hrandfield', 'h', 'N', 'foo'], 'exact'),
        (['hscan', 'h', 'N'], 'shape'), (['hscan', 'h', '0', 'count', 'N'], 'scan'),
        (['hscan', 'nokey', '0', 'count', 'N'], 'exact'),
    ],
    'keys': [
        (['scan', 'N'], 'shape'), (['scan', '0', 'count', 'N'], 'scan'),
        (['scan', '0', 'count', 'N', 'match', '*'], 'scan'),
        (['copy', 's', 's3', 'db', 'N'], 'exact'), (['copy', 's', 's3', 'db', 'N', 'foo'], 'exact'),
        (['select', 'N'], 'exact'), (['memory', 'usage', 's', 'samples', 'N'], 'shape'),
        (['expire', 'k', 'N'], 'exact'), (['pexpire', 'k', 'N'], 'exact'),
        (['expireat', 'k', 'N'], 'exact'), (['pexpireat', 'k', 'N'], 'exact'),
        (['expire', 'k', 'N', 'gt'], 'exact'),
    ],
    'server': [
        (['wait', '0', 'N'], 'exact'), (['wait', 'N', '1'], 'exact'),
        (['slowlog', 'get', 'N'], 'shape'), (['hello', 'N'], 'shape'),
        (['client', 'kill', 'id', 'N'], 'shape'), (['client', 'list', 'id', 'N'], 'shape'),
        (['client', 'no-evict', 'N'], 'exact'), (['client', 'reply', 'N'], 'exact'),
        (['config', 'set', 'maxmemory-samples', 'N'], 'exact'),
        (['config', 'set', 'slowlog-max-len', 'N'], 'exact'),
        (['config', 'set', 'timeout', 'N'], 'exact'),
        (['config', 'set', 'lfu-log-factor', 'N'], 'exact'),
        (['config', 'set', 'lfu-decay-time', 'N'], 'exact'),
        (['command', 'getkeys', 'get', 'N'], 'exact'),
    ],
    # memory values as Redis's memtoull reads them: no sign, saturating digits
    'config': [
        (['config', 'set', 'proto-max-bulk-len', 'N'], 'exact'),
        (['config', 'set', 'client-query-buffer-limit', 'N'], 'exact'),
        (['config', 'set', 'hash-max-listpack-value', 'N'], 'exact'),
        (['config', 'get', 'hash-max-listpack-value'], 'exact'),
        (['config', 'set', 'hash-max-listpack-entries', 'N'], 'exact'),
        (['config', 'set', 'maxmemory', 'N'], 'exact'),
        (['config', 'set', 'maxmemory', 'Ngb'], 'exact'),
        (['config', 'set', 'client-output-buffer-limit', 'normal N 0 0'], 'exact'),
        (['config', 'set', 'client-output-buffer-limit', 'normal 0 N 0'], 'exact'),
        (['config', 'set', 'client-output-buffer-limit', 'normal 0 0 N'], 'exact'),
    ],
}
# the settings those families may change, put back after each case
RESET_CONFIG = [('client-output-buffer-limit', 'normal 0 0 0'), ('maxmemory', '0'), ('client-query-buffer-limit', '1gb'),
                ('hash-max-listpack-value', '64'), ('hash-max-listpack-entries', '128'),
                ('maxmemory-samples', '5'), ('slowlog-max-len', '128'), ('timeout', '0'),
                ('lfu-log-factor', '10'), ('lfu-decay-time', '1')]


def known_difference(args, n):
    """kvd keeps maxmemory in a signed 64-bit value: Redis accepts (and reports)
    maxmemory values from 2^63 to 2^64-1, kvd refuses them as out of bounds.
    client-output-buffer-limit: Redis splits the value at each single blank ('' is
    an argument), kvd at runs of blanks. Tiny output limits close the test's own
    connection on both servers: left out."""
    if args[:3] == ['config', 'set', 'client-output-buffer-limit']:
        return n == '' or ' ' in n or (n in ('1', '2', '+1') and not args[3].endswith(n))
    if args[:3] == ['config', 'set', 'maxmemory']:
        v = args[3][:-2] if args[3].endswith('gb') else args[3]
        mul = 1 << 30 if args[3].endswith('gb') else 1
        return v.isdigit() and int(v) * mul >= 1 << 63
    return False


def redis_would_hang(args):
    """Requests Redis 7.0 serves by streaming a reply for (practically) ever: a
    repeating HRANDFIELD with a big count inside Redis's range, and WAIT with
    replicas and no timeout (blocks: kvd has no replicas and answers 0)."""
    if args[0] == 'hrandfield' and len(args) >= 3 and args[1] == 'h':
        try:
            n = int(args[2])
        except ValueError:
            return False
        limit = (1 << 62) - 1 if len(args) == 4 and args[3] == 'withvalues' else (1 << 63) - 1
        return n < -1000 and n >= -limit
    return False


def full_scan(conn, args):
    """Runs SCAN/HSCAN from cursor 0 to the end with args' options; returns the
    sorted elements, or the first error reply."""
    seen = []
    cur = b'0'
    for _ in range(1000):
        r = conn.call(*[cur if a == '0' and i == (2 if args[0] == 'hscan' else 1) else a
                        for i, a in enumerate(args)])
        if r[0] != 'array':
            return r
        cur = r[1][0][1]
        items = [x[1] for x in r[1][1][1]]
        if args[0] == 'hscan':
            seen += [items[i] + b'=' + items[i + 1] for i in range(0, len(items), 2)]
        else:
            seen += items
        if cur == b'0':
            return sorted(set(seen))
    return ('error', b'scan did not end in 1000 calls')


def compare(kind, args, ra, rb, ca, cb):
    if ra[0] == 'error' or rb[0] == 'error' or kind == 'exact':
        return ra == rb
    if kind == 'shape':
        return ra[0] == rb[0]
    if kind == 'scan':
        return full_scan(ca, args) == full_scan(cb, args)
    if kind == 'hrand':
        if ra[0] != rb[0] or ra[0] != 'array' or len(ra[1]) != len(rb[1]):
            return False
        names = {b'a', b'b', b'c', b'1', b'2', b'3'}
        return all(x[0] == 'bulk' and x[1] in names for x in ra[1])
    return False


def reset(conns):
    for conn in conns:
        conn.call('client', 'reply', 'on')
        conn.call('select', '0')
        conn.call('flushall')
        for name, value in RESET_CONFIG:
            conn.call('config', 'set', name, value)
        # small enough that SETRANGE just under it is cheap on both servers
        conn.call('config', 'set', 'proto-max-bulk-len', '1048576')
        for cmd in SETUP:
            conn.call(*cmd)


def alive(port):
    try:
        c = Conn(port, timeout=5)
        ok = c.call('ping') == ('simple', b'PONG')
        c.close()
        return ok
    except OSError:
        return False


def test_families(h, a, b):
    ca, cb = Conn(a.port), Conn(b.port)
    for fam, templates in FAMILIES.items():
        for tmpl, kind in templates:
            for n in NUMS:
                args = [x.replace('N', n) for x in tmpl]
                if redis_would_hang(args) or known_difference(args, n):
                    continue
                for multi in (False, True):
                    reset((ca, cb))
                    if multi:
                        ca.call('multi')
                        cb.call('multi')
                        qa, qb = ca.call(*args), cb.call(*args)
                        ra, rb = ca.call('exec'), cb.call('exec')
                        if qa != qb:
                            ra, rb = qa, qb
                        elif ra[0] == 'array' and rb[0] == 'array' and len(ra[1]) == 1 == len(rb[1]):
                            ra, rb = ra[1][0], rb[1][0]
                        if kind == 'scan':
                            kind_m = 'shape'  # the full iteration runs outside MULTI
                        else:
                            kind_m = kind
                    else:
                        ra, rb = ca.call(*args), cb.call(*args)
                        kind_m = kind
                    if args[:2] == ['config', 'set'] and ra == rb:
                        ra = ca.call('config', 'get', args[2])
                        rb = cb.call('config', 'get', args[2])
                    h.check('%s: %s%s' % (fam, ' '.join(repr(x) if x == '' or ' ' in x else x
                                                         for x in args), ' (in MULTI)' if multi else ''),
                            compare(kind_m, args, ra, rb, ca, cb),
                            'kvd %r redis %r' % (ra, rb))
        h.check('%s: kvd still answers PING' % fam, alive(a.port))
    ca.close()
    cb.close()


def test_hrandfield(h, a, b):
    ca, cb = Conn(a.port, timeout=10), Conn(b.port, timeout=10)
    reset((ca, cb))
    # Redis's range checks, before the key is looked up
    for args in (['hrandfield', 'h', '-9223372036854770000', 'withvalues'],
                 ['hrandfield', 'h', '-4611686018427387904', 'withvalues'],
                 ['hrandfield', 'h', '4611686018427387904', 'withvalues'],
                 ['hrandfield', 'nokey', '-4611686018427387904', 'withvalues'],
                 ['hrandfield', 'h', '-9223372036854775808'],
                 ['hrandfield', 'h', '-9223372036854775808', 'withvalues']):
        h.eq('hrandfield: %s' % ' '.join(args[1:]), ca.call(*args), cb.call(*args))
    h.eq('hrandfield h -9223372036854770000 WITHVALUES: Redis\'s exact error',
         ca.call('hrandfield', 'h', '-9223372036854770000', 'withvalues'),
         ('error', b'ERR value is out of range'))
    # a missing key is an empty array whatever the count, as Redis
    h.eq('hrandfield: missing key, count -9223372036854775807',
         ca.call('hrandfield', 'nokey', '-9223372036854775807'), ('array', []))
    if os.environ.get('COMPAT_TARGET', 'kvd') != 'kvd':
        ca.close()
        cb.close()
        return  # the rest is what kvd promises beyond Redis (which would stream on)
    # counts Redis would stream until out of memory: kvd says no at once
    for n in ('-9223372036854770000', '-9223372036854775807', '-4611686018427387903',
              '-100000000'):
        for wv in ([], ['withvalues']):
            t = time.time()
            r = ca.call('hrandfield', 'h', n, *wv)
            h.eq('hrandfield h %s %s (no output limit): an error' % (n, ' '.join(wv)),
                 r, ('error', b'ERR value is out of range'))
            h.check('hrandfield h %s: answered within 2 s' % n, time.time() - t < 2.0)
    # a big repeating count that fits: served in full, each element a field
    r = ca.call('hrandfield', 'h', '-20000')
    h.check('hrandfield h -20000: 20000 fields', r[0] == 'array' and len(r[1]) == 20000 and
            all(x[1] in (b'a', b'b', b'c') for x in r[1]), str(r)[:200])
    # with an output limit, Redis 7.0 stops and closes the client: so does kvd
    for conn in (ca, cb):
        conn.call('config', 'set', 'client-output-buffer-limit', 'normal 4mb 0 0')
    for args in (['hrandfield', 'h', '-4611686018427387903', 'withvalues'],
                 ['hrandfield', 'h', '-100000000']):
        got = []
        for s in (a, b):
            conn = Conn(s.port, timeout=10)
            conn.send(*args)
            got.append(conn.closed_by_peer(wait=10.0))
            conn.close()
        h.eq('hrandfield %s with a 4mb output limit: client closed (kvd, redis)'
             % ' '.join(args[1:]), got, [True, True])
    for conn in (ca, cb):
        conn.call('config', 'set', 'client-output-buffer-limit', 'normal 0 0 0')
    h.check('hrandfield: kvd still answers PING', alive(a.port))
    ca.close()
    cb.close()


def memory(server):
    c = Conn(server.port)
    info = c.call('info', 'memory')[1]
    c.close()
    used = int(re.search(rb'used_memory:(\d+)', info).group(1))
    with open('/proc/%d/status' % server.proc.pid) as f:
        st = f.read()
    hwm = int(re.search(r'VmHWM:\s+(\d+) kB', st).group(1)) * 1024
    return used, hwm


# ---- CLIENT REPLY ----

REPLY_CMDS = {'ON': ['client', 'reply', 'on'], 'OFF': ['client', 'reply', 'off'],
              'SKIP': ['client', 'reply', 'skip']}


def reply_bytes(port, seq, pipelined, multi):
    """Sends seq (names of REPLY_CMDS, or 'E<n>' for ECHO <n>), then CLIENT REPLY ON
    and ECHO END, and returns every byte received up to END's reply ('TIMEOUT'
    appended when it does not come within 3 s)."""
    cmds = [REPLY_CMDS[x] if x in REPLY_CMDS else ['echo', x] for x in seq]
    if multi:
        cmds = [['multi']] + cmds + [['exec']]
    cmds += [['client', 'reply', 'on'], ['echo', 'END']]
    s = socket.create_connection(('127.0.0.1', port), timeout=3)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b''
    try:
        if pipelined:
            s.sendall(b''.join(encode(c) for c in cmds))
        else:
            for c in cmds[:-2]:
                s.sendall(encode(c))
                s.settimeout(0.02)  # a reply that is due comes well within this
                try:
                    while True:
                        d = s.recv(65536)
                        if not d:
                            break
                        buf += d
                except socket.timeout:
                    pass
            s.settimeout(3)
            s.sendall(encode(cmds[-2]) + encode(cmds[-1]))
        deadline = time.time() + 3
        while not buf.endswith(b'$3\r\nEND\r\n'):
            if time.time() > deadline:
                return buf + b'TIMEOUT'
            d = s.recv(65536)
            if not d:
                return buf + b'CLOSED'
            buf += d
    except socket.timeout:
        return buf + b'TIMEOUT'
    finally:
        s.close()
    return buf


def test_client_reply(h, a, b):
    # the bug that started this: SKIP then ON must answer +OK at once
    h.eq('client reply: SKIP then ON answers +OK (kvd)',
         reply_bytes(a.port, ['SKIP'], True, False), b'+OK\r\n$3\r\nEND\r\n')
    alphabet = ['ON', 'OFF', 'SKIP', 'E1']
    seqs = []
    for n in range(1, 5):
        seqs += [list(p) for p in itertools.product(alphabet, repeat=n)]
    for seq in seqs:
        for pipelined, multi in ((True, False), (False, False), (True, True)):
            if (not pipelined and len(seq) > 3) or (multi and len(seq) > 3):
                continue  # the shorter ones cover these modes; keeps the suite quick
            ka = reply_bytes(a.port, seq, pipelined, multi)
            kb = reply_bytes(b.port, seq, pipelined, multi)
            h.check('client reply %s%s%s' % (' '.join(seq), ' pipelined' if pipelined else '',
                                             ' in MULTI' if multi else ''),
                    ka == kb, 'kvd %r redis %r' % (ka, kb))


# ---- query buffer ----

def client_qbuf(mon, cid):
    r = mon.call('client', 'list', 'id', str(cid))
    line = r[-1] if r[0] == 'verbatim' else r[1]
    m = dict(re.findall(rb'(\S+)=(\S*)', line))
    if b'qbuf' not in m:
        raise RuntimeError('CLIENT LIST ID %s: %r' % (cid, r))
    return int(m[b'qbuf']), int(m[b'qbuf-free'])


def wait_qbuf_small(mon, cid, keep_busy=None, limit=6.0):
    deadline = time.time() + limit
    while True:
        q = client_qbuf(mon, cid)
        if q[1] < 64 * 1024 or time.time() > deadline:
            return q
        if keep_busy:
            keep_busy()
        time.sleep(0.1)


def test_qbuf(h, s, name):
    mon = Conn(s.port)
    mon.call('config', 'set', 'proto-max-bulk-len', '512mb')  # the families set 1mb
    # an idle client: a 900 KiB request then the start of another one
    a = Conn(s.port)
    aid = a.call('client', 'id')[1]
    a.send_raw(encode(['set', 'big', 'x' * 900 * 1024]) + b'*1\r\n$4\r\nPI')
    time.sleep(0.2)
    qbuf, free = wait_qbuf_small(mon, aid)
    h.check('%s: idle client after a 900 KiB request and a partial one: qbuf-free < 64 KiB'
            % name, free < 64 * 1024, 'qbuf=%d qbuf-free=%d' % (qbuf, free))
    h.eq('%s: the partial command is kept (qbuf)' % name, qbuf > 0, True)
    a.send_raw(b'NG\r\n')
    h.eq('%s: and completes afterwards' % name, [a.read(), a.read()],
         [('simple', b'OK'), ('simple', b'PONG')])
    # a busy client that once sent a big request
    d = Conn(s.port)
    did = d.call('client', 'id')[1]
    d.send_raw(encode(['set', 'big', 'x' * 900 * 1024]) + b'*1\r\n$4\r\nPI')
    d.send_raw(b'NG\r\n')
    d.read()
    d.read()
    qbuf, free = wait_qbuf_small(mon, did, keep_busy=lambda: d.call('ping'))
    h.check('%s: busy client after a 900 KiB request: qbuf-free < 64 KiB' % name,
            free < 64 * 1024, 'qbuf=%d qbuf-free=%d' % (qbuf, free))
    # a client in the middle of a 3 MiB argument keeps what it sent
    e = Conn(s.port)
    eid = e.call('client', 'id')[1]
    req = encode(['set', 'big', 'y' * 3 * 1024 * 1024])
    e.send_raw(req[:2 * 1024 * 1024])
    time.sleep(0.3)
    wait_qbuf_small(mon, eid, limit=1.0)
    e.send_raw(req[2 * 1024 * 1024:])
    h.eq('%s: a big argument sent in pieces across the cron still arrives' % name, e.read(),
         ('simple', b'OK'))
    h.eq('%s: ... intact' % name, mon.call('strlen', 'big'), ('int', 3 * 1024 * 1024))
    for c in (a, d, e, mon):
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--kvd', required=True)
    ap.add_argument('--redis', default='redis-server')
    ap.add_argument('--kvd-arg', action='append', default=[])
    o = ap.parse_args()
    redis_bin = o.redis if '/' in o.redis else next(
        (os.path.join(d, o.redis) for d in os.environ.get('PATH', '').split(':')
         if os.access(os.path.join(d, o.redis), os.X_OK)), o.redis)
    h = Harness('limits')
    a = b = None
    try:
        a = Server(o.kvd, o.kvd_arg, name='kvd')
        b = Server(redis_bin, [], name='redis')
        c = Conn(a.port)
        reset((c,))
        c.close()
        used0, hwm0 = memory(a)
        h.case(test_families, h, a, b)
        h.case(test_hrandfield, h, a, b)
        if a.proc.poll() is None:
            c = Conn(a.port)
            c.call('flushall')
            c.close()
            used1, hwm1 = memory(a)
            h.check('kvd used_memory grew by less than 32 MB after the bad requests',
                    used1 - used0 < 32 << 20, 'before %d after %d' % (used0, used1))
            h.check('kvd peak RSS grew by less than 64 MB after the bad requests',
                    hwm1 - hwm0 < 64 << 20, 'before %d after %d' % (hwm0, hwm1))
        h.case(test_client_reply, h, a, b)
        h.case(test_qbuf, h, a, 'kvd')
        h.case(test_qbuf, h, b, 'redis')
        h.check('kvd still answers PING at the end', alive(a.port))
    except Exception as e:  # noqa: BLE001 - a crash of the harness is a failure
        h.check('limits suite ran', False, '%s: %s' % (type(e).__name__, e))
    finally:
        for s in (a, b):
            if s is not None:
                rc = s.stop()
                if s is a and rc not in (0, None):
                    h.check('kvd exit status after SIGTERM', False, str(rc))
                s.cleanup()
    return h.summary()


if __name__ == '__main__':
    sys.exit(main())
