#!/usr/bin/python3
"""tests/long/server_soak.py: one server under sustained, mixed load.

Usage: server_soak.py SERVER_BINARY [--seconds 60] [--server-arg=OPTION ...]
Starts the server (kvd, or redis-server to check this script) on a free loopback
port, then, for the given time:
  - 6 checker threads, each owning its own keys, run random SET/APPEND/INCR/HSET/
    HDEL/DEL/EXPIRE(100 s+)/MULTI-EXEC against a model, and verify every key against
    the model at the end (nothing lost, nothing extra);
  - redis-benchmark runs SET/GET/INCR/HSET/MSET with 50 clients at pipeline 16 on
    other keys alongside;
  - a churn thread opens and drops connections, half of them mid-command.
Afterwards: connected_clients is back to the few it keeps; FLUSHALL returns
used_memory to near its start (no leak); with maxmemory 32mb allkeys-lru, writing
~100 MB keeps used_memory near the limit and evicts (cache mode, Redis) or keeps
every key (kvd's persistent mode); the server stops cleanly on SIGTERM. Ends with "N passed, M failed".
"""
import argparse
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'redis-compat-tests'))
from respclient import Conn, Harness, plain  # noqa: E402
from serverctl import Server  # noqa: E402

H = Harness('soak')


def info(port, section, field):
    c = Conn(port, timeout=30)
    r = plain(c.call('INFO', section))
    c.close()
    for line in r.split(b'\r\n'):
        if line.startswith(field.encode() + b':'):
            return int(line.split(b':', 1)[1])
    return None


class Checker(threading.Thread):
    """Random operations on its own keys, mirrored in a dict model."""

    def __init__(self, port, ident, deadline):
        super().__init__(daemon=True)
        self.port, self.cid, self.deadline = port, ident, deadline
        self.rng = random.Random(ident)
        self.model = {}  # key -> bytes | dict
        self.errors = []
        self.ops = 0

    def key(self):
        return 'soak:%d:%d' % (self.cid, self.rng.randrange(200))

    def step(self, c):
        r, k = self.rng, self.key()
        cur = self.model.get(k)
        op = r.randrange(9)
        if op == 0:
            v = os.urandom(r.randrange(1, 300))
            self.expect(c.call('SET', k, v), ('simple', b'OK'), k)
            self.model[k] = v
        elif op == 1 and (cur is None or isinstance(cur, bytes)):
            v = b'ab\r\n\0'
            got = c.call('APPEND', k, v)
            self.model[k] = (cur or b'') + v
            self.expect(got, ('int', len(self.model[k])), k)
        elif op == 2 and cur is None:
            self.expect(c.call('INCRBY', k, 7), ('int', 7), k)
            self.model[k] = b'7'
        elif op == 3 and (cur is None or isinstance(cur, dict)):
            f, v = b'f%d' % r.randrange(20), os.urandom(r.randrange(0, 50))
            got = c.call('HSET', k, f, v)
            h = dict(cur or {})
            self.expect(got, ('int', 0 if f in h else 1), k)
            h[f] = v
            self.model[k] = h
        elif op == 4 and isinstance(cur, dict):
            f = b'f%d' % r.randrange(20)
            got = c.call('HDEL', k, f)
            h = dict(cur)
            self.expect(got, ('int', 1 if h.pop(f, None) is not None else 0), k)
            if h:
                self.model[k] = h
            else:
                del self.model[k]
        elif op == 5:
            self.expect(c.call('DEL', k), ('int', 1 if cur is not None else 0), k)
            self.model.pop(k, None)
        elif op == 6:
            self.expect(c.call('EXPIRE', k, 1000 + r.randrange(1000)), ('int', 1 if cur is not None else 0), k)
        elif op == 7:
            v = os.urandom(16)
            got = c.pipeline([('MULTI',), ('SET', k, v), ('GET', k), ('EXEC',)])
            self.expect(got[3], ('array', [('simple', b'OK'), ('bulk', v)]), k)
            self.model[k] = v
        else:
            self.verify_key(c, k)
        self.ops += 1

    def expect(self, got, want, k):
        if got != want and len(self.errors) < 5:
            self.errors.append('%s: want %r got %r' % (k, want, got))

    def verify_key(self, c, k):
        cur = self.model.get(k)
        t = plain(c.call('TYPE', k))
        if cur is None:
            self.expect(t, b'none', k)
        elif isinstance(cur, bytes):
            self.expect(c.call('GET', k), ('bulk', cur), k)
        else:
            r = plain(c.call('HGETALL', k))
            self.expect(dict(zip(r[0::2], r[1::2])) if isinstance(r, list) else r, cur, k)

    def run(self):
        try:
            c = Conn(self.port, timeout=60)
            while time.time() < self.deadline:
                self.step(c)
            for i in range(200):
                self.verify_key(c, 'soak:%d:%d' % (self.cid, i))
            c.close()
        except Exception as e:  # noqa: BLE001
            self.errors.append('%s: %s' % (type(e).__name__, e))


def churn(port, deadline, counts):
    rng = random.Random(99)
    while time.time() < deadline:
        try:
            s = socket.create_connection(('127.0.0.1', port), timeout=10)
            if rng.random() < 0.5:
                s.sendall(b'*3\r\n$3\r\nSET\r\n$5\r\nchurn\r\n$100\r\nxx')  # dropped mid-command
            else:
                s.sendall(b'PING\r\n')
                s.recv(16)
            s.close()
            counts[0] += 1
        except OSError:
            counts[1] += 1
        time.sleep(0.002)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('server')
    ap.add_argument('--seconds', type=float, default=60)
    ap.add_argument('--server-arg', action='append', default=[], help='an extra server option')
    o = ap.parse_args()
    srv = Server(o.server, o.server_arg, name='soak')
    port = srv.port
    try:
        base_clients = info(port, 'clients', 'connected_clients')
        base_mem = info(port, 'memory', 'used_memory')
        deadline = time.time() + o.seconds
        checkers = [Checker(port, i, deadline) for i in range(6)]
        for t in checkers:
            t.start()
        counts = [0, 0]
        ch = threading.Thread(target=churn, args=(port, deadline, counts), daemon=True)
        ch.start()
        bench_runs = 0
        slow = None
        while time.time() < deadline - 2 and slow is None:
            for t in ('set', 'get', 'incr', 'hset', 'mset'):
                # 50k requests take well under a second on Redis; a minute is a hang
                t0 = time.time()
                try:
                    subprocess.run(['redis-benchmark', '-h', '127.0.0.1', '-p', str(port), '-c', '50',
                                    '-P', '16', '-n', '50000', '-r', '100000', '-d', '64', '-t', t, '-q'],
                                   capture_output=True, timeout=60)
                except subprocess.TimeoutExpired:
                    slow = '%s: 50000 requests not done in %.0f s' % (t, time.time() - t0)
                    break
            bench_runs += 1
        H.check('redis-benchmark rounds finish (each test within 60 s)', slow is None, slow)
        for t in checkers:
            t.join(timeout=120)
        ch.join(timeout=30)
        for t in checkers:
            H.check('checker %d: every reply and every key as the model says (%d ops)' % (t.cid, t.ops),
                    not t.errors and t.ops > 0, '; '.join(t.errors))
        H.check('redis-benchmark ran alongside', bench_runs > 0, bench_runs)
        H.check('connection churn: connects succeeded', counts[0] > 0 and counts[1] == 0, counts)
        time.sleep(1.0)
        n = info(port, 'clients', 'connected_clients')
        H.check('connected_clients back to the start', n is not None and n <= base_clients + 1,
                (base_clients, n))
        c = Conn(port, timeout=120)
        H.eq('FLUSHALL', c.call('FLUSHALL'), ('simple', b'OK'))
        c.close()
        time.sleep(1.0)
        mem = info(port, 'memory', 'used_memory')
        H.check('used_memory after FLUSHALL near the start (no leak)', mem < base_mem + 8 * 1024 * 1024,
                (base_mem, mem))
        # 100 MB written at a 32 MB maxmemory: cache mode (and Redis) evicts and holds
        # used_memory near the limit; kvd's persistent mode keeps every key (on disk)
        c = Conn(port, timeout=120)
        r = plain(c.call('CONFIG', 'GET', 'mode'))
        mode = r[1].decode() if isinstance(r, list) and len(r) == 2 else 'cache'
        c.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru')
        H.eq('CONFIG SET maxmemory 32mb', c.call('CONFIG', 'SET', 'maxmemory', '32mb'), ('simple', b'OK'))
        val = b'x' * 1000
        for i in range(0, 100000, 1000):
            rs = c.pipeline([('SET', 'ev:%d' % j, val) for j in range(i, i + 1000)])
            if any(r != ('simple', b'OK') for r in rs):
                H.check('writes under allkeys-lru are not refused', False,
                        [r for r in rs if r != ('simple', b'OK')][:1])
                break
        ev = info(port, 'stats', 'evicted_keys')
        dbsize = c.call('DBSIZE')[1]
        if mode == 'persistent':
            H.eq('persistent: nothing evicted', ev, 0)
            H.eq('persistent: every key kept', dbsize, 100000)
            H.eq('persistent: the first key reads back', c.call('GET', 'ev:0'), ('bulk', val))
        else:
            mem = info(port, 'memory', 'used_memory')
            H.check('used_memory held near maxmemory', mem < 32 * 1024 * 1024 * 1.15, mem)
            H.check('keys were evicted', ev is not None and ev > 0, ev)
            H.check('some keys remain', 1000 < dbsize < 100000, dbsize)
        c.call('CONFIG', 'SET', 'maxmemory', '0')
        c.call('FLUSHALL')
        H.eq('still answering', c.call('PING'), ('simple', b'PONG'))
        c.close()
    except Exception as e:  # noqa: BLE001
        H.check('soak ran to the end', False, '%s: %s' % (type(e).__name__, e))
    finally:
        rc = srv.stop(timeout=30)
        H.check('stops cleanly on SIGTERM', rc == 0, rc)
        if rc != 0:
            print(srv._tail())
        srv.cleanup()
    return H.summary()


if __name__ == '__main__':
    sys.exit(main())
