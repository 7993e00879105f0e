#!/usr/bin/python3
"""tests/bench/cluster_bench.py: kvd clusters beside Redis Cluster and one kvd node.

redis-benchmark (50 clients in all; SET, GET, INCR; pipeline 1 and 16; 16- and
1024-byte values; -r 100000 keys) against four targets, all running for the whole
run, benchmarked in alternating order (the order rotates every round), each cell
the median of --rounds rounds:
  kvd N=3  a 3-node kvd cluster on 127.0.0.2-4, replication-factor 3, W=2, R=2;
  kvd N=1  the same with replication-factor 1, W=1, R=1;
  redis    Redis Cluster: 6 redis-server --cluster-enabled yes (3 masters each with
           1 replica, `redis-cli --cluster create ... --cluster-replicas 1
           --cluster-yes`), benchmarked with `redis-benchmark --cluster`;
  single   one kvd node.
A kvd cluster is driven through all its nodes at once: one redis-benchmark per node,
the 50 clients and the requests split between them; its requests/s is the sum, its
p50 the mean of the processes' p50 and its p99 the largest of their p99 (pessimistic).
kvd runs in --mode (cache by default: like Redis Cluster, in memory). Prints
requests/s, p50 and p99 (ms) per cell and the ratios kvd N=3 / Redis Cluster and kvd
N=3 / single kvd (requests/s), and writes the table to --out. While the binary has
no cluster the kvd-cluster columns say "skipped: <reason>".

Every server is on a free port with its own temp dir, stopped by PID; waits are
bounded. Usage: cluster_bench.py KVD_BINARY [--rounds 3] [--requests N] [--quick]
[--mode cache|persistent] [--out FILE]
"""
import argparse
import csv
import io
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'cluster'))
import harness  # noqa: E402

TESTS = ['SET', 'GET', 'INCR']
CLIENTS = 50


def parse_csv(out):
    """redis-benchmark --csv -> {TEST: (rps, p50, p99)}."""
    res = {}
    for row in csv.reader(io.StringIO(out)):
        if len(row) >= 7 and row[0] != 'test':
            try:
                res[row[0].split()[0].upper()] = (float(row[1]), float(row[4]), float(row[6]))
            except ValueError:
                pass
    return res


def bench_procs(targets, pipeline, size, n, cluster_flag=False, timeout=300):
    """Runs one redis-benchmark per (host, port) in targets at once, clients and
    requests split; returns {TEST: (rps sum, mean p50, max p99)} or None per test
    when any process failed."""
    procs = []
    k = len(targets)
    for i, (host, port) in enumerate(targets):
        c = CLIENTS // k + (1 if i < CLIENTS % k else 0)
        args = ['redis-benchmark', '-h', host, '-p', str(port), '-c', str(c),
                '-n', str(max(1000, n // k)), '-P', str(pipeline), '-d', str(size),
                '-r', '100000', '-t', ','.join(t.lower() for t in TESTS), '--csv']
        if cluster_flag:
            args.append('--cluster')
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = []
    deadline = time.time() + timeout
    for p in procs:
        try:
            o, _ = p.communicate(timeout=max(1, deadline - time.time()))
            outs.append(parse_csv(o))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            outs.append({})
    res = {}
    for t in TESTS:
        parts = [o.get(t) for o in outs]
        if any(x is None for x in parts):
            res[t] = None
            continue
        res[t] = (sum(x[0] for x in parts), statistics.mean(x[1] for x in parts),
                  max(x[2] for x in parts))
    return res


class RedisCluster:
    """6 redis-server processes in cluster mode on 127.0.0.1: 3 masters, 1 replica each."""

    def __init__(self, n=6):
        self.base = tempfile.mkdtemp(prefix='kvd-bench-rcluster.')
        self.procs = []
        self.ports = []
        try:
            self._start(n)
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _bus_port_free(port):
        """A client port whose cluster bus port (port + 10000) is free too."""

        for p in (port, port + 10000):
            s = socket.socket()
            try:
                s.bind(('127.0.0.1', p))
            except OSError:
                return False
            finally:
                s.close()
        return True

    def _start(self, n):

        for i in range(n):
            port = next(p for p in (random.randrange(20000, 30000) for _ in range(1000))
                        if p not in self.ports and self._bus_port_free(p))
            d = os.path.join(self.base, 'r%d' % i)
            os.makedirs(d)
            log = open(os.path.join(d, 'redis.log'), 'wb')
            p = subprocess.Popen(['redis-server', '--port', str(port), '--bind', '127.0.0.1',
                                  '--dir', d, '--save', '', '--appendonly', 'no',
                                  '--daemonize', 'no', '--cluster-enabled', 'yes',
                                  '--cluster-config-file', os.path.join(d, 'nodes.conf'),
                                  '--cluster-node-timeout', '5000'],
                                 stdout=log, stderr=subprocess.STDOUT, cwd=d)
            log.close()
            self.procs.append(p)
            self.ports.append(port)
        for port in self.ports:
            if not self._wait(lambda: self._cli(port, 'PING') == 'PONG', 20):
                raise RuntimeError('redis-server on %d did not answer' % port)
        r = subprocess.run(['redis-cli', '--cluster', 'create']
                           + ['127.0.0.1:%d' % p for p in self.ports]
                           + ['--cluster-replicas', '1', '--cluster-yes'],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError('redis-cli --cluster create failed: %s' % (r.stdout + r.stderr)[-800:])
        ok = self._wait(lambda: all('cluster_state:ok' in self._cli(p, 'CLUSTER', 'INFO')
                                    for p in self.ports), 60)
        if not ok:
            raise RuntimeError('Redis Cluster did not reach cluster_state:ok')
        self.masters = [p for p in self.ports if 'role:master' in self._cli(p, 'INFO', 'replication')]

    @staticmethod
    def _cli(port, *args):
        try:
            return subprocess.run(['redis-cli', '-h', '127.0.0.1', '-p', str(port)] + list(args),
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except subprocess.TimeoutExpired:
            return ''

    @staticmethod
    def _wait(pred, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.base, ignore_errors=True)


class SingleKvd:
    def __init__(self, binary, mode):
        self.dir = tempfile.mkdtemp(prefix='kvd-bench-single.')
        self.port = harness.free_port('127.0.0.1')
        log = open(os.path.join(self.dir, 'kvd.log'), 'wb')
        self.proc = subprocess.Popen([binary, '--port', str(self.port), '--bind', '127.0.0.1',
                                      '--dir', self.dir, '--mode', mode],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        nd = harness.Node(binary, 0, '127.0.0.1', self.port, self.dir, {})
        nd.proc = self.proc
        if not nd.wait_ping(20):
            raise RuntimeError('single kvd did not answer: %s' % nd.tail())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def cell(x):
    if x is None:
        return '%24s' % '-'
    return '%10.0f %6.2f %6.2f' % x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kvd')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--requests', type=int, default=100000)
    ap.add_argument('--mode', default='cache')
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--out', default=None)
    o = ap.parse_args()
    if o.quick:
        o.rounds, o.requests = 1, 20000
    kvd = os.path.abspath(o.kvd)
    lines = []

    def emit(s=''):
        print(s, flush=True)
        lines.append(s)

    targets = {}  # name -> (list of (host, port), cluster_flag) or skip reason (str)
    stops = []
    try:
        ok, why = harness.probe(kvd)
        if ok:
            for name, rf in (('kvd N=3', 3), ('kvd N=1', 1)):
                try:
                    cl = harness.Cluster(kvd, n=3, mode=o.mode,
                                         extra={'replication-factor': rf, 'write-quorum': min(2, rf),
                                                'read-quorum': min(2, rf)})
                    stops.append(cl.stop)
                    cl.start()
                    targets[name] = ([(nd.ip, nd.port) for nd in cl.nodes], False)
                except Exception as e:  # noqa: BLE001 - reported as a skipped column
                    targets[name] = 'skipped: %s' % str(e).splitlines()[0]
        else:
            targets['kvd N=3'] = targets['kvd N=1'] = 'skipped: %s' % why
        try:
            rc = RedisCluster()
            stops.append(rc.stop)
            targets['redis'] = ([('127.0.0.1', rc.ports[0])], True)
        except Exception as e:  # noqa: BLE001
            targets['redis'] = 'skipped: %s' % e
        single = SingleKvd(kvd, o.mode)
        stops.append(single.stop)
        targets['single'] = ([('127.0.0.1', single.port)], False)

        order = ['kvd N=3', 'kvd N=1', 'redis', 'single']
        live = [t for t in order if not isinstance(targets[t], str)]
        cells = [(p, s) for p in (1, 16) for s in (16, 1024)]
        samples = {}  # (target, P, size, TEST) -> list of (rps, p50, p99)
        for rnd in range(o.rounds):
            rot = live[rnd % len(live):] + live[:rnd % len(live)] if live else []
            for (p, s) in cells:
                for t in rot:
                    addrs, cflag = targets[t]
                    n = o.requests * (4 if p > 1 else 1)
                    r = bench_procs(addrs, p, s, n, cluster_flag=cflag)
                    for test in TESTS:
                        if r.get(test) is not None:
                            samples.setdefault((t, p, s, test), []).append(r[test])
            print('round %d of %d done' % (rnd + 1, o.rounds), file=sys.stderr, flush=True)

        def med(t, p, s, test):
            xs = samples.get((t, p, s, test))
            if not xs:
                return None
            return (statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs),
                    statistics.median(x[2] for x in xs))

        emit('kvd cluster benchmark, %s (kvd --mode %s; %d clients; -r 100000; median of %d '
             'rounds, alternating)' % (time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), o.mode,
                                       CLIENTS, o.rounds))
        emit('columns per target: requests/s  p50 ms  p99 ms; a kvd cluster is driven through '
             'all its nodes (sum of rps, mean p50, max p99)')
        for t in order:
            if isinstance(targets[t], str):
                emit('%s: %s' % (t, targets[t]))
        head = '%-14s' % 'test P size' + ''.join('| %-24s' % t for t in order) + \
            '| N3/redis N3/single'
        emit(head)
        emit('-' * len(head))
        for (p, s) in cells:
            for test in TESTS:
                row = [med(t, p, s, test) for t in order]
                r1 = '%8.2f' % (row[0][0] / row[2][0]) if row[0] and row[2] else '%8s' % '-'
                r2 = '%9.2f' % (row[0][0] / row[3][0]) if row[0] and row[3] else '%9s' % '-'
                emit('%-14s' % ('%s P%d %dB' % (test, p, s)) + ''.join('| %s ' % cell(x) for x in row)
                     + '| %s %s' % (r1, r2))
    finally:
        for st in reversed(stops):
            try:
                st()
            except Exception:  # noqa: BLE001
                pass
    if o.out:
        os.makedirs(os.path.dirname(os.path.abspath(o.out)), exist_ok=True)
        with open(o.out, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        print('written to %s' % o.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
