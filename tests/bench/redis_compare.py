#!/usr/bin/python3
"""tests/bench/redis_compare.py: kvd beside a real redis-server in one run.

Throughput: redis-benchmark (50 clients) for SET, GET, INCR, MSET and HSET at
pipeline 1, 16 and 64 with 16- and 1024-byte values, against kvd and redis-server
alternately (kvd, redis, kvd, redis, ...) for several rounds; reports the median
requests/s and p99 latency of each, and their ratio.
Memory: 1,000,000 string keys of 16 bytes (keys "key:000000000001", 16 bytes) with
16-byte and then 100-byte values, and 100,000 hashes of 10 fields f0..f9 with 8-byte
values, loaded with redis-cli --pipe into each server; reports INFO used_memory growth
per key and the ratio.

Both servers run on free loopback ports with their own dirs and are stopped by PID
(redis-compat-tests/serverctl.py). Usage:
  redis_compare.py KVD_BINARY [--rounds 3] [--quick] [--out FILE] [--kvd-arg ARG ...]
--quick: small request counts, one round, 100k keys: for trying the script out.
--base OLD_KVD: compare with an earlier kvd binary instead of redis-server (it gets
the same --kvd-arg options); the columns are then "new" and "old", and the ratio is
new/old. This is how a change is checked for speed and memory regressions.
--tests mset,hset: only those redis-benchmark tests (default all five); with
--pipelines 16 --sizes 16 --skip-memory --rounds 5, one cell measured again.
"""
import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'redis-compat-tests'))
from respclient import Conn  # noqa: E402
from serverctl import Server  # noqa: E402

TESTS = ['set', 'get', 'incr', 'hset', 'mset']


def bench(port, tests, pipeline, size, n, clients=50, keyspace=100000, timeout=600):
    """One redis-benchmark run; returns {TEST: (rps, p99_ms)}, or {TEST: None} for
    each test when the run did not finish within timeout seconds."""
    args = ['redis-benchmark', '-h', '127.0.0.1', '-p', str(port), '-c', str(clients),
            '-n', str(n), '-P', str(pipeline), '-d', str(size), '-r', str(keyspace),
            '-t', ','.join(tests), '--csv']
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return {t.upper(): None for t in tests}
    res = {}
    for row in csv.reader(io.StringIO(out)):
        if len(row) >= 7 and row[0] != 'test':
            name = row[0].split()[0].upper()
            try:
                res[name] = (float(row[1]), float(row[6]))
            except ValueError:
                pass
    return res


def info_int(port, field):
    c = Conn(port, timeout=60)
    r = c.call('INFO', 'memory')
    c.close()
    for line in r[1].split(b'\r\n'):
        if line.startswith(field.encode() + b':'):
            return int(line.split(b':', 1)[1])
    return None


def flushall(port):
    c = Conn(port, timeout=120)
    c.call('FLUSHALL')
    c.close()


def write_strings(path, n, vsize):
    val = b'v' * vsize
    with open(path, 'wb') as f:
        for i in range(1, n + 1):
            k = b'key:%012d' % i
            f.write(b'*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$%d\r\n%s\r\n' % (k, vsize, val))


def write_hashes(path, n):
    with open(path, 'wb') as f:
        for i in range(1, n + 1):
            k = b'hash:%011d' % i
            parts = [b'*22\r\n$4\r\nHSET\r\n$16\r\n%s\r\n' % k]
            for j in range(10):
                parts.append(b'$2\r\nf%d\r\n$8\r\n%08d\r\n' % (j, i % 100000000))
            f.write(b''.join(parts))


def load(port, path, expect):
    """Loads a RESP file with redis-cli --pipe; returns (used_memory growth, ok)."""
    flushall(port)
    time.sleep(0.5)
    before = info_int(port, 'used_memory')
    with open(path, 'rb') as f:
        out = subprocess.run(['redis-cli', '-h', '127.0.0.1', '-p', str(port), '--pipe'],
                             stdin=f, capture_output=True, text=True, timeout=900).stdout
    ok = ('errors: 0, replies: %d' % expect) in out
    time.sleep(0.5)
    after = info_int(port, 'used_memory')
    c = Conn(port, timeout=60)
    n = c.call('DBSIZE')[1]
    c.close()
    ok = ok and n == expect
    flushall(port)
    return after - before, ok


def fmt_rps(x):
    return '%.0f' % x if x is not None else '-'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kvd')
    ap.add_argument('--redis', default='/usr/bin/redis-server')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--out')
    ap.add_argument('--kvd-arg', action='append', default=[])
    ap.add_argument('--skip-memory', action='store_true')
    ap.add_argument('--skip-throughput', action='store_true')
    ap.add_argument('--pipelines', default='1,16,64')
    ap.add_argument('--sizes', default='16,1024')
    ap.add_argument('--tests', default=','.join(TESTS), help='redis-benchmark tests to run')
    ap.add_argument('--requests', type=int, default=500000, help='per test at P16/P64 (P1: a tenth)')
    ap.add_argument('--timeout', type=int, default=600, help='seconds per redis-benchmark run')
    ap.add_argument('--title', default='')
    ap.add_argument('--base', help='an earlier kvd binary to compare with instead of redis')
    o = ap.parse_args()
    o.kvd = os.path.abspath(o.kvd)  # the servers run in their own dirs
    other_args = []
    col_a, col_b = 'kvd', 'redis'
    if o.base:
        o.redis = os.path.abspath(o.base)
        other_args = list(o.kvd_arg)
        col_a, col_b = 'new', 'old'
    rounds = 1 if o.quick else o.rounds
    pipelines = [int(x) for x in o.pipelines.split(',')]
    sizes = [int(x) for x in o.sizes.split(',')]
    tests = [t.strip().lower() for t in o.tests.split(',') if t.strip()]
    if not tests or any(t not in TESTS for t in tests):
        ap.error('--tests: a comma-separated subset of ' + ','.join(TESTS))
    lines = []

    def emit(s=''):
        print(s, flush=True)
        lines.append(s)

    kvd = Server(o.kvd, o.kvd_arg, name='bench-kvd')
    red = Server(o.redis, other_args, name='bench-redis')
    servers = {'kvd': kvd, 'redis': red}
    try:
        emit('kvd bench%s: %s %s vs %s, %s' % (' (' + o.title + ')' if o.title else '', o.kvd,
                                               ' '.join(o.kvd_arg), o.redis,
                                               time.strftime('%Y-%m-%d %H:%M:%S')))
        if not o.skip_throughput:
            # results[(test, P, size)][server] = [(rps, p99), ...]
            results = {}
            for rnd in range(rounds):
                for p in pipelines:
                    for size in sizes:
                        n = (o.requests // 10 if p == 1 else o.requests) // (10 if o.quick else 1)
                        order = ['kvd', 'redis'] if rnd % 2 == 0 else ['redis', 'kvd']
                        for name in order:
                            port = servers[name].port
                            r = {}
                            for t in tests:  # one run per test, so one slow test cannot hide the rest
                                r.update(bench(port, [t], p, size, max(n // 5, 1000) if t == 'mset' else n,
                                               timeout=o.timeout))
                            for t, v in r.items():
                                results.setdefault((t, p, size), {}).setdefault(name, []).append(v)
                print('round %d of %d done' % (rnd + 1, rounds), file=sys.stderr, flush=True)
            emit()
            emit('Throughput: redis-benchmark -c 50 -r 100000, median of %d rounds '
                 '(MSET: 10 keys per request)' % rounds)
            emit('%-6s %3s %5s %12s %12s %7s %9s %9s' % ('test', 'P', 'size', col_a + ' rps',
                                                        col_b + ' rps', 'ratio', col_a + ' p99',
                                                        col_b + ' p99'))
            for t in [x.upper() for x in tests]:
                for p in pipelines:
                    for size in sizes:
                        d = results.get((t, p, size), {})
                        k = d.get('kvd', [])
                        r = d.get('redis', [])
                        if not k and not r:
                            continue
                        k_to = any(x is None for x in k)
                        k = [x for x in k if x is not None]
                        r = [x for x in r if x is not None]
                        krps = statistics.median(x[0] for x in k) if k else None
                        rrps = statistics.median(x[0] for x in r) if r else None
                        kp = statistics.median(x[1] for x in k) if k else None
                        rp = statistics.median(x[1] for x in r) if r else None
                        ratio = '%.2f' % (krps / rrps) if krps and rrps else '-'
                        emit('%-6s %3d %5d %12s %12s %7s %9s %9s' % (
                            t, p, size, fmt_rps(krps) if not k_to else 'TIMEOUT', fmt_rps(rrps), ratio,
                            '%.3f' % kp if kp is not None else '-',
                            '%.3f' % rp if rp is not None else '-'))
            if any(x is None for d in results.values() for x in d.get('kvd', [])):
                emit('(TIMEOUT: a kvd run of that test did not finish within %d s)' % o.timeout)
        if not o.skip_memory:
            nkeys = 100000 if o.quick else 1000000
            nh = 10000 if o.quick else 100000
            emit()
            emit('Memory: INFO used_memory growth per key (bytes), loaded with redis-cli --pipe')
            emit('%-40s %10s %10s %7s' % ('dataset', col_a, col_b, 'ratio'))
            tmp = tempfile.mkdtemp(prefix='kvd-bench-')
            try:
                sets = [('%d strings, 16 B key, 16 B value' % nkeys, 'strings16', nkeys),
                        ('%d strings, 16 B key, 100 B value' % nkeys, 'strings100', nkeys),
                        ('%d hashes, 10 fields of 8 B' % nh, 'hashes', nh)]
                for label, kind, n in sets:
                    path = os.path.join(tmp, kind)
                    if kind == 'hashes':
                        write_hashes(path, n)
                    else:
                        write_strings(path, n, 16 if kind == 'strings16' else 100)
                    per = {}
                    for name in ('kvd', 'redis'):
                        grow, ok = load(servers[name].port, path, n)
                        per[name] = grow / n if ok else None
                    os.unlink(path)
                    k, r = per['kvd'], per['redis']
                    emit('%-40s %10s %10s %7s' % (
                        label, '%.1f' % k if k is not None else 'FAILED',
                        '%.1f' % r if r is not None else 'FAILED',
                        '%.2f' % (k / r) if k and r else '-'))
            finally:
                subprocess.run(['rm', '-rf', tmp])
    finally:
        kvd.stop()
        red.stop()
        kvd.cleanup()
        red.cleanup()
    if o.out:
        os.makedirs(os.path.dirname(o.out) or '.', exist_ok=True)
        with open(o.out, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        print('written to %s' % o.out)


if __name__ == '__main__':
    main()
