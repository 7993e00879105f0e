"""tests/cluster/cache_test.py KVD_BINARY [--asan]: a cache-mode cluster.

A 3-node cluster with mode cache (every replica in memory, expiring by itself):
SET/GET/INCR/DEL/HSET through each node read back through the others; a key with
a TTL is seen with it through another node and is gone there after it expires;
writers at QUORUM through all nodes, with node 2 SIGSTOPped and continued in the
middle, and every acknowledged write reads back from every node at QUORUM; no node
dies. Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import sys
import time

import harness


def basic(cl, res):
    conns = [nd.client() for nd in cl.nodes]
    n = len(conns)
    try:
        for i, c in enumerate(conns):
            nxt = conns[(i + 1) % n]
            k = 'c:%d' % i
            res.eq('SET via node%d' % (i + 1), c.set(k + ':s', 'v%d' % i), True)
            res.eq('GET via the next node', nxt.get(k + ':s'), b'v%d' % i)
            res.eq('INCR', c.incr(k + ':n'), 1)
            res.eq('INCR via the next node', nxt.incr(k + ':n'), 2)
            res.eq('HSET', c.hset(k + ':h', 'f', 'x'), 1)
            res.eq('HGET via the next node', nxt.hget(k + ':h', 'f'), b'x')
            res.eq('DEL', c.delete(k + ':s', k + ':n', k + ':h'), 3)
            res.eq('GET via the next node after DEL', nxt.get(k + ':s'), None)
        res.eq('SET with PX 1500 via node1', conns[0].set('c:ttl', 'x', px=1500), True)
        ttl = conns[1].pttl('c:ttl')
        res.check('PTTL through node2 within (0, 1500]', 0 < ttl <= 1500, ttl)
        deadline = time.time() + 10
        gone = False
        while time.time() < deadline and not gone:
            gone = conns[2].get('c:ttl') is None
            time.sleep(0.2)
        res.check('the key has expired when read through node3', gone)
    finally:
        for c in conns:
            c.close()


def run(cl, res):
    basic(cl, res)
    pool = harness.WriterPool(cl, threads=3, level='QUORUM', prefix='cw').start()
    time.sleep(1.5)
    cl.nodes[1].sigstop()
    mid = pool.ack_count()
    time.sleep(2.5)
    res.check('QUORUM writes acknowledged while node2 is stopped', pool.ack_count() > mid + 10,
              pool.error_samples)
    cl.nodes[1].sigcont()
    ok, why = cl.wait_all_up(60)
    res.check('every node sees every member up again', ok, why)
    time.sleep(1.0)
    res.check('writers stop', pool.stop())
    harness.check_acked(cl, pool, res)


def main():
    return harness.scenario(sys.argv[1], 'cache', run, n=3, mode='cache')


if __name__ == '__main__':
    sys.exit(main())
