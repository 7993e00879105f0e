"""tests/bench/wipe.py KVD_BINARY: a replica whose data directory was wiped while it
was down, brought back by one Merkle repair pass: time, and bytes moved against
the data set (prints numbers, asserts nothing about speed; `make bench-convergence`).

A 3-node persistent cluster (N=3, W=2, background repair off, repair unpaced).
KEYS keys (env WIPE_BENCH_KEYS, default 200,000) of VALUE bytes
(REPAIR_BENCH_VALUE, 100) written at QUORUM through node1; node3 stopped, its
directory wiped except node-id and node-tokens (it keeps its identity and
tokens: tests/cluster/repair_test.py case 1 is the test of the same path, with
20,000 keys), restarted; KVD REPAIR on node3 (again while a pass met a peer
away, at most 3 passes). Printed: the time, the bytes moved (node3's
repair_bytes_in + _out) against the data set's keys and values and against what
node3 held on disk before the wipe, and how many keys node3 alone then answers
at ONE with their value (nodes 1 and 2 SIGSTOPped meanwhile).
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'cluster'))
import harness  # noqa: E402
import repair  # noqa: E402  (tests/bench/repair.py: write, value, repair_pass)
import repair_test  # noqa: E402  (tests/cluster: wipe_keep_identity, data_bytes)

KEYS = int(os.environ.get('WIPE_BENCH_KEYS', '200000'))


def alone_good(cl, node, n):
    """How many key:i node answers at ONE with value(i, 'a') while the others are
    SIGSTOPped (so only its own replica can answer)."""
    others = [o for o in cl.nodes if o is not node]
    for o in others:
        o.sigstop()
    try:
        c = harness.consistency_client(node, 'ONE', timeout=30.0)
        good = 0
        try:
            for start in range(0, n, 1000):
                idx = range(start, min(n, start + 1000))
                vals = c.mget(['key:%d' % i for i in idx])
                good += sum(v == repair.value(i, 'a') for i, v in zip(idx, vals))
        finally:
            c.close()
        return good
    finally:
        for o in others:
            o.sigcont()


def main():
    cl = harness.Cluster(sys.argv[1], n=3, mode='persistent',
                         extra={'repair-interval-seconds': 0, 'repair-throughput-mb-per-sec': 0,
                                'cluster-request-timeout': 5000})
    try:
        cl.start()
        n1, n3 = cl.nodes[0], cl.nodes[2]
        t0 = time.time()
        again = repair.write(n1, list(range(KEYS)), 'a')
        print('wrote %d keys of %d bytes in %.1fs (%d writes sent again after an error)'
              % (KEYS, repair.VALUE, time.time() - t0, again), flush=True)
        time.sleep(2.0)  # the third replica's copies land
        n3.terminate()
        on_disk = repair_test.data_bytes(n3.dir)
        repair_test.wipe_keep_identity(n3.dir)
        n3.restart(timeout=120.0)
        empty = alone_good(cl, n3, KEYS)
        took_all, passes, first, inf = 0.0, 0, None, None
        for passes in range(1, 4):
            ok, why = cl.wait_all_up(timeout=120.0)
            if not ok:
                print('cluster not up: %s' % why)
                return 1
            took, ranges, before, inf = repair.repair_pass(n3)
            first = first or before
            if took is None:
                print('repair did not finish within an hour')
                return 1
            took_all += took
            if inf.get('repair_sessions_partial', 0) == before.get('repair_sessions_partial', 0):
                break
        moved = (inf['repair_bytes_in'] + inf['repair_bytes_out'] -
                 first.get('repair_bytes_in', 0) - first.get('repair_bytes_out', 0))
        data = sum(len('key:%d' % i) for i in range(KEYS)) + KEYS * repair.VALUE
        print('wiped node3: %d of %d keys before repair; %d pass(es) of %d ranges in %.2f s; '
              '%d records pulled; moved %d bytes (in %d, out %d): %.3fx the data set\'s keys and '
              'values (%d bytes), %.3fx what node3 held on disk before the wipe (%d bytes)'
              % (empty, KEYS, passes, ranges, took_all, inf['repair_records_pulled'], moved,
                 inf['repair_bytes_in'], inf['repair_bytes_out'], moved / max(1, data), data,
                 moved / max(1, on_disk), on_disk), flush=True)
        print('node3 alone holds %d of %d keys at their value after the repair'
              % (alone_good(cl, n3, KEYS), KEYS), flush=True)
        return 0
    finally:
        cl.stop()


if __name__ == '__main__':
    sys.exit(main())
