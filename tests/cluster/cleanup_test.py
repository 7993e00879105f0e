"""tests/cluster/cleanup_test.py KVD_BINARY [--asan]: KVD CLEANUP after a join, in
cache mode and in persistent mode.

Three nodes (N=2, W=2, R=2) hold a preloaded data set (strings, some with a TTL,
and a few hashes). KVD CLEANUP on a node that holds only its own ranges drops
nothing; KVD CLEANUP with an argument is an arity error. A fourth node joins
(cluster-join yes); while it is joining, KVD CLEANUP on an old node is refused
(ranges are moving). Once it is normal everywhere each old node still holds what
it gave away; KVD CLEANUP on each of them then answers the number of ranges it
drops, and in the background:
  - each old node's local key count (INFO keyspace) falls to its share of the keys
    (KVD NODES) within 0.05, and the four local counts add up to N x the keys
    (each key on exactly its 2 replicas: nothing was dropped that a node
    replicates, nothing kept that it does not);
  - the joiner's local count does not move (nothing replicated as a delete);
  - every key reads back at QUORUM through every node, TTLs intact;
  - INFO kvdcluster cleanup_keys_dropped is what the local count lost.
Persistent mode also: the SSTable bytes of an old node fall after its cleanup's
compaction (printed), and after a restart the node still holds its share (dropped
keys stay dropped, kept keys intact). Ends with "N passed, M failed"; SKIPs while
the binary has no cluster.
"""
import glob
import os
import sys
import time

import redis

import harness
from harness import info_fields, local_keys, statuses

PRELOAD = 6000
TTL_KEYS = 300
HASHES = 50


def total_keys():
    return PRELOAD + TTL_KEYS + HASHES


def value(k):
    return 'v%d-' % k + 'x' * 100


def preload(node, res):
    harness.preload_keys(node, PRELOAD, value)
    c = harness.consistency_client(node, 'QUORUM', timeout=10.0)
    try:
        p = c.pipeline(transaction=False)
        for k in range(TTL_KEYS):
            p.set('ttl:%d' % k, 't%d' % k, ex=3600)
        for k in range(HASHES):
            p.hset('h:%d' % k, mapping={'a': str(k), 'b': 'y' * 20})
        p.execute()
    finally:
        c.close()
    res.check('preloaded %d keys at QUORUM' % total_keys(), True)


def check_reads(nodes, res, label):
    """Every key reads back at QUORUM through every node, TTLs kept."""
    for nd in nodes:
        bad = [('pre', k, v) for k, v in harness.bad_preloaded(nd, PRELOAD, value)]
        c = harness.consistency_client(nd, 'QUORUM', timeout=10.0)
        try:
            p = c.pipeline(transaction=False)
            for k in range(TTL_KEYS):
                p.ttl('ttl:%d' % k)
            for k, t in enumerate(p.execute(raise_on_error=False)):
                if not isinstance(t, int) or t <= 0 or t > 3600:
                    bad.append(('ttl', k, t))
            p = c.pipeline(transaction=False)
            for k in range(HASHES):
                p.hget('h:%d' % k, 'a')
            for k, v in enumerate(p.execute(raise_on_error=False)):
                if v != str(k).encode():
                    bad.append(('hash', k, v))
        finally:
            c.close()
        res.check('%s: all %d keys read back through %s at QUORUM'
                  % (label, total_keys(), nd.addr), not bad, bad[:5])


def cleanup_reply(node):
    c = node.client()
    try:
        return c.execute_command('KVD', 'CLEANUP')
    except redis.ResponseError as e:
        return e
    finally:
        c.close()


def wait_cleanup_done(node, runs, timeout=90):
    deadline = time.time() + timeout
    inf = {}
    while time.time() < deadline:
        inf = info_fields(node)
        if inf.get('cleanup_runs') == str(runs) and inf.get('cleanup_state') in ('done', 'aborted'):
            return inf
        time.sleep(0.1)
    return inf


def sst_bytes(node):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(node.dir, '**', '*.sst'),
                                                      recursive=True))


def check_before_join(first, res):
    nd = first[0]
    before = local_keys(nd)
    r = cleanup_reply(nd)
    res.check('KVD CLEANUP on a node holding only its ranges answers a range count',
              isinstance(r, int) and r >= 0, r)
    inf = wait_cleanup_done(nd, 1)
    res.eq('... and drops nothing (cleanup_keys_dropped)', inf.get('cleanup_keys_dropped'), '0')
    res.eq('... its local key count is unchanged', local_keys(nd), before)
    c = nd.client()
    try:
        try:
            c.execute_command('KVD', 'CLEANUP', 'now')
            err = None
        except redis.ResponseError as e:
            err = str(e)
    finally:
        c.close()
    res.check('KVD CLEANUP now: wrong number of arguments', err and 'wrong number' in err, err)


def join_refusing_cleanup(cl, res, joiner, old):
    """Starts joiner and, while old sees it joining, KVD CLEANUP on old is refused."""
    joiner.start()
    res.check('node4 answers', joiner.wait_ping(30))
    deadline = time.time() + 30
    refused = None
    while time.time() < deadline:
        if statuses(old).get(joiner.addr) == 'joining':
            r = cleanup_reply(old)
            refused = r
            break
        time.sleep(0.05)
    res.check('KVD CLEANUP is refused while node4 joins',
              isinstance(refused, redis.ResponseError) and 'joining' in str(refused), refused)
    deadline = time.time() + 120
    seen = []
    while time.time() < deadline:
        seen = [statuses(o).get(joiner.addr) for o in cl.nodes]
        if all(s == 'normal' for s in seen):
            break
        time.sleep(0.1)
    res.check('node4 becomes normal on every node', all(s == 'normal' for s in seen), seen)


def shares(cl):
    view = {v['addr']: v for v in cl.nodes_view(cl.nodes[0])}
    return {nd.addr: float(view[nd.addr]['share'].rstrip('%')) / 100.0 for nd in cl.nodes}


def run_cleanups(cl, res, old, mode):
    total = total_keys()
    before = {nd.addr: local_keys(nd) for nd in cl.nodes}
    joiner_before = before[cl.nodes[3].addr]
    sst_before = {}
    if mode == 'persistent':
        for nd in old:
            c = nd.client()
            c.execute_command('SAVE')  # the memtable to SSTables: a fair "before"
            c.close()
            sst_before[nd.addr] = sst_bytes(nd)
    for nd in old:
        r = cleanup_reply(nd)
        res.check('KVD CLEANUP on node%d answers how many ranges go (>0)' % (nd.index + 1),
                  isinstance(r, int) and r > 0, r)
    sh = shares(cl)
    for nd in old:
        runs = 2 if nd is old[0] else 1
        inf = wait_cleanup_done(nd, runs)
        res.eq('node%d cleanup finishes' % (nd.index + 1), inf.get('cleanup_state'), 'done')
        after = local_keys(nd)
        frac = after / float(total)
        print('%s node%d: %d -> %d local keys (%.3f of the keys, share %.3f), '
              'dropped %s keys / %s bytes in %s ms over %s ranges'
              % (mode, nd.index + 1, before[nd.addr], after, frac, sh[nd.addr],
                 inf.get('cleanup_keys_dropped'), inf.get('cleanup_bytes_dropped'),
                 inf.get('cleanup_ms'), inf.get('cleanup_ranges')))
        res.check('node%d held more than its share before (%d > %d)'
                  % (nd.index + 1, before[nd.addr], after), before[nd.addr] > after)
        res.check('node%d now holds its share within 0.05 (%.3f vs %.3f)'
                  % (nd.index + 1, frac, sh[nd.addr]), abs(frac - sh[nd.addr]) < 0.05)
        res.eq('node%d cleanup_keys_dropped is what its count lost' % (nd.index + 1),
               inf.get('cleanup_keys_dropped'), str(before[nd.addr] - after))
        if mode == 'persistent':
            sb, sa = sst_before[nd.addr], sst_bytes(nd)
            print('%s node%d: SSTable bytes %d -> %d (x%.2f)'
                  % (mode, nd.index + 1, sb, sa, sa / float(sb) if sb else 0))
            kept = after / float(before[nd.addr])
            res.check('node%d SSTable bytes fell with its keys (%d -> %d, keys x%.2f)'
                      % (nd.index + 1, sb, sa, kept),
                      sb > 0 and sa < sb and sa <= sb * (kept + 0.05))
    counts = [local_keys(nd) for nd in cl.nodes]
    res.check('the 4 local counts add up to N x the keys (%s, want %d)' % (counts, 2 * total),
              abs(sum(counts) - 2 * total) <= 2, counts)
    res.eq('the joiner lost nothing (no delete was replicated)',
           local_keys(cl.nodes[3]), joiner_before)


def check_restart(cl, res, nd):
    want = local_keys(nd)
    res.eq('node%d exits 0 on SIGTERM' % (nd.index + 1), nd.terminate(), 0)
    nd.start()
    res.check('node%d answers after a restart' % (nd.index + 1), nd.wait_ping(60))
    ok, why = cl.wait_all_up(60)
    res.check('4 nodes up after the restart', ok, why)
    res.eq('node%d holds the same keys after a restart' % (nd.index + 1), local_keys(nd), want)


def run(cl, res, mode):
    first, joiner = cl.nodes[:3], cl.nodes[3]
    seeds = ','.join(nd.addr for nd in first)
    for nd in cl.nodes:
        nd.conf['cluster-seeds'] = seeds
    joiner.conf['cluster-join'] = 'yes'
    for nd in first:
        nd.start()
    for nd in first:
        res.check('node%d answers' % (nd.index + 1), nd.wait_ping(30))
    ok, why = cl.wait_all_up(60, members=first)
    res.check('3 nodes up', ok, why)
    preload(first[0], res)
    check_before_join(first, res)
    join_refusing_cleanup(cl, res, joiner, first[0])
    ok, why = cl.wait_all_up(30)
    res.check('4 nodes up and listed everywhere', ok, why)
    check_reads(cl.nodes, res, 'after the join')
    run_cleanups(cl, res, first, mode)
    check_reads(cl.nodes, res, 'after the cleanups')
    if mode == 'persistent':
        check_restart(cl, res, first[1])
        check_reads([first[1]], res, 'after a restart')


def main():
    binary = sys.argv[1]
    skip = harness.node_cluster_or_skip(binary, 'cleanup')
    if skip is not None:
        return skip
    res = harness.Results('cleanup')
    for mode in ('cache', 'persistent'):
        cl = harness.Cluster(binary, n=4, mode=mode,
                             extra={'replication-factor': 2, 'write-quorum': 2,
                                    'read-quorum': 2})
        try:
            run(cl, res, mode)
            harness.check_no_crash(cl, res)
        except Exception as e:  # noqa: BLE001 - a harness failure is one failed case
            res.check('%s: cluster run without exception' % mode, False, repr(e))
        finally:
            harness.check_clean_exit(cl.stop(), res, cl)
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
