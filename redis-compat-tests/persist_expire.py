#!/usr/bin/python3
"""redis-compat-tests/persist_expire.py: expired keys in persistent mode are never
seen, also after a restart; FLUSHDB/FLUSHALL of 1M keys is fast and stays done.

  expiry   keys without TTL, keys with PX 300 (strings and hashes, set with SET
           PX, PSETEX, SET PXAT and PEXPIRE), keys with EX 100000; once the short
           ones are due: GET/HGETALL nil, EXISTS 0, TYPE none, TTL -2, not in KEYS
           or a full SCAN (also SCAN MATCH and TYPE), and DBSIZE (given the active
           expiry cycle up to 3 s, as Redis counts a due key until it reclaims it)
           counts only the live ones; with the active cycle off (DEBUG
           SET-ACTIVE-EXPIRE 0) reads still never return a due key.
  restart  keys set with PX 2500, SIGKILL at once, restart: once due (by the
           absolute deadline, not restart + TTL) they are gone the same ways;
           the EX 100000 keys keep TTL > 99000; the live ones stay.
  flush    --keys (1M) keys in db 1: FLUSHDB < 1 s; --keys keys over dbs 2 and 3:
           FLUSHALL < 1 s; SIGKILL, restart: every db is empty, sampled keys nil.
Times are printed.

Usage: persist_expire.py --server BIN [--keys 1000000] [--flush-limit 1.0]
Ends with "N passed, M failed".
"""
import argparse
import random
import sys
import time

from persist_lib import PServer, Workdir, check_clean_stop, pipe_raw
from respclient import Harness


def scan_all(c, *opts):
    keys = []
    cursor = b'0'
    for _ in range(100000):
        r = c.call('SCAN', cursor, 'COUNT', '500', *opts)
        cursor = r[1][0][1]
        keys += [k[1] for k in r[1][1][1]]
        if cursor == b'0':
            break
    return keys


def keys_of(c, pattern):
    r = c.call('KEYS', pattern)
    return sorted(k[1] for k in r[1])


def load(c, prefix, lo, hi, batch=5000):
    bad = 0
    for s in range(lo, hi, batch):
        e = min(hi, s + batch)
        payload = b''.join(b'*3\r\n$3\r\nSET\r\n$%d\r\n%s%d\r\n$8\r\n%08d\r\n'
                           % (len(prefix) + len(b'%d' % i), prefix, i, i % 100000000)
                           for i in range(s, e))
        b, _ = pipe_raw(c, payload, e - s)
        bad += b
    return bad


def check_gone(h, c, keys, hkeys, label):
    """keys/hkeys: due string and hash keys."""
    reps = c.pipeline([['GET', k] for k in keys] + [['HGETALL', k] for k in hkeys])
    h.check('%s: GET/HGETALL of %d due keys nil/empty' % (label, len(reps)),
            all(r in (('nullbulk',), ('array', [])) for r in reps),
            [r for r in reps if r not in (('nullbulk',), ('array', []))][:3])
    allk = keys + hkeys
    h.eq('%s: EXISTS of due keys' % label, c.call('EXISTS', *allk), ('int', 0))
    types = c.pipeline([['TYPE', k] for k in allk[:50]])
    h.check('%s: TYPE of due keys is none' % label,
            all(t == ('simple', b'none') for t in types), types[:3])
    ttls = c.pipeline([['TTL', k] for k in allk[:50]])
    h.check('%s: TTL of due keys is -2' % label, all(t == ('int', -2) for t in ttls), ttls[:3])
    h.eq('%s: KEYS lists no due key' % label, keys_of(c, '*:short:*'), [])
    found = [k for k in scan_all(c) if b':short:' in k]
    h.eq('%s: a full SCAN returns no due key' % label, found, [])
    h.eq('%s: SCAN MATCH returns no due key' % label, scan_all(c, 'MATCH', '*short*'), [])
    h.eq('%s: SCAN TYPE hash returns no due hash' % label,
         [k for k in scan_all(c, 'TYPE', 'hash') if b'short' in k], [])


def wait_dbsize(c, want, limit=3.0):
    t0 = time.time()
    while True:
        r = c.call('DBSIZE')
        if r == ('int', want) or time.time() - t0 > limit:
            return r


def write_set(c, tag, n, px_ms, now_ms):
    """n due-soon strings (4 ways of setting a TTL) and n/4 due-soon hashes; returns
    (string keys, hash keys)."""
    skeys, hkeys = [], []
    cmds = []
    for i in range(n):
        k = '%s:short:s%d' % (tag, i)
        skeys.append(k)
        w = i % 4
        if w == 0:
            cmds.append(['SET', k, 'v', 'PX', str(px_ms)])
        elif w == 1:
            cmds.append(['PSETEX', k, str(px_ms), 'v'])
        elif w == 2:
            cmds.append(['SET', k, 'v', 'PXAT', str(now_ms + px_ms)])
        else:
            cmds += [['SET', k, 'v'], ['PEXPIRE', k, str(px_ms)]]
    for i in range(n // 4):
        k = '%s:short:h%d' % (tag, i)
        hkeys.append(k)
        cmds += [['HSET', k, 'f', 'v', 'g', 'w'], ['PEXPIRE', k, str(px_ms)]]
    reps = c.pipeline(cmds)
    bad = [r for r in reps if r[0] == 'error']
    return skeys, hkeys, bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', required=True)
    ap.add_argument('--keys', type=int, default=1000000)
    ap.add_argument('--flush-limit', type=float, default=1.0)
    a = ap.parse_args()
    h = Harness('persist_expire')
    wd = Workdir('expire')
    srv = PServer(a.server, wd.sub('data'), fsync='always', name='expire')
    t0 = time.time()
    try:
        srv.start()
        c = srv.conn(timeout=120)
        # ---- expiry
        now = int(time.time() * 1000)
        live = ['e:live:%d' % i for i in range(500)]
        later = ['e:later:%d' % i for i in range(300)]
        c.pipeline([['SET', k, 'live'] for k in live] +
                   [['SET', k, 'later', 'EX', '100000'] for k in later])
        skeys, hkeys, bad = write_set(c, 'e', 800, 300, now)
        h.check('expiry: setup replies', not bad, bad[:3])
        time.sleep(0.6)
        check_gone(h, c, skeys, hkeys, 'expiry')
        h.eq('expiry: DBSIZE counts only live keys', wait_dbsize(c, len(live) + len(later)),
             ('int', len(live) + len(later)))
        # with the active cycle off, only lazy filtering protects reads
        r = c.call('DEBUG', 'SET-ACTIVE-EXPIRE', '0')
        h.eq('DEBUG SET-ACTIVE-EXPIRE 0', r, ('simple', b'OK'))
        now = int(time.time() * 1000)
        s2, h2, bad = write_set(c, 'f', 400, 300, now)
        time.sleep(0.6)
        check_gone(h, c, s2, h2, 'expiry, active cycle off')
        c.call('DEBUG', 'SET-ACTIVE-EXPIRE', '1')
        # ---- restart: absolute deadlines
        now = int(time.time() * 1000)
        s3, h3, bad = write_set(c, 'r', 400, 2500, now)
        h.check('restart: setup replies', not bad, bad[:3])
        c.close()
        srv.kill9()
        ready = srv.start()
        c = srv.conn(timeout=120)
        wait = now + 2500 - int(time.time() * 1000) + 300
        print('restart: ready in %.2f s; %d ms until the keys are due' % (ready, wait))
        h.check('restart: the node was back before the keys were due (else this checks '
                'less)', wait > 300, 'ready only after %.2f s' % ready)
        if wait > 0:
            time.sleep(wait / 1000.0)
        check_gone(h, c, s3, h3, 'after restart')
        ttls = c.pipeline([['TTL', k] for k in later])
        h.check('after restart: EX 100000 keys keep TTL > 99000',
                all(t[0] == 'int' and 99000 < t[1] <= 100000 for t in ttls), ttls[:3])
        vals = c.pipeline([['GET', k] for k in live])
        h.check('after restart: live keys are there', all(v == ('bulk', b'live') for v in vals))
        h.eq('after restart: DBSIZE counts only live keys',
             wait_dbsize(c, len(live) + len(later)), ('int', len(live) + len(later)))
        # ---- flush
        n = a.keys
        c.call('SELECT', '1')
        tl = time.time()
        bad = load(c, b'fl:', 0, n)
        print('flush: loaded %d keys in %.1f s' % (n, time.time() - tl), flush=True)
        h.check('flush: %d SETs +OK' % n, bad == 0, '%d not OK' % bad)
        h.eq('flush: DBSIZE of db 1', c.call('DBSIZE'), ('int', n))
        tf = time.time()
        r = c.call('FLUSHDB')
        tf = time.time() - tf
        print('FLUSHDB of %d keys: %.3f s' % (n, tf), flush=True)
        h.eq('FLUSHDB reply', r, ('simple', b'OK'))
        h.check('FLUSHDB of %d keys < %.1f s' % (n, a.flush_limit), tf < a.flush_limit,
                '%.3f s' % tf)
        h.eq('DBSIZE after FLUSHDB', c.call('DBSIZE'), ('int', 0))
        c.call('SELECT', '0')
        h.eq('FLUSHDB left db 0 alone', c.call('DBSIZE'), ('int', len(live) + len(later)))
        c.call('SELECT', '2')
        bad = load(c, b'fa:', 0, n // 2)
        c.call('SELECT', '3')
        bad += load(c, b'fb:', n // 2, n)
        h.check('flush: %d more SETs +OK' % n, bad == 0, '%d not OK' % bad)
        tf = time.time()
        r = c.call('FLUSHALL')
        tf = time.time() - tf
        print('FLUSHALL of %d keys: %.3f s' % (n + len(live) + len(later), tf), flush=True)
        h.eq('FLUSHALL reply', r, ('simple', b'OK'))
        h.check('FLUSHALL of %d keys < %.1f s' % (n, a.flush_limit), tf < a.flush_limit,
                '%.3f s' % tf)
        c.close()
        srv.kill9()
        ready = srv.start(timeout=300)
        print('restart after FLUSHALL: ready in %.2f s' % ready)
        c = srv.conn(timeout=60)
        sizes = []
        for db in range(16):
            c.call('SELECT', str(db))
            sizes.append(c.call('DBSIZE'))
        h.check('after FLUSHALL and SIGKILL: every database is empty',
                all(s == ('int', 0) for s in sizes), sizes)
        rng = random.Random(7)
        for db, prefix, lo, hi in ((1, 'fl:', 0, n), (2, 'fa:', 0, n // 2), (3, 'fb:', n // 2, n)):
            c.call('SELECT', str(db))
            ids = [rng.randrange(lo, hi) for _ in range(300)]
            got = c.pipeline([['GET', '%s%d' % (prefix, i)] for i in ids])
            h.check('after restart: flushed keys of db %d stay gone' % db,
                    all(g == ('nullbulk',) for g in got))
            h.eq('after restart: KEYS * of db %d' % db, keys_of(c, '*'), [])
        c.close()
        check_clean_stop(h, srv)
    except Exception as e:  # noqa: BLE001
        h.check('expire test ran to the end', False, '%s: %s' % (type(e).__name__, e))
    finally:
        srv.kill9()
        wd.close()
    print('persist_expire: %.1f s' % (time.time() - t0))
    return h.summary()


if __name__ == '__main__':
    sys.exit(main())
