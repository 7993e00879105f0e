"""tests/cluster/partition_test.py KVD_BINARY [--asan]: one node cut off by iptables.

A 3-node persistent cluster; writers at QUORUM through nodes 1 and 2. Node 3 is
partitioned from both (iptables DROP on lo between the node addresses, both ways,
rules tagged kvd-cluster-test and always removed): nodes 1 and 2 see it down and
keep acknowledging QUORUM writes; a QUORUM write through node 3 fails (it reaches
no other replica). After healing, every node sees every member up, every
acknowledged write reads back from every node at QUORUM, and the replicas converge
(read at ONE from each node). SKIPs when iptables is missing or unusable, and while
the binary has no cluster. Ends with "N passed, M failed".
"""
import sys
import time

import redis

import harness


def run(cl, res):
    n1, n2, n3 = cl.nodes
    pool = harness.WriterPool(cl, threads=4, level='QUORUM', prefix='p', nodes=[n1, n2]).start()
    time.sleep(1.0)
    harness.partition([n3], [n1, n2])
    try:
        res.check('node1 sees node3 down while partitioned', cl.wait_state(n1, n3, 'down', 30))
        mid = pool.ack_count()
        time.sleep(2.0)
        res.check('QUORUM writes through nodes 1 and 2 still acknowledged', pool.ack_count() > mid + 10,
                  pool.error_samples)
        c = harness.consistency_client(n3, 'QUORUM', timeout=10.0)
        try:
            c.set('p:cut-off', 'x')
            res.check('a QUORUM write through the cut-off node3 fails', False)
        except redis.ResponseError as e:
            res.check('a QUORUM write through the cut-off node3 fails with NOQUORUM',
                      str(e).startswith('NOQUORUM'), str(e))
        finally:
            c.close()
    finally:
        removed = harness.heal()
    res.check('the partition rules were removed (%d)' % removed, removed == 4, removed)
    ok, why = cl.wait_all_up(60)
    res.check('after healing every node sees every member up', ok, why)
    time.sleep(1.0)
    res.check('writers stop', pool.stop())
    harness.check_acked(cl, pool, res)
    harness.converged_at_one(cl, pool, res, 'after healing')


def main():
    usable, why = harness.iptables_usable()
    if not usable:
        print('SKIP partition: %s' % why)
        return harness.Results('partition').summary()
    return harness.scenario(sys.argv[1], 'partition', run, n=3, mode='persistent')


if __name__ == '__main__':
    sys.exit(main())
