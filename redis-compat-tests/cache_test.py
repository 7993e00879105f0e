#!/usr/bin/python3
"""redis-compat-tests/cache_test.py: cache mode proved from outside: maxmemory and the
eight eviction policies, LRU/LFU quality, OBJECT FREQ/IDLETIME, active and lazy
expiry, and the INFO memory fields.

Every case starts its own server (kvd or redis-server: the binary decides) on a free
loopback port with the maxmemory and policy it needs, and stops it by PID. The same
file runs against Redis itself, which is how its thresholds were chosen:
    cache_test.py --server /usr/bin/redis-server
    cache_test.py --server build/kvd [--asan]
Cases (each checks something that fails when the feature is missing):
  limit    for each policy: 4x maxmemory written, pipelined; used_memory sampled
           during the load never more than 5% over; evicted_keys > 0; noeviction
           answers the exact OOM error while GET and DEL work; volatile-* never evict
           a key without TTL, and answer OOM once no TTL key is left
  lru      approximated LRU: >= 90% of evicted keys come from the untouched half
           (redis-server measured in the same run as the reference, --reference)
  lfu      keys read 100 times survive a flood of single-use keys
  ttl      volatile-ttl evicts the nearest expiry first
  shrink   CONFIG SET maxmemory 64mb -> 4mb evicts down to it over the next moments
           without stalling PING
  object   OBJECT FREQ / IDLETIME and their errors; CLIENT NO-TOUCH (Redis >= 7.2)
  expire   active expiry of 1,000,000 1-second keys (100,000 with --asan); lazy
           expiry never returns an expired value (GET, EXISTS, MGET, TTL)
  info     INFO memory and stats fields exist and are sane
The eviction cases use maxmemory 32mb; --asan (the sanitizer build, ~3x slower)
uses 16mb, shrinks 16mb -> 1mb and expires 100,000 keys, with looser time limits.
Long cases, run only when named (tests/long/cache_long.sh): decay (LFU counter
decay over two minutes) and churn (20x maxmemory of mixed strings, APPENDs and
growing hashes per policy: the limit holds, RSS stays bounded, FLUSHALL frees).
--only NAME[,NAME..] runs some of them. Ends with "N passed, M failed".
"""
import argparse
import os
import random
import re
import sys
import threading
import time

from respclient import Conn, Harness, encode
from serverctl import Server

MB = 1 << 20
OOM_TEXT = b"OOM command not allowed when used memory > 'maxmemory'."
FREQ_ERR = (b'ERR An LFU maxmemory policy is not selected, access frequency not tracked. '
            b'Please note that when switching between policies at runtime LRU and LFU data '
            b'will take some time to adjust.')
IDLE_ERR = (b'ERR An LFU maxmemory policy is selected, idle time not tracked. Please note '
            b'that when switching between policies at runtime LRU and LFU data will take '
            b'some time to adjust.')
POLICIES = ['noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru',
            'volatile-lfu', 'volatile-random', 'volatile-ttl']

H = Harness('cache')
O = None  # parsed options


# ---------------------------------------------------------------------------------
# servers and fast pipelining
# ---------------------------------------------------------------------------------
def is_redis(binary):
    return 'redis-server' in os.path.basename(binary)


def start(binary, *extra, name='cache'):
    args = list(extra)
    if is_redis(binary):
        args += ['--enable-debug-command', 'local']  # DEBUG SET-ACTIVE-EXPIRE
    else:
        args += ['--mode', 'cache']  # kvd's default is persistent mode
    return Server(binary, extra=args, name=name)


class Srv:
    """A started server as a context manager: stopped (by PID) and removed on exit."""

    def __init__(self, binary, *extra):
        self.binary = binary
        self.extra = extra

    def __enter__(self):
        self.s = start(self.binary, *self.extra)
        return self.s

    def __exit__(self, *exc):
        self.s.stop()
        self.s.cleanup()


def conn(port, timeout=30.0):
    return Conn(port, timeout=timeout)


def info(c, section):
    """INFO section as {name: str}."""
    r = c.call('INFO', section)
    out = {}
    for line in r[1].decode(errors='replace').split('\r\n'):
        if ':' in line and not line.startswith('#'):
            k, v = line.split(':', 1)
            out[k] = v
    return out


def used_memory(c):
    return int(info(c, 'memory')['used_memory'])


def evicted(c):
    return int(info(c, 'stats')['evicted_keys'])


def keyspace_expires(c):
    m = re.search(r'expires=(\d+)', info(c, 'keyspace').get('db0', ''))
    return int(m.group(1)) if m else 0


def read_lines(c, n):
    """Reads n replies of one line each (SET, DEL, EXISTS, TTL, errors) from c; returns
    the lines as bytes, type byte included."""
    out = []
    while len(out) < n:
        i = c.buf.find(b'\r\n')
        if i < 0:
            d = c.sock.recv(1 << 20)
            if not d:
                raise EOFError('connection closed by server')
            c.buf += d
            continue
        # take as many complete lines as are buffered at once
        lines = c.buf.split(b'\r\n')
        take = min(n - len(out), len(lines) - 1)
        out.extend(lines[:take])
        c.buf = b'\r\n'.join(lines[take:])
    return out


def set_cmd(key, val, *opts):
    return encode(('SET', key, val) + opts)


def pipe_lines(c, cmds, batch=1000):
    """Sends commands with one-line replies in batches; returns all reply lines."""
    out = []
    for i in range(0, len(cmds), batch):
        chunk = cmds[i:i + batch]
        c.sock.sendall(b''.join(chunk))
        out.extend(read_lines(c, len(chunk)))
    return out


def exists_many(c, keys):
    """Whether each key exists, in order, through pipelined EXISTS (which does not
    touch LRU/LFU)."""
    lines = pipe_lines(c, [encode(('EXISTS', k)) for k in keys], 2000)
    return [ln == b':1' for ln in lines]


def fill_to(c, prefix, frac, maxmem, vsize, opts_fn=lambda i: ()):
    """Writes prefix+i keys of vsize bytes until used_memory >= frac * maxmem (checked
    every 500 keys). Returns the number written."""
    val = b'x' * vsize
    n = 0
    while True:
        cmds = [set_cmd('%s%07d' % (prefix, n + j), val, *opts_fn(n + j)) for j in range(500)]
        lines = pipe_lines(c, cmds, 500)
        bad = [ln for ln in lines if ln != b'+OK']
        if bad:
            raise RuntimeError('fill: %r' % bad[0])
        n += 500
        if used_memory(c) >= frac * maxmem or n > 5000000:
            return n


# ---------------------------------------------------------------------------------
# 1. the limit is honoured, per policy (4. volatile-* keep keys without TTL)
# ---------------------------------------------------------------------------------
def t_limit(policy):
    maxmem = O.mb * MB
    volatile = policy.startswith('volatile-')
    rnd = random.Random(1000 + POLICIES.index(policy))
    with Srv(O.server, '--maxmemory', '%dmb' % O.mb, '--maxmemory-policy', policy) as s:
        c, mon = conn(s.port), conn(s.port)
        written = i = max_used = oks = ooms = 0
        other = []
        plain_keys = []  # keys written without a TTL (volatile-*)
        while written < 4 * maxmem:
            cmds = []
            for _ in range(48):
                size = rnd.randint(100, 2000)
                key = 'k:%07d' % i
                if volatile and i % 10 != 0:
                    cmds.append(set_cmd(key, b'v' * size, 'EX', 3600 + i % 1000))
                else:
                    cmds.append(set_cmd(key, b'v' * size))
                    if volatile:
                        plain_keys.append(key)
                written += size
                i += 1
            c.sock.sendall(b''.join(cmds))
            max_used = max(max_used, used_memory(mon))
            for ln in read_lines(c, len(cmds)):
                if ln == b'+OK':
                    oks += 1
                elif ln == b'-' + OOM_TEXT:
                    ooms += 1
                else:
                    other.append(ln)
            if policy == 'noeviction' and ooms >= 2000:
                break  # the rest would be refused the same way
        max_used = max(max_used, used_memory(mon))
        print('limit: %s: %d SETs (%d MB), %d OK, %d OOM; peak used_memory sample %.2f MB '
              '(maxmemory %d MB)' % (policy, i, written // MB, oks, ooms, max_used / MB, O.mb))
        H.check('%s: used_memory <= maxmemory + 5%% during the load' % policy,
                max_used <= maxmem * 1.05, 'peak sample %d, maxmemory %d' % (max_used, maxmem))
        H.eq('%s: no reply other than OK and the OOM error' % policy, other[:3], [])
        H.eq('%s: PING after the load' % policy, c.call('PING'), ('simple', b'PONG'))
        ev = evicted(c)
        if policy == 'noeviction':
            H.check('noeviction: SET refused with the OOM error', ooms > 0 and oks > 0,
                    'oks %d ooms %d first other %r' % (oks, ooms, other[:1]))
            H.eq('noeviction: evicted_keys', ev, 0)
            H.eq('noeviction: DBSIZE counts the accepted SETs', c.call('DBSIZE'), ('int', oks))
            H.check('noeviction: GET still works', c.call('GET', 'k:0000000')[0] == 'bulk')
            n = c.call('DEL', *['k:%07d' % j for j in range(2000)])
            H.eq('noeviction: DEL still works', n, ('int', 2000))
            H.eq('noeviction: SET works again after DEL', c.call('SET', 'after', 'x'),
                 ('simple', b'OK'))
        else:
            H.eq('%s: no OOM while keys can be evicted' % policy, ooms, 0)
            H.check('%s: evicted_keys > 0' % policy, ev > 0, ev)
            size = c.call('DBSIZE')[1]
            H.check('%s: keys remain' % policy, size > 1000, size)
            H.eq('%s: DBSIZE + evicted_keys = keys written' % policy, size + ev, i)
        if volatile:
            ex = exists_many(c, plain_keys)
            H.check('%s: every key without TTL kept (%d)' % (policy, len(plain_keys)), all(ex),
                    '%d of %d lost' % (ex.count(False), len(ex)))
            oom_tail(policy, c, mon, maxmem)
        c.close()
        mon.close()


def oom_tail(policy, c, mon, maxmem):
    """volatile-*: keys without TTL written until the first refusal, which must come
    when no TTL key is left, with the exact error."""
    val = b'p' * 1000
    i = 0
    got = None
    while i * 1000 < 3 * maxmem and got is None:
        lines = pipe_lines(c, [set_cmd('p:%07d' % (i + j), val) for j in range(32)], 32)
        i += 32
        for ln in lines:
            if ln != b'+OK':
                got = ln
                break
    H.eq('%s: OOM once no TTL key is left' % policy, got, b'-' + OOM_TEXT)
    H.eq('%s: no TTL key left at the first OOM' % policy, keyspace_expires(mon), 0)
    H.eq('%s: GET still works at OOM' % policy, c.call('GET', 'p:0000000'), ('bulk', val))


# ---------------------------------------------------------------------------------
# 2. LRU quality
# ---------------------------------------------------------------------------------
def lru_quality(binary):
    """Fills allkeys-lru to ~90%, waits past the LRU clock's 1 s resolution, reads the
    first half, then writes new keys (reading the first half all along) until a
    quarter of the keys have been evicted. Returns (share of evictions from the
    untouched half, evicted count, detail)."""
    maxmem = O.mb * MB
    with Srv(binary, '--maxmemory', '%dmb' % O.mb, '--maxmemory-policy', 'allkeys-lru') as s:
        c = conn(s.port)
        n = fill_to(c, 'o:', 0.9, maxmem, 200)
        pre = evicted(c)
        time.sleep(2.2)
        half = ['o:%07d' % j for j in range(n // 2)]
        getall = [encode(('GET', k)) for k in half]
        for j in range(0, len(getall), 1000):
            c.sock.sendall(b''.join(getall[j:j + 1000]))
            for _ in range(len(getall[j:j + 1000])):
                c.read()
        val = b'y' * 200
        new = 0
        hot = 0
        while evicted(c) - pre < n // 4 and new < 2 * n:
            cmds = [set_cmd('n:%07d' % (new + j), val) for j in range(250)]
            new += 250
            reads = [getall[(hot + j) % len(getall)] for j in range(500)]
            hot += 500
            c.sock.sendall(b''.join(cmds + reads))
            for _ in range(len(cmds) + len(reads)):
                c.read()
        ex = exists_many(c, ['o:%07d' % j for j in range(n)])
        lost_hot = ex[:n // 2].count(False)
        lost_cold = ex[n // 2:].count(False)
        lost_new = exists_many(c, ['n:%07d' % j for j in range(new)]).count(False)
        total = lost_hot + lost_cold + lost_new
        c.close()
        share = lost_cold / total if total else 0.0
        return share, total, ('%d keys, evicted %d: untouched %d, read %d, new %d'
                              % (n, total, lost_cold, lost_hot, lost_new))


def t_lru():
    share, total, detail = lru_quality(O.server)
    print('lru: %s: %.1f%% from the untouched half (%s)' % (os.path.basename(O.server),
                                                            100 * share, detail))
    H.check('allkeys-lru: keys were evicted', total > 0, detail)
    H.check('allkeys-lru: >= 90% of evicted keys from the untouched half',
            share >= 0.90, '%.1f%%: %s' % (100 * share, detail))
    if O.reference and os.path.exists(O.reference) and O.reference != O.server:
        rs, _, rd = lru_quality(O.reference)
        print('lru: reference %s: %.1f%% from the untouched half (%s)'
              % (os.path.basename(O.reference), 100 * rs, rd))


# ---------------------------------------------------------------------------------
# 3. LFU keeps a hot set
# ---------------------------------------------------------------------------------
def t_lfu():
    maxmem = O.mb * MB
    with Srv(O.server, '--maxmemory', '%dmb' % O.mb, '--maxmemory-policy', 'allkeys-lfu') as s:
        c = conn(s.port)
        hot = ['hot:%04d' % j for j in range(500)]
        pipe_lines(c, [set_cmd(k, b'h' * 200) for k in hot])
        gets = [encode(('GET', k)) for k in hot]
        for _ in range(100):
            c.sock.sendall(b''.join(gets))
            for _ in gets:
                c.read()
        val = b'c' * 1000
        i = 0
        while i * 1000 < 4 * maxmem:
            lines = pipe_lines(c, [set_cmd('cold:%07d' % (i + j), val) for j in range(500)], 500)
            i += 500
            if lines.count(b'+OK') != len(lines):
                H.check('allkeys-lfu: flood SETs answered OK', False, lines[0])
                break
        ev = evicted(c)
        H.check('allkeys-lfu: evicted_keys > 0', ev > 0, ev)
        kept = exists_many(c, hot).count(True)
        cold = exists_many(c, ['cold:%07d' % j for j in range(0, i, 7)])
        print('lfu: %d of %d hot keys kept; %.1f%% of the flood kept; evicted %d'
              % (kept, len(hot), 100.0 * cold.count(True) / len(cold), ev))
        H.check('allkeys-lfu: >= 99% of the hot keys survive the flood', kept >= 0.99 * len(hot),
                '%d of %d' % (kept, len(hot)))
        H.check('allkeys-lfu: most of the flood evicted', cold.count(True) < 0.5 * len(cold))
        c.close()


# ---------------------------------------------------------------------------------
# 4. volatile-ttl: nearest expiry first
# ---------------------------------------------------------------------------------
def t_volatile_ttl():
    maxmem = O.mb * MB
    with Srv(O.server, '--maxmemory', '%dmb' % O.mb, '--maxmemory-policy', 'volatile-ttl') as s:
        c = conn(s.port)
        # even keys expire in about an hour, odd ones in a day
        n = fill_to(c, 't:', 0.9, maxmem, 200,
                    lambda i: ('EX', 3600 + i % 500) if i % 2 == 0 else ('EX', 86400 + i % 500))
        pre = evicted(c)
        new = 0
        val = b'z' * 200
        while evicted(c) - pre < n // 4 and new < 2 * n:
            pipe_lines(c, [set_cmd('u:%07d' % (new + j), val, 'EX', 172800) for j in range(500)])
            new += 500
        ex = exists_many(c, ['t:%07d' % j for j in range(n)])
        near = sum(1 for j in range(0, n, 2) if not ex[j])
        far = sum(1 for j in range(1, n, 2) if not ex[j])
        lost_new = exists_many(c, ['u:%07d' % j for j in range(new)]).count(False)
        total = near + far + lost_new
        print('volatile-ttl: evicted %d: nearest-expiry %d, far %d, new %d'
              % (total, near, far, lost_new))
        H.check('volatile-ttl: keys were evicted', total > 0)
        H.check('volatile-ttl: >= 90% of evictions among the nearest expiries',
                total > 0 and near >= 0.9 * total, (near, far, lost_new))
        c.close()


# ---------------------------------------------------------------------------------
# 5. CONFIG SET maxmemory lower
# ---------------------------------------------------------------------------------
def t_shrink():
    big_mb = 16 if O.asan else 64
    maxmem = big_mb * MB
    small = big_mb * MB // 16
    slow = 3.0 if O.asan else 1.0
    with Srv(O.server, '--maxmemory', '%dmb' % big_mb, '--maxmemory-policy',
             'allkeys-lru') as s:
        c, mon = conn(s.port), conn(s.port)
        n = fill_to(c, 's:', 0.9, maxmem, 16)
        lat = []
        stop = threading.Event()

        def pinger():
            p = conn(s.port)
            while not stop.is_set():
                t = time.perf_counter()
                p.call('PING')
                lat.append(time.perf_counter() - t)
                time.sleep(0.002)
            p.close()

        th = threading.Thread(target=pinger)
        th.start()
        time.sleep(0.2)
        t0 = time.perf_counter()
        r = c.call('CONFIG', 'SET', 'maxmemory', str(small))
        t_set = time.perf_counter() - t0
        reached = None
        while time.perf_counter() - t0 < 10:
            if used_memory(mon) <= small * 1.05:
                reached = time.perf_counter() - t0
                break
            time.sleep(0.05)
        time.sleep(0.2)
        stop.set()
        th.join()
        lat.sort()
        p99 = lat[int(len(lat) * 0.99)] if lat else 0
        print('shrink: %d keys, %dmb -> %dmb: CONFIG SET %.1f ms, under the limit after %s s; '
              'PING p99 %.1f ms, max %.1f ms (%d samples)'
              % (n, big_mb, big_mb // 16, 1000 * t_set, '%.2f' % reached if reached is not None else 'never',
                 1000 * p99, 1000 * (lat[-1] if lat else 0), len(lat)))
        H.eq('shrink: CONFIG SET maxmemory', r, ('simple', b'OK'))
        H.check('shrink: used_memory <= new maxmemory + 5% within 10 s', reached is not None,
                used_memory(mon))
        H.check('shrink: evicted_keys > 0', evicted(mon) > 0)
        H.check('shrink: CONFIG SET does not stall (< 250 ms)', t_set < 0.25 * slow,
                '%.0f ms' % (1000 * t_set))
        H.check('shrink: PING max latency < 250 ms while shrinking',
                lat and lat[-1] < 0.25 * slow, '%.0f ms' % (1000 * (lat[-1] if lat else 0)))
        H.eq('shrink: SET works at the new limit', c.call('SET', 'post', 'x'), ('simple', b'OK'))
        c.close()
        mon.close()


# ---------------------------------------------------------------------------------
# 6. OBJECT FREQ / IDLETIME, CLIENT NO-TOUCH
# ---------------------------------------------------------------------------------
def t_object():
    with Srv(O.server, '--maxmemory', '32mb', '--maxmemory-policy', 'allkeys-lfu') as s:
        c = conn(s.port)
        H.eq('lfu: CONFIG SET lfu-log-factor 0', c.call('CONFIG', 'SET', 'lfu-log-factor', '0'),
             ('simple', b'OK'))
        c.call('SET', 'f', 'value')
        f0 = c.call('OBJECT', 'FREQ', 'f')
        H.eq('lfu: OBJECT FREQ of a new key is LFU_INIT_VAL', f0, ('int', 5))
        H.eq('lfu: OBJECT FREQ does not count as an access', c.call('OBJECT', 'FREQ', 'f'), f0)
        for _ in c.pipeline([('GET', 'f')] * 100):
            pass
        H.eq('lfu: 100 reads at lfu-log-factor 0 add 100', c.call('OBJECT', 'FREQ', 'f'),
             ('int', 105))
        for _ in c.pipeline([('GET', 'f')] * 200):
            pass
        H.eq('lfu: the counter saturates at 255', c.call('OBJECT', 'FREQ', 'f'), ('int', 255))
        H.eq('lfu: OBJECT FREQ of a missing key', c.call('OBJECT', 'FREQ', 'nokey'),
             ('nullbulk',))
        H.eq('lfu: OBJECT IDLETIME error', c.call('OBJECT', 'IDLETIME', 'f'), ('error', IDLE_ERR))
        c.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru')
        H.eq('lru: OBJECT FREQ error', c.call('OBJECT', 'FREQ', 'f'), ('error', FREQ_ERR))
        c.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
        H.eq('noeviction: OBJECT FREQ error', c.call('OBJECT', 'FREQ', 'f'), ('error', FREQ_ERR))
        c.close()
    with Srv(O.server, '--maxmemory', '32mb', '--maxmemory-policy', 'allkeys-lru') as s:
        c, nt = conn(s.port), conn(s.port)
        ver = info(c, 'server').get('redis_version', '0')
        no_touch = nt.call('CLIENT', 'NO-TOUCH', 'on')
        for k in ('a', 'b', 'n'):
            c.call('SET', k, 'value-' + k)
        H.eq('lru: OBJECT IDLETIME of a new key', c.call('OBJECT', 'IDLETIME', 'a'), ('int', 0))
        time.sleep(2.2)
        H.check('lru: OBJECT IDLETIME grows', c.call('OBJECT', 'IDLETIME', 'a')[1] >= 2)
        c.call('GET', 'b')
        H.check('lru: a read resets OBJECT IDLETIME', c.call('OBJECT', 'IDLETIME', 'b')[1] <= 1)
        H.check('lru: OBJECT IDLETIME does not touch', c.call('OBJECT', 'IDLETIME', 'a')[1] >= 2)
        H.eq('lru: OBJECT IDLETIME of a missing key', c.call('OBJECT', 'IDLETIME', 'nokey'),
             ('nullbulk',))
        if no_touch[0] == 'error' and is_redis(O.server) and ver < '7.2':
            print('object: CLIENT NO-TOUCH skipped (redis %s has no NO-TOUCH)' % ver)
        else:
            H.eq('CLIENT NO-TOUCH on', no_touch, ('simple', b'OK'))
            H.eq('no-touch: GET answers', nt.call('GET', 'n'), ('bulk', b'value-n'))
            H.check('no-touch: a read leaves OBJECT IDLETIME',
                    c.call('OBJECT', 'IDLETIME', 'n')[1] >= 2)
            nt.call('TOUCH', 'n')
            H.check('no-touch: TOUCH still touches', c.call('OBJECT', 'IDLETIME', 'n')[1] <= 1)
        c.close()
        nt.close()


# ---------------------------------------------------------------------------------
# 7. active and lazy expiry
# ---------------------------------------------------------------------------------
def t_active_expire():
    n = 100000 if O.asan else 1000000
    with Srv(O.server) as s:
        c = conn(s.port, timeout=120)
        base = used_memory(c)
        cmds = [b'*5\r\n$3\r\nSET\r\n$11\r\nexp:%07d\r\n$1\r\nv\r\n$2\r\nPX\r\n$4\r\n1000\r\n' % j
                for j in range(n)]
        t0 = time.time()
        lines = pipe_lines(c, cmds, 10000)
        t_load = time.time() - t0
        peak = int(info(c, 'memory')['used_memory_peak'])
        H.eq('expire: %d SET PX 1000 answered OK' % n, lines.count(b'+OK'), n)
        del cmds, lines
        deadline = time.time() + 1 + 10  # the last key expires 1 s after the load
        size = None
        while time.time() < deadline:
            size = c.call('DBSIZE')[1]
            if size <= n // 100:
                break
            time.sleep(0.2)
        gone_at = time.time() - (deadline - 11)
        # the tables may shrink a moment after the keys are gone
        mem = used_memory(c)
        t_mem = time.time()
        while mem - base > 0.1 * (peak - base) and time.time() - t_mem < 5:
            time.sleep(0.2)
            mem = used_memory(c)
        exp = int(info(c, 'stats')['expired_keys'])
        print('expire: %d keys loaded in %.1f s; DBSIZE %s at %.1f s after the load; '
              'used_memory base %d, peak %d, after %d; expired_keys %d'
              % (n, t_load, size, gone_at, base, peak, mem, exp))
        H.check('expire: >= 99% of never-read 1 s keys gone within 10 s', size <= n // 100,
                'DBSIZE %s' % size)
        H.check('expire: expired_keys counts them', exp >= 0.99 * n, exp)
        H.check('expire: used_memory back near the baseline',
                mem - base <= 0.1 * (peak - base), 'base %d peak %d now %d' % (base, peak, mem))
        c.close()


def t_lazy_expire():
    with Srv(O.server) as s:
        c = conn(s.port)
        r = c.call('DEBUG', 'SET-ACTIVE-EXPIRE', '0')
        if r[0] != 'simple':
            print('lazy: DEBUG SET-ACTIVE-EXPIRE 0 not available (%r): active expiry may '
                  'remove some keys first' % (r,))
        keys = ['lz:%04d' % j for j in range(2000)]
        lines = pipe_lines(c, [set_cmd(k, 'v', 'PX', 50) for k in keys] +
                           [set_cmd('keep', 'v', 'PX', 100000)])
        t_ok = time.time()
        H.eq('lazy: SET PX 50 answered OK', lines.count(b'+OK'), len(keys) + 1)
        time.sleep(max(0.0, 0.1 - (time.time() - t_ok)))
        got = c.pipeline([('GET', k) for k in keys[:500]])
        H.eq('lazy: GET after 100 ms is nil', [g for g in got if g != ('nullbulk',)][:3], [])
        got = pipe_lines(c, [encode(('EXISTS', k)) for k in keys[500:1000]])
        H.eq('lazy: EXISTS after 100 ms is 0', [g for g in got if g != b':0'][:3], [])
        got = c.call('MGET', *keys[1000:1500])
        H.eq('lazy: MGET after 100 ms is all nil',
             [g for g in got[1] if g != ('nullbulk',)][:3] if got[0] == 'array' else got, [])
        got = pipe_lines(c, [encode(('TTL', k)) for k in keys[1500:]])
        H.eq('lazy: TTL after 100 ms is -2', [g for g in got if g != b':-2'][:3], [])
        H.eq('lazy: the long-lived key is there', c.call('GET', 'keep'), ('bulk', b'v'))
        H.eq('lazy: DBSIZE after the reads', c.call('DBSIZE'), ('int', 1))
        c.call('DEBUG', 'SET-ACTIVE-EXPIRE', '1')
        c.close()


# ---------------------------------------------------------------------------------
# 8. INFO memory fields
# ---------------------------------------------------------------------------------
def t_info():
    with Srv(O.server, '--maxmemory', '32mb', '--maxmemory-policy', 'allkeys-lru') as s:
        c = conn(s.port)
        m0 = info(c, 'memory')
        pipe_lines(c, [set_cmd('i:%05d' % j, b'w' * 1000) for j in range(1000)])
        m = info(c, 'memory')
        st = info(c, 'stats')
        for f in ('used_memory', 'used_memory_peak', 'used_memory_rss',
                  'mem_fragmentation_ratio', 'maxmemory', 'maxmemory_human',
                  'maxmemory_policy'):
            H.check('info: memory field %s' % f, f in m)
        H.check('info: stats field evicted_keys', 'evicted_keys' in st)
        try:
            used, peak, rss = (int(m['used_memory']), int(m['used_memory_peak']),
                               int(m['used_memory_rss']))
            frag = float(m['mem_fragmentation_ratio'])
        except (KeyError, ValueError) as e:
            H.check('info: numeric memory fields', False, e)
            return
        H.check('info: used_memory_peak >= used_memory', peak >= used, (peak, used))
        H.check('info: used_memory_rss > 0', rss > 0)
        H.check('info: mem_fragmentation_ratio > 0', frag > 0)
        grow = used - int(m0['used_memory'])
        H.check('info: 1000 x 1000-byte values grow used_memory by 0.9-2 MB',
                0.9e6 <= grow <= 2e6, grow)
        H.eq('info: maxmemory', m.get('maxmemory'), str(32 * MB))
        H.eq('info: maxmemory_human', m.get('maxmemory_human'), '32.00M')
        H.eq('info: maxmemory_policy', m.get('maxmemory_policy'), 'allkeys-lru')
        H.eq('info: evicted_keys is a count', st.get('evicted_keys', '').isdigit(), True)
        c.call('CONFIG', 'SET', 'maxmemory-policy', 'volatile-ttl')
        H.eq('info: maxmemory_policy follows CONFIG SET', info(c, 'memory').get('maxmemory_policy'),
             'volatile-ttl')
        c.close()


# ---------------------------------------------------------------------------------
# long cases (tests/long/cache_long.sh): LFU decay over minutes, mixed-type churn
# ---------------------------------------------------------------------------------
def t_lfu_decay():
    """lfu-log-factor 0 makes every access count; lfu-decay-time 1 takes one off per
    whole minute since the last access (Redis's LFUDecrAndReturn)."""
    with Srv(O.server, '--maxmemory', '32mb', '--maxmemory-policy', 'allkeys-lfu') as s:
        c = conn(s.port)
        c.call('CONFIG', 'SET', 'lfu-log-factor', '0')
        c.call('CONFIG', 'SET', 'lfu-decay-time', '1')
        if time.time() % 60 > 55:
            time.sleep(6)  # keep the accesses within one minute
        c.call('SET', 'd', 'value')
        c.call('SET', 'e', 'value')
        c.pipeline([('GET', 'd')] * 100 + [('GET', 'e')] * 100)
        minute = int(time.time() // 60)
        H.eq('decay: OBJECT FREQ after 100 reads', c.call('OBJECT', 'FREQ', 'd'), ('int', 105))
        time.sleep(max(0.0, (minute + 2) * 60 + 2 - time.time()))
        H.eq('decay: two minutes later the counter is 2 lower', c.call('OBJECT', 'FREQ', 'd'),
             ('int', 103))
        c.call('GET', 'e')
        H.eq('decay: a read decays, then counts', c.call('OBJECT', 'FREQ', 'e'), ('int', 104))
        c.call('CONFIG', 'SET', 'lfu-decay-time', '0')
        # OBJECT FREQ computes the decay without storing it: with no decay, the stored
        # counter shows again (as Redis)
        H.eq('decay: OBJECT FREQ does not store the decay', c.call('OBJECT', 'FREQ', 'd'),
             ('int', 105))
        c.close()


def t_churn(policy):
    """20x maxmemory of mixed writes (strings of 16 B..16 KB, APPEND growth, hashes
    growing field by field, overwrites; for volatile-* each followed by EXPIRE) with
    reads in between: the limit holds at every sample, then FLUSHALL gives the
    memory back."""
    maxmem = O.mb * MB
    rnd = random.Random(77)
    volatile = policy.startswith('volatile-')
    with Srv(O.server, '--maxmemory', '%dmb' % O.mb, '--maxmemory-policy', policy) as s:
        c, mon = conn(s.port), conn(s.port)
        base = used_memory(mon)
        written = max_used = 0
        bad = []
        while written < 20 * maxmem:
            cmds = []
            for _ in range(64):
                x = rnd.random()
                key = None
                if x < 0.5:
                    size = int(16 * 2 ** (rnd.random() * 10))
                    key = 's:%d' % rnd.randrange(200000)
                    cmds.append(set_cmd(key, b's' * size))
                elif x < 0.65:
                    size = rnd.randrange(1, 2000)
                    key = 'a:%d' % rnd.randrange(5000)
                    cmds.append(encode(('APPEND', key, b'a' * size)))
                elif x < 0.85:
                    size = rnd.randrange(8, 300)
                    fields = []
                    for _ in range(rnd.randrange(1, 10)):
                        fields += ['f%d' % rnd.randrange(300), b'h' * size]
                    key = 'h:%d' % rnd.randrange(20000)
                    cmds.append(encode(['HSET', key] + fields))
                    size *= len(fields) // 2
                elif x < 0.95:
                    cmds.append(encode(('GET', 's:%d' % rnd.randrange(200000))))
                    size = 0
                else:
                    cmds.append(encode(('HGETALL', 'h:%d' % rnd.randrange(20000))))
                    size = 0
                if key and volatile:  # every key has a TTL: nothing is refused
                    cmds.append(encode(('EXPIRE', key, 3600 + rnd.randrange(3600))))
                written += size
            c.sock.sendall(b''.join(cmds))
            max_used = max(max_used, used_memory(mon))
            for _ in cmds:
                r = c.read()
                if r[0] == 'error':
                    bad.append(r)
        m = info(mon, 'memory')
        print('churn %s: %d MB written; peak used_memory sample %.2f MB; rss %.1f MB; '
              'fragmentation %s; evicted %d'
              % (policy, written // MB, max_used / MB, int(m['used_memory_rss']) / MB,
                 m['mem_fragmentation_ratio'], evicted(mon)))
        H.eq('churn %s: no error replies' % policy, bad[:3], [])
        H.check('churn %s: used_memory <= maxmemory + 5%% at every sample' % policy,
                max_used <= 1.05 * maxmem, max_used)
        H.check('churn %s: used_memory_rss < 3x maxmemory' % policy,
                int(m['used_memory_rss']) < 3 * maxmem, m['used_memory_rss'])
        c.call('FLUSHALL')
        left = used_memory(mon)
        for _ in range(50):
            if left - base < 1 * MB:
                break
            time.sleep(0.1)
            left = used_memory(mon)
        H.check('churn %s: FLUSHALL gives the memory back' % policy, left - base < 1 * MB,
                'base %d, after FLUSHALL %d' % (base, left))
        c.close()
        mon.close()


CASES = {
    'limit': lambda: [H.case(t_limit, p) for p in POLICIES],
    'lru': lambda: H.case(t_lru),
    'lfu': lambda: H.case(t_lfu),
    'ttl': lambda: H.case(t_volatile_ttl),
    'shrink': lambda: H.case(t_shrink),
    'object': lambda: H.case(t_object),
    'expire': lambda: (H.case(t_active_expire), H.case(t_lazy_expire)),
    'info': lambda: H.case(t_info),
}
LONG_CASES = {
    'decay': lambda: H.case(t_lfu_decay),
    'churn': lambda: [H.case(t_churn, p) for p in ('allkeys-lru', 'allkeys-lfu',
                                                    'allkeys-random', 'volatile-lru',
                                                    'volatile-ttl')],
}


def main():
    global O
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', required=True, help='kvd or redis-server binary')
    ap.add_argument('--reference', default='/usr/bin/redis-server',
                    help="redis-server measured beside it for LRU quality ('' for none)")
    ap.add_argument('--asan', action='store_true', help='sanitizer build: smaller, slower')
    ap.add_argument('--only', default='', help='comma-separated case names: ' +
                    ','.join(list(CASES) + list(LONG_CASES)) + ' (the last two: only named)')
    O = ap.parse_args()
    O.mb = 16 if O.asan else 32  # maxmemory of the eviction cases
    O.server = os.path.abspath(O.server) if '/' in O.server else O.server
    if '/' not in O.server:
        import shutil
        O.server = shutil.which(O.server) or O.server
    names = [n for n in O.only.split(',') if n] or list(CASES)
    for name in names:
        t = time.time()
        (CASES.get(name) or LONG_CASES[name])()
        print('-- %s done in %.1f s (%d passed, %d failed so far)'
              % (name, time.time() - t, H.passed, H.failed), flush=True)
    sys.exit(H.summary())


if __name__ == '__main__':
    main()
