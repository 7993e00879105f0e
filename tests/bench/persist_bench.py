#!/usr/bin/python3
"""tests/bench/persist_bench.py: kvd's persistent mode beside redis-server with AOF,
run by tests/bench/persist.sh (see there). Usage:
    persist_bench.py KVD [--redis redis-server] [--rounds 3] [--quick] [--out FILE]
"""
import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, '..', '..', 'redis-compat-tests'))
from persist_lib import PServer, Workdir, load_strings  # noqa: E402

TESTS = ['set', 'get', 'incr', 'hset']


HSET_KEYSPACE = 1000  # fields of redis-benchmark's one hash "myhash"
HSET_N = 500000  # as many as the other tests (at most n)
TIMEOUT = 120


def bench(port, tests, pipeline, size, n, keyspace=100000, clients=50, timeout=TIMEOUT):
    """One redis-benchmark run: {TEST: (rps, p99_ms)}; a run past `timeout` seconds
    gives {TEST: ('timeout', None)}."""
    args = ['redis-benchmark', '-h', '127.0.0.1', '-p', str(port), '-c', str(clients),
            '-n', str(n), '-P', str(pipeline), '-d', str(size), '-r', str(keyspace),
            '-t', ','.join(tests), '--csv']
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return {t.upper(): ('timeout', None) for t in tests}
    res = {}
    for row in csv.reader(io.StringIO(out)):
        if len(row) >= 7 and row[0] != 'test':
            try:
                res[row[0].split()[0].upper()] = (float(row[1]), float(row[6]))
            except ValueError:
                pass
    return res


def bench_all(port, pipeline, size, n):
    """SET, GET, INCR over 100000 keys; HSET over the 1000 fields of one hash (each
    HSET is a read-modify-write of the hash, so its size matters), which is
    deleted afterwards so every run starts alike."""
    r = bench(port, ['set', 'get', 'incr'], pipeline, size, n)
    r.update(bench(port, ['hset'], pipeline, size, min(n, HSET_N), keyspace=HSET_KEYSPACE))
    subprocess.run(['redis-cli', '-h', '127.0.0.1', '-p', str(port), 'DEL', 'myhash'],
                   capture_output=True, timeout=600)
    return r


def med(xs):
    if any(x == 'timeout' for x in xs):
        return 'timeout'
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f_rps(x):
    if x == 'timeout':
        return '>%ds' % TIMEOUT
    return '%.0f' % x if x is not None else '-'


def f_ms(x):
    return '%.2f' % x if x is not None else '-'


def f_ratio(a, b):
    ok = isinstance(a, float) and isinstance(b, float) and b > 0
    return '%.2f' % (a / b) if ok else '-'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kvd')
    ap.add_argument('--redis', default='redis-server')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    redis = shutil.which(a.redis) or a.redis
    rounds = 1 if a.quick else a.rounds
    n_for = {1: 30000 if a.quick else 100000, 16: 100000 if a.quick else 500000}
    big_mb = 64 if a.quick else 320
    wd = Workdir('bench')
    servers = {}
    lines = []

    def emit(s=''):
        print(s, flush=True)
        lines.append(s)

    try:
        servers['kvd-es'] = PServer(a.kvd, wd.sub('kvd-es'), fsync='everysec', name='kvd-es')
        servers['redis-es'] = PServer(redis, wd.sub('redis-es'), fsync='everysec',
                                      name='redis-es')
        servers['kvd-al'] = PServer(a.kvd, wd.sub('kvd-al'), fsync='always', name='kvd-al')
        servers['redis-al'] = PServer(redis, wd.sub('redis-al'), fsync='always',
                                      name='redis-al')
        cache = PServer(a.kvd, wd.sub('kvd-cache'), name='kvd-cache')
        cache.args = lambda: [cache.binary, '--port', str(cache.port), '--bind', '127.0.0.1',
                              '--dir', cache.dir, '--mode', 'cache']
        servers['kvd-cache'] = cache
        for s in servers.values():
            s.start()
        # results[(test, P, size)][server] = [(rps, p99), ...]
        results = {}
        order = [('kvd-es', 'redis-es'), ('kvd-al', 'redis-al')]
        t0 = time.time()
        for rnd in range(rounds):
            for p in (1, 16):
                for size in (16, 1024):
                    names = [x for pair in order for x in pair]
                    if p == 16:
                        names.append('kvd-cache')
                    if rnd % 2:  # alternate who goes first
                        names = [names[i ^ 1] if i < 4 else names[i] for i in range(len(names))]
                    for name in names:
                        r = bench_all(servers[name].port, p, size, n_for[p])
                        for t in TESTS:
                            results.setdefault((t.upper(), p, size), {}).setdefault(
                                name, []).append(r.get(t.upper(), (None, None)))
                    print('round %d P%d %dB done (%.0f s)' % (rnd, p, size, time.time() - t0),
                          flush=True)

        def m(key, name, i):
            return med([x[i] for x in results.get(key, {}).get(name, [])])

        emit('kvd --mode persistent beside redis-server --appendonly yes: redis-benchmark '
             '-c 50 -r 100000, median of %d rounds (alternating)' % rounds)
        emit('es = appendfsync everysec, al = appendfsync always; rps = requests/s; '
             'p99 in ms; ratio = kvd/redis; HSET: -r %d -n %d (one hash of up to %d '
             'fields), a run past %d s shows >%ds' % (HSET_KEYSPACE, HSET_N, HSET_KEYSPACE,
                                                      TIMEOUT, TIMEOUT))
        hdr = ('%-5s %3s %5s | %9s %9s %5s %6s %6s | %9s %9s %5s %6s %6s | %9s %5s'
               % ('test', 'P', 'size', 'kvd-es', 'redis-es', 'ratio', 'p99 k', 'p99 r',
                  'kvd-al', 'redis-al', 'ratio', 'p99 k', 'p99 r', 'kvd-cache', 'al/c'))
        emit(hdr)
        emit('-' * len(hdr))
        for p in (1, 16):
            for size in (16, 1024):
                for t in TESTS:
                    key = (t.upper(), p, size)
                    ke, re_ = m(key, 'kvd-es', 0), m(key, 'redis-es', 0)
                    ka, ra = m(key, 'kvd-al', 0), m(key, 'redis-al', 0)
                    kc = m(key, 'kvd-cache', 0) if p == 16 else None
                    emit('%-5s %3d %5d | %9s %9s %5s %6s %6s | %9s %9s %5s %6s %6s | %9s %5s'
                         % (t.upper(), p, size, f_rps(ke), f_rps(re_), f_ratio(ke, re_),
                            f_ms(m(key, 'kvd-es', 1)), f_ms(m(key, 'redis-es', 1)),
                            f_rps(ka), f_rps(ra), f_ratio(ka, ra),
                            f_ms(m(key, 'kvd-al', 1)), f_ms(m(key, 'redis-al', 1)),
                            f_rps(kc), f_ratio(ka, kc) if kc else '-'))
        for s in servers.values():
            s.stop()
        # ---- GET with the data set 10x the cache
        emit('')
        emit('GET with %d MB of 1 KiB values (redis-benchmark\'s key:NNNNNNNNNNNN), kvd '
             '--maxmemory 32mb (memtables and block cache) vs redis-server in memory; '
             '-c 50, uniform random keys' % big_mb)
        nkeys = big_mb * 1024
        big = {'kvd-big': PServer(a.kvd, wd.sub('kvd-big'), fsync='everysec',
                                  maxmemory='32mb', name='kvd-big'),
               'redis-big': PServer(redis, wd.sub('redis-big'), fsync='everysec',
                                    name='redis-big')}
        val = b'v' * 1024
        for name, s in big.items():
            s.start()
            c = s.conn(timeout=300)
            tl = time.time()
            bad, first = load_strings(c, ((b'key:%012d' % i, val) for i in range(nkeys)), 500)
            c.close()
            print('%s: loaded %d keys in %.1f s (%d not OK %r)' %
                  (name, nkeys, time.time() - tl, bad, first), flush=True)
        gres = {}
        for rnd in range(rounds):
            for p in (1, 16):
                for name in (('kvd-big', 'redis-big') if rnd % 2 == 0 else
                             ('redis-big', 'kvd-big')):
                    r = bench(big[name].port, ['get'], p, 1024, n_for[p], keyspace=nkeys)
                    gres.setdefault((p, name), []).append(r.get('GET', (None, None)))
        emit('%3s | %9s %9s %5s | %8s %8s' % ('P', 'kvd rps', 'redis rps', 'ratio',
                                               'kvd p99', 'redis p99'))
        for p in (1, 16):
            k = [x for x in gres[(p, 'kvd-big')]]
            r = [x for x in gres[(p, 'redis-big')]]
            kr, rr = med([x[0] for x in k]), med([x[0] for x in r])
            emit('%3d | %9s %9s %5s | %8s %8s' % (p, f_rps(kr), f_rps(rr), f_ratio(kr, rr),
                                                 f_ms(med([x[1] for x in k])),
                                                 f_ms(med([x[1] for x in r]))))
        rss = big['kvd-big'].rss_kb()
        emit('kvd VmRSS with the data set loaded: %s MB' % (rss // 1024 if rss else '-'))
        for s in big.values():
            s.stop(timeout=300)
    finally:
        for s in servers.values():
            s.kill9()
        for s in locals().get('big', {}).values():
            s.kill9()
        wd.close()
    if a.out and lines:
        with open(a.out, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        print('written to %s' % a.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
