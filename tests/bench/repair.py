"""tests/bench/repair.py KVD_BINARY: time and bytes of a Merkle repair (not in make
test; `make bench-convergence` runs it; prints numbers, asserts nothing about speed).

A 3-node persistent cluster (N=3, W=2, background repair off, repair unpaced,
hints dropped at once: hinted-handoff-window 1 ms). KEYS keys (env
REPAIR_BENCH_KEYS, default 1,000,000) of VALUE bytes (REPAIR_BENCH_VALUE, 100) are
written at QUORUM; node3 is killed; DIVERGENT (REPAIR_BENCH_DIVERGENT, 0.01) of the
keys are overwritten through node1 with new values, which node3 misses; node3 is
restarted and KVD REPAIR is run on it. Printed: the time of the repair pass, the
bytes it moved (node3's repair_bytes_in + repair_bytes_out: trees, pages, pushes),
the records pulled, and the ratio of bytes moved to the divergent data (keys plus
new values of the overwritten keys). Then every overwritten key is checked at ONE
on node3 alone (a sanity check, printed).
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'cluster'))
import harness  # noqa: E402

KEYS = int(os.environ.get('REPAIR_BENCH_KEYS', '1000000'))
VALUE = int(os.environ.get('REPAIR_BENCH_VALUE', '100'))
DIVERGENT = float(os.environ.get('REPAIR_BENCH_DIVERGENT', '0.01'))


def value(i, gen):
    v = ('%s-%d-' % (gen, i)).encode()
    return (v * (VALUE // len(v) + 1))[:VALUE]


def write(node, idx, gen, attempts=5):
    """SETs key:i = value(i, gen) for i in idx through node (QUORUM), pipelined by
    1000; a write that failed (NOQUORUM under load: indeterminate) is sent again,
    up to attempts times. Returns how many were sent again."""
    c = node.client(timeout=30.0)
    again = 0
    try:
        for start in range(0, len(idx), 1000):
            part = idx[start:start + 1000]
            for attempt in range(attempts):
                p = c.pipeline(transaction=False)
                for i in part:
                    p.set('key:%d' % i, value(i, gen))
                res = p.execute(raise_on_error=False)
                bad = [(i, r) for i, r in zip(part, res) if r is not True]
                part = [i for i, _ in bad]
                if not part:
                    break
                again += len(part)
                time.sleep(0.5)
            if part:
                raise RuntimeError('%d writes failed %d times, e.g. key:%d: %r'
                                   % (len(part), attempts, part[0], bad[0][1]))
    finally:
        c.close()
    return again


def repair_pass(node, limit=3600.0):
    """KVD REPAIR on node, waits until INFO says that pass ended: (seconds or None,
    ranges queued, INFO before, INFO after)."""
    before = harness.info(node, timeout=10.0)
    c = node.client(timeout=10.0)
    try:
        ranges = c.execute_command('KVD', 'REPAIR')
    finally:
        c.close()
    t0 = time.time()
    while time.time() - t0 < limit:
        inf = harness.info(node, timeout=10.0)
        if (inf.get('repair_queued_ranges') == 0 and inf.get('repair_running') == 0 and
                inf.get('repair_passes', 0) > before.get('repair_passes', 0)):
            return time.time() - t0, int(ranges), before, inf
        time.sleep(0.2)
    return None, int(ranges), before, harness.info(node, timeout=10.0)


def catch_up(cl, wait=60.0):
    """Until every node holds every key: the third replica's write can trail the
    QUORUM acknowledgement, and under load time out (its hint is dropped at once
    here). Past wait, a repair pass on each node that lacks keys brings it level.
    Prints what it took: the divergence measured below is then only the bench's."""
    t0 = time.time()
    have = [harness.local_keys(nd, timeout=10.0) for nd in cl.nodes]
    while min(have) < KEYS and time.time() - t0 < wait:
        time.sleep(0.5)
        have = [harness.local_keys(nd, timeout=10.0) for nd in cl.nodes]
    hints = [harness.info(nd, timeout=10.0) for nd in cl.nodes]
    print('%.1f s after the last acknowledgement the nodes hold %s keys; hints added %s, '
          'dropped by the 1 ms window %s' % (time.time() - t0, have,
                                             [h.get('hints_added') for h in hints],
                                             [h.get('hints_dropped_window') for h in hints]),
          flush=True)
    for nd, n in zip(cl.nodes, have):
        if n < KEYS:
            took, _, before, inf = repair_pass(nd)
            pulled = inf['repair_records_pulled'] - before.get('repair_records_pulled', 0)
            print('node%d lacked %d keys: a first repair pass pulled %d records in %.1f s; it '
                  'now holds %d' % (nd.index + 1, KEYS - n, pulled, took or -1, harness.local_keys(nd, timeout=10.0)),
                  flush=True)


def main():
    binary = sys.argv[1]
    cl = harness.Cluster(binary, n=3, mode='persistent',
                         extra={'repair-interval-seconds': 0, 'repair-throughput-mb-per-sec': 0,
                                'hinted-handoff-window': 1, 'cluster-request-timeout': 5000})
    try:
        cl.start()
        n1, n3 = cl.nodes[0], cl.nodes[2]
        t0 = time.time()
        again = write(n1, list(range(KEYS)), 'a')
        print('wrote %d keys of %d bytes in %.1fs (%d writes sent again after an error)'
              % (KEYS, VALUE, time.time() - t0, again), flush=True)
        catch_up(cl)
        n3.kill9()
        step = max(1, int(round(1 / DIVERGENT)))
        changed = list(range(0, KEYS, step))
        write(n1, changed, 'b')
        div_bytes = sum(len('key:%d' % i) + VALUE for i in changed)
        time.sleep(1.0)
        n3.restart(timeout=120.0)
        ok, why = cl.wait_all_up(timeout=120.0)
        if not ok:
            print('cluster not up: %s' % why)
            return 1
        print('node3 holds %s keys (INFO keyspace) before the repair' % harness.local_keys(n3, timeout=10.0), flush=True)
        took, ranges, before, inf = repair_pass(n3)
        if took is None:
            print('repair did not finish within an hour')
            return 1
        moved = (inf['repair_bytes_in'] + inf['repair_bytes_out'] -
                 before.get('repair_bytes_in', 0) - before.get('repair_bytes_out', 0))
        print('repair of %d ranges on node3: %.2fs; %d of %d keys divergent (%d bytes of keys '
              'and values); moved %d bytes (in %d, out %d); %d records pulled, %d pushed; '
              'bytes moved / divergent bytes = %.2f; data set %d bytes, moved / data set = %.4f; '
              'sessions complete %d, partial %d'
              % (ranges, took, len(changed), KEYS, div_bytes, moved,
                 inf['repair_bytes_in'], inf['repair_bytes_out'], inf['repair_records_pulled'],
                 inf['repair_records_pushed'], moved / max(1, div_bytes),
                 KEYS * (VALUE + 10), moved / max(1, KEYS * (VALUE + 10)),
                 inf['repair_sessions_complete'] - before.get('repair_sessions_complete', 0),
                 inf['repair_sessions_partial'] - before.get('repair_sessions_partial', 0)),
              flush=True)
        for o in cl.nodes[:2]:
            o.sigstop()
        try:
            cc = harness.consistency_client(n3, 'ONE', timeout=30.0)
            good, wrong = 0, []
            for start in range(0, len(changed), 500):
                part = changed[start:start + 500]
                vals = cc.mget(['key:%d' % i for i in part])
                for i, v in zip(part, vals):
                    if v == value(i, 'b'):
                        good += 1
                    elif len(wrong) < 5:
                        wrong.append('key:%d=%r' % (i, v if v is None else v[:12]))
            cc.close()
        finally:
            for o in cl.nodes[:2]:
                o.sigcont()
        print('node3 alone holds %d of %d overwritten keys at their new value%s'
              % (good, len(changed), '; not: ' + ', '.join(wrong) if wrong else ''))
        return 0
    finally:
        cl.stop()


if __name__ == '__main__':
    sys.exit(main())
