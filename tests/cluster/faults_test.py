"""tests/cluster/faults_test.py KVD_BINARY [--asan]: writers at QUORUM through faults.

A 3-node persistent cluster (N=3 W=2 R=2). Four writers (one connection per node,
round robin) SET their own keys at QUORUM and record every acknowledged write.
Round 1: node 2 is SIGKILLed mid-load, the others keep acknowledging, then it is
restarted (same dir: same id and tokens) and seen up by everyone. Round 2: node 3
is SIGSTOPped mid-load, writes go on, then SIGCONTinued. After each round every
acknowledged write reads back from every node at QUORUM (and, after hints and read
repair had time, at ONE: every node's own replicas converged), and no node died on
its own. Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import sys
import time

import harness


def load_through(cl, res, pool, fault, recover, label, fault_secs=3.0):
    before = pool.ack_count()
    time.sleep(1.5)
    res.check('%s: writes acknowledged before the fault' % label, pool.ack_count() > before,
              pool.error_samples)
    fault()
    mid = pool.ack_count()
    time.sleep(fault_secs)
    res.check('%s: QUORUM writes still acknowledged while the node is out' % label,
              pool.ack_count() > mid + 10, (pool.ack_count() - mid, pool.error_samples))
    recover()
    ok, why = cl.wait_all_up(60)
    res.check('%s: every node sees every member up again' % label, ok, why)
    after = pool.ack_count()
    time.sleep(1.5)
    res.check('%s: writes acknowledged after recovery' % label, pool.ack_count() > after)


def run(cl, res):
    n2, n3 = cl.nodes[1], cl.nodes[2]

    pool = harness.WriterPool(cl, threads=4, level='QUORUM', prefix='k').start()
    load_through(cl, res, pool, n2.kill9, lambda: res.check('node2 restarts', n2.restart()),
                 'SIGKILL node2')
    res.check('round 1 writers stop', pool.stop())
    harness.check_acked(cl, pool, res)
    harness.converged_at_one(cl, pool, res, 'after SIGKILL')

    pool2 = harness.WriterPool(cl, threads=4, level='QUORUM', prefix='s').start()
    load_through(cl, res, pool2, n3.sigstop, n3.sigcont, 'SIGSTOP node3')
    res.check('round 2 writers stop', pool2.stop())
    harness.check_acked(cl, pool2, res)
    harness.converged_at_one(cl, pool2, res, 'after SIGSTOP')


def main():
    return harness.scenario(sys.argv[1], 'faults', run, n=3, mode='persistent')


if __name__ == '__main__':
    sys.exit(main())
