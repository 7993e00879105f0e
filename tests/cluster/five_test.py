"""tests/cluster/five_test.py KVD_BINARY [--asan]: a 5-node cluster, N=3 W=2 R=2.

Every node's KVD NODES lists the 5 members up, exactly one marked myself (its own
address); KVD KEYNODES gives 3 distinct replicas, the same on every node; writers at
QUORUM through all five nodes while node 4 is SIGKILLed and restarted; afterwards
every acknowledged write reads back from every node at QUORUM and no node died on
its own. Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import sys

import harness
from faults_test import load_through


def views(cl, res):
    for nd in cl.nodes:
        v = cl.nodes_view(nd)
        res.eq('KVD NODES on %s lists 5 members' % nd.addr, len(v), 5)
        res.check('all up on %s' % nd.addr, all(x['state'] == 'up' for x in v), v)
        mine = [x['addr'] for x in v if x['myself']]
        res.eq('exactly one myself on %s, itself' % nd.addr, mine, [nd.addr])
    for key in ('alpha', 'beta', 'gamma'):
        seen = []
        for nd in cl.nodes:
            c = nd.client()
            try:
                txt = c.execute_command('KVD', 'KEYNODES', key)
            finally:
                c.close()
            if isinstance(txt, list):
                txt = b'\n'.join(t if isinstance(t, bytes) else str(t).encode() for t in txt)
            seen.append([ln.split()[0] for ln in txt.decode().splitlines() if ln.strip()])
        res.eq('KVD KEYNODES %s: 3 replicas' % key, len(seen[0]), 3)
        res.eq('KVD KEYNODES %s: distinct' % key, len(set(seen[0])), 3)
        res.check('KVD KEYNODES %s: the same on every node' % key, all(s == seen[0] for s in seen), seen)


def run(cl, res):
    views(cl, res)
    n4 = cl.nodes[3]
    pool = harness.WriterPool(cl, threads=5, level='QUORUM', prefix='f').start()
    load_through(cl, res, pool, n4.kill9, lambda: res.check('node4 restarts', n4.restart()),
                 'SIGKILL node4')
    res.check('writers stop', pool.stop())
    harness.check_acked(cl, pool, res)
    harness.converged_at_one(cl, pool, res, 'after SIGKILL')


def main():
    return harness.scenario(sys.argv[1], 'five', run, n=5, mode='persistent', start_timeout=90)


if __name__ == '__main__':
    sys.exit(main())
