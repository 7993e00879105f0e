"""tests/cluster/pipeline_test.py KVD_BINARY [--asan]: pipelines through the cluster
coordinator's batches (server/cmd/coordinate.c, PIPELINE BATCH).

A 3-node cache cluster (N=3 W=2 R=2). Each pipeline is sent in ONE write on one
connection, so the coordinator sees its commands queued behind each other and runs
them as batches; its replies must be exactly what a real redis-server 7.0 answers
to the same bytes, in the same order (read-your-writes inside a batch, blind
writes, read-modify-writes, errors, node-local commands in the middle, SELECT),
whichever node it goes through, and the final state must read back from the other
nodes. Then 500 INCRs of one key in one pipeline; a client that disconnects with a
large pipeline in flight (no crash, no sanitizer report with --asan); and with node
3 stopped, a pipeline at WRITE 3 gets NOQUORUM on exactly the replies of its
writing commands while its reads (READ 1) and PING answer as usual. Ends with
"N passed, M failed"; SKIPs while the binary has no cluster.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import harness


def resp(*args):
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)


class Reader:
    """Reads RESP2 replies from a socket, one value per reply: bytes, int, None,
    list, or ('err', text)."""

    def __init__(self, sock, timeout=10.0):
        self.s = sock
        self.buf = b''
        self.deadline = time.time() + timeout

    def _fill(self):
        left = self.deadline - time.time()
        if left <= 0:
            raise TimeoutError('no reply in time')
        self.s.settimeout(left)
        chunk = self.s.recv(65536)
        if not chunk:
            raise ConnectionError('closed')
        self.buf += chunk

    def _line(self):
        while b'\r\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b'+':
            return rest
        if t == b'-':
            return ('err', rest.decode())
        if t == b':':
            return int(rest)
        if t == b'$':
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b'*':
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError('bad reply %r' % line)


def run_pipeline(host, port, cmds, timeout=15.0, pre=()):
    """Sends pre (one by one, replies read) then every command of cmds in one write;
    returns the replies of cmds."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        rd = Reader(s, timeout)
        for c in pre:
            s.sendall(resp(*c))
            rd.reply()
        s.sendall(b''.join(resp(*c) for c in cmds))
        return [rd.reply() for _ in cmds]
    finally:
        s.close()


def norm(v):
    """Error texts compared by their first word (kvd's messages are Redis's where
    the suites check them; the first word is the contract)."""
    if isinstance(v, tuple):
        return ('err', v[1].split(' ')[0])
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


def mixed(p):
    """A pipeline of blind writes, read-modify-writes and reads of the same keys,
    with errors and node-local commands in the middle."""
    k, a, b, c, h = p + 'k', p + 'a', p + 'b', p + 'c', p + 'h'
    return [
        ('SET', k, '1'), ('INCR', k), ('GET', k), ('APPEND', k, 'x'), ('GET', k),
        ('INCR', k),                                  # WRONGTYPE-free error: not an integer
        ('DEL', k), ('GET', k), ('EXISTS', k),
        ('SET', k, '5', 'EX', '100'), ('TTL', k), ('SET', k, '6', 'KEEPTTL'), ('TTL', k),
        ('MSET', a, '1', b, '2'), ('MGET', a, b, k, c), ('SETNX', a, '9'), ('GETSET', b, '3'),
        ('GET', b), ('INCRBY', c, '5'), ('EXISTS', a, b, c, p + 'none'),
        ('PING',), ('ECHO', 'hi'),
        ('HSET', h, 'f', 'v', 'g', 'w'), ('HGET', h, 'f'), ('HINCRBY', h, 'n', '2'),
        ('HLEN', h), ('GET', h),                      # WRONGTYPE
        ('SET', k, 'new', 'GET'), ('SET', a, 'x', 'NX'), ('SET', a, 'y', 'XX'), ('GET', a),
        ('NOSUCHCOMMAND', k),                         # refused before the coordinator
        ('GET',),                                     # wrong arity
        ('STRLEN', k), ('GETDEL', k), ('GET', k), ('INCRBYFLOAT', c, '1.5'),
        ('SELECT', '1'), ('GET', a), ('SET', a, 'db1'), ('GET', a),
        ('SELECT', '0'), ('GET', a),
        ('SET', k, 'v', 'EX', '0'),                   # invalid expire: no write
        ('GET', k), ('SET', k, 'after'), ('GET', k),
        ('DEL', a, b, c, h, k),
        ('SELECT', '1'), ('DEL', a), ('SELECT', '0'),
    ]


class RedisServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='kvd-pipe-redis.')
        self.port = harness.free_port('127.0.0.1')
        self.proc = subprocess.Popen(['/usr/bin/redis-server', '--port', str(self.port),
                                      '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
                                      '--dir', self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError('redis-server did not start')

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    binary = sys.argv[1]
    res = harness.Results('pipeline')
    skip = harness.node_cluster_or_skip(binary, 'pipeline')
    if skip is not None:
        return skip
    if not os.path.exists('/usr/bin/redis-server'):
        print('SKIP pipeline: no /usr/bin/redis-server to compare with')
        print('pipeline: 0 passed, 0 failed')
        print('0 passed, 0 failed')
        return 0
    rs = RedisServer()
    cl = harness.Cluster(binary, n=3, mode='cache',
                         extra={'replication-factor': 3, 'write-quorum': 2, 'read-quorum': 2})
    try:
        cl.start()
        # the same bytes to redis-server and through each node: the same replies
        for i, nd in enumerate(cl.nodes):
            p = 'p%d:' % i
            cmds = mixed(p)
            want = [norm(x) for x in run_pipeline('127.0.0.1', rs.port, cmds)]
            got = [norm(x) for x in run_pipeline(nd.ip, nd.port, cmds)]
            res.eq('node%d: %d replies' % (i + 1, len(cmds)), len(got), len(want))
            bad = [(j, cmds[j], got[j], want[j]) for j in range(min(len(got), len(want)))
                   if got[j] != want[j]]
            res.check('node%d: a mixed pipeline answers as redis-server, in order' % (i + 1),
                      not bad, bad[:5])
        # the final state of a pipeline reads back from the other nodes
        p = 'st:'
        cmds = [('SET', p + 'a', '1'), ('INCR', p + 'a'), ('APPEND', p + 'b', 'xy'),
                ('MSET', p + 'c', 'c', p + 'd', 'd'), ('DEL', p + 'd'), ('INCR', p + 'a')]
        run_pipeline(cl.nodes[0].ip, cl.nodes[0].port, cmds)
        for nd in cl.nodes[1:]:
            c = nd.client()
            res.eq('node%d reads what a pipeline through node1 wrote' % (nd.index + 1),
                   c.mget(p + 'a', p + 'b', p + 'c', p + 'd'), [b'3', b'xy', b'c', None])
            c.close()
        # 500 INCRs of one key in one pipeline: 1..500 in order
        n1 = cl.nodes[0]
        got = run_pipeline(n1.ip, n1.port, [('INCR', 'ctr')] * 500, timeout=30)
        res.eq('500 pipelined INCRs answer 1..500 in order', got, list(range(1, 501)))
        c = cl.nodes[2].client()
        res.eq('node3 reads the counter at 500', c.get('ctr'), b'500')
        c.close()
        # a client that disconnects with a large pipeline in flight
        for _ in range(3):
            s = socket.create_connection((n1.ip, n1.port), timeout=5)
            s.sendall(b''.join(resp('SET', 'dc:%d' % j, 'v' * 100) for j in range(2000)) +
                      b''.join(resp('INCR', 'dc:ctr') for _ in range(200)))
            s.close()
        time.sleep(0.5)
        for nd in cl.nodes:
            c = nd.client()
            res.eq('node%d answers PING after the disconnects' % (nd.index + 1), c.ping(), True)
            c.close()
        # node3 stopped, WRITE 3: the writing commands' replies (only) are NOQUORUM
        n3 = cl.nodes[2]
        n3.kill9()
        res.check('node1 sees node3 down', cl.wait_state(n1, n3, 'down', 30))
        cmds = [('GET', 'st:a'), ('SET', 'w3:x', '1'), ('GET', 'w3:x'), ('PING',),
                ('INCR', 'st:a'), ('GET', 'st:c'), ('DEL', 'w3:none')]
        got = run_pipeline(n1.ip, n1.port, cmds, pre=[('KVD', 'CONSISTENCY', 'READ', '1',
                                                        'WRITE', '3')])
        kinds = [('NOQUORUM' if isinstance(x, tuple) and x[1].startswith('NOQUORUM')
                  else 'err' if isinstance(x, tuple) else 'ok') for x in got]
        res.eq('W=3 with a node down: NOQUORUM on the writes only', kinds,
               ['ok', 'NOQUORUM', 'ok', 'ok', 'NOQUORUM', 'ok', 'ok'])
        res.eq('W=3: the reads and PING answer as usual', [got[0], got[3], got[5], got[6]],
               [b'3', b'PONG', b'c', 0])
        res.eq('W=3: a read after an indeterminate write in the batch sees it', got[2], b'1')
        res.check('node3 restarts', n3.restart())
        harness.check_no_crash(cl, res)
    except Exception as e:  # noqa: BLE001
        res.check('cluster run without exception', False, repr(e))
    finally:
        rs.stop()
        harness.check_clean_exit(cl.stop(), res, cl)
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
