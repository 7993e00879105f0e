"""tests/cluster/join_test.py KVD_BINARY [--asan]: join and leave under load, 3 -> 5 -> 3.

Three nodes (N=3, W=2, R=2) hold a preloaded data set while QUORUM writers run.
Nodes 4 and 5 start with cluster-join yes, one after the other: each must show
status joining with a stream progress, then normal and up on every node. Then
every acknowledged write and every preloaded key reads back at QUORUM from every
node, and each joiner holds locally (INFO keyspace) the share of the keys KVD NODES
gives it (check_shares), every share being 60% (3 of 5) within 10 points. Then
KVD LEAVE on nodes 1 and 2, one after the other, while writers run through the
others: each leaves (status left, CLUSTERDOWN to clients, gone from the others'
NODES; restarted on its dir it refuses to start), and every acknowledged write
and preloaded key reads back from the three remaining nodes. Prints the streaming throughput (MB/s, keys/s) and a QUORUM
client's p99 before and during the join (numbers only, no timed assertion).
Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import subprocess
import sys
import threading
import time

import redis

import harness
from harness import info_fields, local_keys, self_line, statuses

PRELOAD = 20000


class Prober:
    """One QUORUM client SETting through node, recording (time, latency) per op."""

    def __init__(self, node):
        self.node = node
        self.samples = []
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        c = harness.consistency_client(self.node, 'QUORUM', timeout=3.0)
        i = 0
        while not self._stop.is_set():
            i += 1
            t0 = time.time()
            try:
                c.set('probe:%d' % (i % 500), 'x' * 100)
                self.samples.append((t0, time.time() - t0))
            except (redis.RedisError, OSError):
                pass
            self._stop.wait(0.005)
        c.close()

    def start(self):
        self._th.start()
        return self

    def stop(self):
        self._stop.set()
        self._th.join(10)

    def p99_ms(self, t_from, t_to):
        lat = sorted(d for t, d in self.samples if t_from <= t < t_to)
        if not lat:
            return float('nan'), 0
        return lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000.0, len(lat)


def value(k):
    return 'v%d-' % k + 'x' * 100


def preload(node, res):
    harness.preload_keys(node, PRELOAD, value)
    res.check('preloaded %d keys at QUORUM' % PRELOAD, True)


def check_preload(nodes, res, label):
    for nd in nodes:
        bad = harness.bad_preloaded(nd, PRELOAD, value)
        res.check('%s: all %d preloaded keys read back from %s at QUORUM'
                  % (label, PRELOAD, nd.addr), not bad, bad[:5])


def wait_status(node, status, timeout, saw_stream=None):
    """Until node's own NODES line says status=<status>; records a stream=% seen."""
    deadline = time.time() + timeout
    line = ''
    while time.time() < deadline:
        try:
            line = self_line(node)
        except (redis.RedisError, OSError):
            line = ''
        if saw_stream is not None and 'stream=' in line:
            saw_stream.append(line)
        if 'status=%s' % status in line:
            return True, line
        time.sleep(0.05)
    return False, line


def join_one(cl, res, nd, prober):
    t0 = time.time()
    nd.start()
    res.check('node%d answers' % (nd.index + 1), nd.wait_ping(30))
    streaming = []
    ok, line = wait_status(nd, 'joining', 20, streaming)
    res.check('node%d gossips status joining' % (nd.index + 1), ok, line)
    ok, line = wait_status(nd, 'normal', 120, streaming)
    t1 = time.time()
    res.check('node%d becomes normal after streaming' % (nd.index + 1), ok,
              line + '\n' + nd.tail(10))
    res.check('node%d showed its stream progress in KVD NODES' % (nd.index + 1),
              len(streaming) > 0, line)
    deadline = time.time() + 20
    seen = []
    while time.time() < deadline:
        seen = [statuses(o).get(nd.addr) for o in cl.nodes if o.alive()]
        if seen and all(s == 'normal' for s in seen):
            break
        time.sleep(0.1)
    res.check('every node sees node%d normal' % (nd.index + 1),
              seen and all(s == 'normal' for s in seen), seen)
    inf = info_fields(nd)
    ms = max(1, int(inf.get('stream_ms', '0')))
    mb = int(inf.get('stream_bytes', '0')) / 1048576.0
    recs = int(inf.get('stream_records', '0'))
    print('join node%d: %s ranges (%s retried), %.2f MB and %d records in %.2f s: %.2f MB/s, '
          '%.0f keys/s' % (nd.index + 1, inf.get('stream_ranges'), inf.get('stream_retries'),
                           mb, recs, ms / 1000.0, mb * 1000.0 / ms, recs * 1000.0 / ms))
    before, nb = prober.p99_ms(t0 - 5, t0)
    during, nd_ = prober.p99_ms(t0, t1)
    print('join node%d: QUORUM SET p99 %.2f ms before (%d ops), %.2f ms during (%d ops): '
          'x%.2f' % (nd.index + 1, before, nb, during, nd_, during / before if before else 0))
    res.check('node%d streamed records in' % (nd.index + 1), recs > 0, inf)


def check_shares(cl, res, joiners):
    """Every member's KVD NODES share is 3/5 within 0.10 (balanced tokens); each
    joiner holds locally at least its share of the preload (it streamed all of
    it), and the last one, whose ranges no later join shrank, holds its share
    within 0.05 (without KVD CLEANUP an earlier joiner keeps what it gave away)."""
    view = {v['addr']: v for v in cl.nodes_view(cl.nodes[0])}
    for nd in cl.nodes:
        share = float(view[nd.addr]['share'].rstrip('%')) / 100.0
        res.check('node%d share %.3f is 3/5 within 0.10' % (nd.index + 1, share),
                  abs(share - 0.6) < 0.10)
    for nd in joiners:
        share = float(view[nd.addr]['share'].rstrip('%')) / 100.0
        n = local_keys(nd)  # the preload, plus a few hundred writer and probe keys
        frac = n / float(PRELOAD)
        print('join node%d: holds %d keys locally, %.3f of the preload; NODES share %.3f'
              % (nd.index + 1, n, frac, share))
        res.check('node%d holds at least its share of the keys (%.3f vs %.3f)'
                  % (nd.index + 1, frac, share), frac >= share - 0.03)
    last = joiners[-1]
    share = float(view[last.addr]['share'].rstrip('%')) / 100.0
    frac = local_keys(last) / float(PRELOAD)
    res.check('node%d holds its share of the keys within 0.05 (%.3f vs %.3f)'
              % (last.index + 1, frac, share), abs(frac - share) < 0.05)


def leave_one(cl, res, nd, others):
    c = nd.client()
    try:
        res.eq('KVD LEAVE on node%d' % (nd.index + 1), c.execute_command('KVD', 'LEAVE'), b'OK')
        try:
            c.execute_command('KVD', 'LEAVE')
            again = None
        except redis.ResponseError as e:
            again = str(e)
        res.check('a second KVD LEAVE is refused', again and 'leaving' in again, again)
    finally:
        c.close()
    streaming = []
    ok, line = wait_status(nd, 'left', 120, streaming)
    res.check('node%d leaves (status left)' % (nd.index + 1), ok, line + '\n' + nd.tail(10))
    inf = info_fields(nd)
    print('leave node%d: %s ranges handed over, %s records in %s ms'
          % (nd.index + 1, inf.get('stream_ranges'), inf.get('stream_records'),
             inf.get('stream_ms')))
    try:
        nd.client().get('pre:1')
        down = None
    except redis.ResponseError as e:
        down = str(e)
    res.check('node%d answers CLUSTERDOWN once it left' % (nd.index + 1),
              down and 'left the cluster' in down, down)
    deadline = time.time() + 20
    gone = False
    while time.time() < deadline and not gone:
        gone = all(nd.addr not in [v['addr'] for v in cl.nodes_view(o)] for o in others)
        time.sleep(0.2)
    res.check('node%d is gone from the others\' KVD NODES' % (nd.index + 1), gone)


def check_left_stays_out(nd, res):
    """A node that left, stopped and started again on its dir refuses to start
    (its copy is stale): it exits non-zero and says why."""
    res.eq('node%d exits 0 on SIGTERM after leaving' % (nd.index + 1), nd.terminate(), 0)
    with open(nd.log_path, 'ab') as logf:
        p = subprocess.Popen([nd.binary, nd.conf_path], cwd=nd.dir, stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
        rc = None
    res.check('node%d restarted on its dir after leaving refuses to start (exit %s)'
              % (nd.index + 1, rc), rc not in (0, None), nd.tail(5))
    res.check('node%d says it left the cluster' % (nd.index + 1),
              'left the cluster' in nd.tail(20), nd.tail(5))
    nd.proc = None  # stopped on purpose: out of check_no_crash and Cluster.stop


def run(cl, res):
    first, joiners = cl.nodes[:3], cl.nodes[3:]
    seeds = ','.join(nd.addr for nd in first)
    for nd in cl.nodes:
        nd.conf['cluster-seeds'] = seeds
    for nd in joiners:
        nd.conf['cluster-join'] = 'yes'
    for nd in first:
        nd.start()
    for nd in first:
        res.check('node%d answers' % (nd.index + 1), nd.wait_ping(30))
    ok, why = cl.wait_all_up(60, members=first)
    res.check('3 nodes up', ok, why)
    preload(first[0], res)
    prober = Prober(first[0]).start()
    pool = harness.WriterPool(cl, threads=3, level='QUORUM', prefix='j', nodes=first).start()
    time.sleep(5)
    for nd in joiners:
        join_one(cl, res, nd, prober)
    ok, why = cl.wait_all_up(30)
    res.check('5 nodes up and listed everywhere', ok, why)
    res.check('writers stop', pool.stop())
    prober.stop()
    harness.check_acked(cl, pool, res)
    check_preload(cl.nodes, res, 'after the joins')
    check_shares(cl, res, joiners)

    remaining = cl.nodes[2:]
    pool2 = harness.WriterPool(cl, threads=3, level='QUORUM', prefix='l', nodes=remaining).start()
    leave_one(cl, res, cl.nodes[0], cl.nodes[1:])
    leave_one(cl, res, cl.nodes[1], remaining)
    res.check('writers stop', pool2.stop())
    check_left_stays_out(cl.nodes[0], res)
    harness.check_acked(cl, pool, res, nodes=remaining)
    harness.check_acked(cl, pool2, res, nodes=remaining)
    check_preload(remaining, res, 'after the leaves')


def main():
    return harness.scenario(sys.argv[1], 'join', run, n=5, start=False)


if __name__ == '__main__':
    sys.exit(main())
