"""tests/cluster/resurrect_test.py KVD_BINARY [--asan]: deleted keys never come back
(issue 11, "Tombstones"): compaction drops a tombstone only once it is past
gc-grace-seconds AND a complete repair (every replica answered) started after it
was written; a node down longer than gc-grace-seconds serves again only once it
has repaired every range it replicates.

Persistent, N=3, W=R=2, gc-grace-seconds 3, hinted-handoff-window 1 ms (hints
for a node that is down are dropped at once), background repair every second.

1. The resurrection case: K keys written at ALL; node3 SIGKILLed; the keys
   deleted at QUORUM through node1 (node3 never gets the tombstones: no hints);
   wait past the grace period; a full compaction on node1 and node2
   (BGREWRITEAOF) while their background repairs run (partial: node3 is away).
   node1 SIGSTOPped, node3 restarted (seeded by node2 only, so it knows the ring
   without node1): it was down longer than the grace period, so it refuses client
   commands with "repairing after a long absence", KVD NODES shows it
   "repairing", INFO repair_after_long_absence:1, and a QUORUM read through node2
   does not count it (node1 away: the read fails instead of answering). node1
   continued: node3 repairs and serves. Every key reads nil from every node at
   ONE, QUORUM and ALL, and again after KVD REPAIR on every node and another full
   compaction everywhere. Without the horizon rule node1 and node2 drop the
   tombstones, node3's repair pushes the old values back and the keys return.
2. GC still moves: once everything was repaired, node1's INFO shows a tombstone
   GC horizon (tombstone_gc_horizon_seconds_ago is not -1).
3. A quick restart is no long absence: node2 SIGKILLed and started at once serves
   without the repair gate (repair_after_long_absence:0).
Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import sys
import time

import redis

import harness
from harness import info

GRACE = 3
K = 20


def compact(node):
    """A full compaction of node's engine (BGREWRITEAOF), waited for."""
    c = node.client(timeout=5.0)
    try:
        c.execute_command('BGREWRITEAOF')
        deadline = time.time() + 60
        while time.time() < deadline:
            if c.info('persistence').get('aof_rewrite_in_progress') == 0:
                return True
            time.sleep(0.1)
        return False
    finally:
        c.close()


def values(node, level, keys):
    """GET of every key through node at level: the values, or the error text."""
    c = harness.consistency_client(node, level, timeout=5.0)
    try:
        return [c.get(k) for k in keys]
    except redis.RedisError as e:
        return 'error: %s' % e
    finally:
        c.close()


def refusal(node):
    """The error a client GET gets from node, or None when it is served."""
    c = node.client(timeout=5.0)
    try:
        c.get('probe')
        return None
    except redis.ResponseError as e:
        return str(e)
    finally:
        c.close()


def wait_for(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    return pred()


def repair_everywhere(cl):
    """KVD REPAIR on every node, waited for (a pass that met a peer away reruns)."""
    for nd in cl.nodes:
        for _ in range(3):
            b4 = info(nd)
            c = nd.client(timeout=5.0)
            try:
                c.execute_command('KVD', 'REPAIR')
            finally:
                c.close()
            wait_for(lambda: (lambda i: i.get('repair_queued_ranges') == 0 and
                              i.get('repair_running') == 0 and
                              i.get('repair_passes', 0) > b4.get('repair_passes', 0))(info(nd)),
                     60.0)
            if info(nd).get('repair_sessions_partial', 0) == b4.get('repair_sessions_partial', 0):
                break


def absent_node_gated(cl, res, n2, n3):
    """node3 just restarted after a long absence, node1 stopped: the gate holds."""
    why = wait_for(lambda: (lambda e: e if e and 'long absence' in e else None)(refusal(n3)),
                   30.0)
    res.check('node3 refuses client commands: repairing after a long absence',
              why is not None and why.startswith('CLUSTERDOWN') and 'long absence' in why,
              '%s; log:\n%s' % (refusal(n3), n3.tail(12)))
    me = [v for v in cl.nodes_view(n3) if v['myself']]
    res.check('KVD NODES on node3 shows itself repairing',
              len(me) == 1 and me[0]['state'] == 'repairing', me)
    res.eq('INFO repair_after_long_absence on node3', info(n3).get('repair_after_long_absence'), 1)
    got = values(n2, 'QUORUM', ['k0'])
    res.check('a QUORUM read through node2 does not count node3 while it repairs (node1 '
              'away: fails)', isinstance(got, str) and 'error' in got, got)


def all_nil(cl, res, keys, label):
    for nd in cl.nodes:
        for level in ('ONE', 'QUORUM', 'ALL'):
            got = values(nd, level, keys)
            bad = got if isinstance(got, str) else [(k, v) for k, v in zip(keys, got) if v is not None]
            res.check('%s: every deleted key reads nil through node%d at %s'
                      % (label, nd.index + 1, level), not bad, bad if isinstance(bad, str) else bad[:5])


def body(cl, res):
    n1, n2, n3 = cl.nodes
    keys = ['k%d' % i for i in range(K)]
    c = harness.consistency_client(n1, 'ALL')
    try:
        for k in keys:
            c.set(k, 'old-' + k)
    finally:
        c.close()
    res.eq('the keys read back at ALL', values(n1, 'ALL', keys), [('old-' + k).encode() for k in keys])
    n3.kill9()
    c = harness.consistency_client(n1, 'QUORUM')
    try:
        deleted = sum(c.delete(k) for k in keys)
    finally:
        c.close()
    res.eq('every key deleted at QUORUM with node3 down', deleted, K)
    time.sleep(GRACE + 2.0)  # the tombstones are past the grace period
    res.check('full compaction on node1 and node2', compact(n1) and compact(n2))

    n1.sigstop()
    try:
        n3.conf['cluster-seeds'] = '%s,%s' % (n2.addr, n3.addr)
        n3.start()
        res.check('node3 answers after its restart', n3.wait_ping(60.0), n3.tail())
        absent_node_gated(cl, res, n2, n3)
    finally:
        n1.sigcont()
    served = wait_for(lambda: refusal(n3) is None, 60.0)
    res.check('node3 serves once its repair is complete', served, refusal(n3))
    ok, why = cl.wait_all_up(timeout=60.0)
    res.check('every node sees every node up', ok, why)
    all_nil(cl, res, keys, 'after node3 came back')

    repair_everywhere(cl)
    res.check('full compaction everywhere', all(compact(nd) for nd in cl.nodes))
    all_nil(cl, res, keys, 'after KVD REPAIR and compaction')

    horizon = wait_for(lambda: info(n1).get('tombstone_gc_horizon_seconds_ago', -1) != -1, 30.0)
    res.check('node1 has a tombstone GC horizon again once every range was repaired',
              horizon, info(n1).get('tombstone_gc_horizon_seconds_ago'))

    n2.kill9()
    n2.start()
    res.check('node2 answers after a quick restart', n2.wait_ping(60.0), n2.tail())
    res.check('a quick restart is no long absence: node2 serves',
              wait_for(lambda: refusal(n2) is None, 30.0), refusal(n2))
    res.eq('INFO repair_after_long_absence on node2', info(n2).get('repair_after_long_absence'), 0)


def main():
    binary = sys.argv[1]
    return harness.scenario(binary, 'resurrect', body, extra={
        'gc-grace-seconds': GRACE,
        'hinted-handoff-window': 1,
        'repair-interval-seconds': 1,
    })


if __name__ == '__main__':
    sys.exit(main())
