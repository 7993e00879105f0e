#!/usr/bin/python3
"""redis-compat-tests/persist_bigdata.py: a data set far larger than maxmemory lives
on disk, reads back exactly, and the process stays small.

With `--maxmemory 64mb` (persistent mode: it bounds memtables and caches, nothing
is evicted) writes --mb megabytes of 1 KiB values (key i's value is derived from
i, so a wrong or swapped value is seen), pipelined, then reads every key back with
pipelined MGETs and compares. VmRSS from /proc/PID/status is sampled every 0.2 s
while writing and reading and once at the end: its peak must stay below --rss-mb
(256). Then SHUTDOWN, restart, and 2000 random keys and DBSIZE are checked again.

Against a redis-server (checking the test itself) maxmemory is left off, as Redis
would refuse writes at the limit, and the RSS bound is skipped. With --asan the RSS
bound is skipped too (the sanitizer's shadow memory and quarantine are not kvd's).

Usage: persist_bigdata.py --server BIN [--mb 300] [--rss-mb 256] [--asan]
Ends with "N passed, M failed" (a line "K skipped" before it when checks are left out).
"""
import argparse
import random
import sys
import time

from persist_lib import PServer, RssSampler, Workdir, check_clean_stop, finish, load_strings
from respclient import Harness

VLEN = 1024


def key(i):
    return b'big:%d' % i


def value(i):
    head = b'%012d|' % i
    return (head * (VLEN // len(head) + 1))[:VLEN]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', required=True)
    ap.add_argument('--mb', type=int, default=300)
    ap.add_argument('--rss-mb', type=int, default=256)
    ap.add_argument('--maxmemory', default='64mb')
    ap.add_argument('--asan', action='store_true')
    a = ap.parse_args()
    h = Harness('persist_bigdata')
    skipped = []
    wd = Workdir('big')
    redis = 'redis-server' in a.server
    srv = PServer(a.server, wd.sub('data'), fsync='everysec',
                  maxmemory=None if redis else a.maxmemory, name='big')
    check_rss = not redis and not a.asan
    if not check_rss:
        skipped += ['VmRSS < %d MB while writing and reading' % a.rss_mb,
                    'VmRSS < %d MB at the end' % a.rss_mb]
    n = a.mb * 1024 * 1024 // VLEN
    t0 = time.time()
    try:
        srv.start()
        c = srv.conn(timeout=120)
        sampler = RssSampler(srv.pid())
        tw = time.time()
        step = 50000
        bad = 0
        first = None
        for lo in range(0, n, step):
            b, f = load_strings(c, ((key(i), value(i)) for i in range(lo, min(n, lo + step))),
                                batch=500)
            bad += b
            first = first or f
        tw = time.time() - tw
        h.check('SET of %d 1 KiB values (%d MB) all +OK' % (n, a.mb), bad == 0,
                '%d not OK, first %r' % (bad, first))
        print('write: %d keys, %.1f s, %.0f MB/s, peak RSS %d MB' %
              (n, tw, a.mb / tw, sampler.peak // 1024), flush=True)
        tr = time.time()
        wrong = 0
        detail = []
        per = 100
        for lo in range(0, n, per * 10):
            cmds = []
            for j in range(lo, min(n, lo + per * 10), per):
                cmds.append(['MGET'] + [key(i) for i in range(j, min(n, j + per))])
            reps = c.pipeline(cmds)
            for cmd, rep in zip(cmds, reps):
                if rep[0] != 'array':
                    wrong += len(cmd) - 1
                    detail.append('%s.. -> %r' % (cmd[1], rep))
                    continue
                for k, r in zip(cmd[1:], rep[1]):
                    i = int(k[4:])
                    if r != ('bulk', value(i)):
                        wrong += 1
                        if len(detail) < 5:
                            detail.append('%s -> %r' % (k, r if r[0] != 'bulk' else r[1][:40]))
        tr = time.time() - tr
        peak = sampler.stop()
        h.check('every one of %d keys reads back its value' % n, wrong == 0,
                '%d wrong: %s' % (wrong, detail))
        print('read: %.1f s, %.0f MB/s' % (tr, a.mb / tr), flush=True)
        end = srv.rss_kb()
        print('VmRSS peak %d MB while writing and reading, %d MB at the end (%d samples)'
              % (peak // 1024, end // 1024, sampler.samples), flush=True)
        if check_rss:
            h.check('VmRSS peak < %d MB while writing and reading' % a.rss_mb,
                    peak < a.rss_mb * 1024, '%d MB' % (peak // 1024))
            h.check('VmRSS < %d MB at the end' % a.rss_mb, end < a.rss_mb * 1024,
                    '%d MB' % (end // 1024))
        h.eq('DBSIZE', c.call('DBSIZE'), ('int', n))
        c.close()
        rc = srv.stop(how='shutdown', timeout=300)
        h.check('SHUTDOWN exits with status 0', rc == 0, 'status %r' % rc)
        ready = srv.start(timeout=300)
        print('restart: ready in %.2f s' % ready)
        c = srv.conn(timeout=120)
        rng = random.Random(1)
        ids = [rng.randrange(n) for _ in range(2000)]
        reps = c.pipeline([['GET', key(i)] for i in ids])
        wrong = sum(1 for i, r in zip(ids, reps) if r != ('bulk', value(i)))
        h.check('2000 random keys after the restart', wrong == 0, '%d wrong' % wrong)
        h.eq('DBSIZE after the restart', c.call('DBSIZE'), ('int', n))
        c.close()
        check_clean_stop(h, srv)
    except Exception as e:  # noqa: BLE001
        h.check('large data set test ran to the end', False, '%s: %s' % (type(e).__name__, e))
    finally:
        srv.kill9()
        wd.close()
    print('persist_bigdata: %.1f s' % (time.time() - t0))
    return finish(h, len(skipped), skipped)


if __name__ == '__main__':
    sys.exit(main())
