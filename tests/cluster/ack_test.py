"""tests/cluster/ack_test.py KVD_BINARY [--asan]: replicas acknowledge after fsync.

A 3-node persistent cluster with appendfsync always (N=3, a 5 s request timeout).
DEBUG SET-FSYNC-DELAY makes one node's engine fsyncs slow:
- on the coordinator itself: a write at ALL waits for its own replica's fsync
  (this node's replica acknowledges once durable, not when the apply returns),
  while a write at ONE does not (a peer's acknowledgement comes first);
- on both peers: a write at QUORUM waits for a peer's fsync (a peer's
  KVD.PEER WRITE reply is held until its WAL sync);
- with appendfsync everysec the same delays hold no reply;
- a failing fsync (DEBUG ENGINE-FAULT fail-sync) on the coordinator: a write at ALL
  fails with NOQUORUM, never a false +OK.
Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import sys
import time

import harness

DELAY_MS = 1500


def timed_set(node, level, key, value='v'):
    """(seconds, reply or exception) of one SET at level through node."""
    c = harness.consistency_client(node, level, timeout=15.0)
    try:
        t0 = time.time()
        try:
            r = c.set(key, value)
        except Exception as e:  # noqa: BLE001 - the reply under test
            r = e
        return time.time() - t0, r
    finally:
        c.close()


def debug(node, *args):
    c = node.client(timeout=10.0)
    try:
        return c.execute_command('DEBUG', *args)
    finally:
        c.close()


def config_set(nodes, name, value):
    for nd in nodes:
        c = nd.client(timeout=5.0)
        try:
            c.config_set(name, value)
        finally:
            c.close()


def main():
    binary = sys.argv[1]
    res = harness.Results('ack')
    skip = harness.node_cluster_or_skip(binary, 'ack')
    if skip is not None:
        return skip
    cl = harness.Cluster(binary, n=3, mode='persistent',
                         extra={'appendfsync': 'always', 'cluster-request-timeout': 5000})
    slow = DELAY_MS / 1000.0 * 0.9
    try:
        cl.start()
        n1, n2, n3 = cl.nodes
        t, r = timed_set(n1, 'ALL', 'base')
        res.check('a write at ALL with fast disks is quick', r is True and t < slow, (t, r))

        res.check('DEBUG SET-FSYNC-DELAY answers OK',
                  debug(n1, 'SET-FSYNC-DELAY', DELAY_MS) in (b'OK', 'OK', True))
        t, r = timed_set(n1, 'ALL', 'own-slow')
        res.check('coordinator with a slow fsync: a write at ALL waits for its own replica',
                  r is True and t >= slow, (round(t, 3), r))
        t, r = timed_set(n1, 'ONE', 'own-slow-one')
        res.check('coordinator with a slow fsync: a write at ONE is answered by a peer first',
                  r is True and t < slow, (round(t, 3), r))
        debug(n1, 'SET-FSYNC-DELAY', 0)

        debug(n2, 'SET-FSYNC-DELAY', DELAY_MS)
        debug(n3, 'SET-FSYNC-DELAY', DELAY_MS)
        t, r = timed_set(n1, 'QUORUM', 'peers-slow')
        res.check('peers with a slow fsync: a write at QUORUM waits for a peer\'s fsync',
                  r is True and t >= slow, (round(t, 3), r))
        t, r = timed_set(n1, 'ONE', 'peers-slow-one')
        res.check('peers with a slow fsync: a write at ONE is answered by the coordinator',
                  r is True and t < slow, (round(t, 3), r))

        config_set(cl.nodes, 'appendfsync', 'everysec')
        debug(n1, 'SET-FSYNC-DELAY', DELAY_MS)
        time.sleep(DELAY_MS / 1000.0 * 2)  # syncs asked under always have drained
        t, r = timed_set(n1, 'ALL', 'everysec')
        res.check('appendfsync everysec: slow fsyncs hold no acknowledgement',
                  r is True and t < slow, (round(t, 3), r))
        for nd in cl.nodes:
            debug(nd, 'SET-FSYNC-DELAY', 0)
        config_set(cl.nodes, 'appendfsync', 'always')
        time.sleep(DELAY_MS / 1000.0 * 2)

        debug(n1, 'ENGINE-FAULT', 'fail-sync')
        t, r = timed_set(n1, 'ALL', 'failing')
        # (refused as soon as its own replica fails: 1 or 2 peers acknowledged by then)
        res.check('coordinator whose fsync fails: a write at ALL is refused, not +OK',
                  isinstance(r, Exception) and 'NOQUORUM' in str(r) and ' of 3' in str(r),
                  (round(t, 3), r))
        debug(n1, 'ENGINE-FAULT', 'off')
        try:
            debug(n1, 'ENGINE-REOPEN')
        except Exception as e:  # noqa: BLE001
            res.check('DEBUG ENGINE-REOPEN after the fault', False, repr(e))
        deadline = time.time() + 20
        r = None
        while time.time() < deadline:
            t, r = timed_set(n1, 'ALL', 'after-fault')
            if r is True:
                break
            time.sleep(0.3)
        res.check('after the fault is cleared writes at ALL work again', r is True, r)
        harness.check_no_crash(cl, res)
    except Exception as e:  # noqa: BLE001
        res.check('cluster run without exception', False, repr(e))
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
