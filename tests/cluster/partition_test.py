"""tests/cluster/partition_test.py KVD_BINARY [--asan]: one node cut off by iptables,
twice; how long the replicas take to converge after each heal.

A 3-node persistent cluster (N=3, W=2, R=2) with a short hint window
(hinted-handoff-window 3000 ms) and background repair every 2 s
(repair-interval-seconds 2). Writers at QUORUM through nodes 1 and 2. Node 3 is
partitioned from both (iptables DROP on lo between the node addresses, both
ways, rules tagged kvd-cluster-test and always removed): nodes 1 and 2 see it
down and keep acknowledging QUORUM writes; a QUORUM write through node 3 fails
(it reaches no other replica).

Two rounds: a short partition (writers for about 2 s once node 1 sees node 3
down, healed at once when they stop: hints and repair race) and a long one
(writers for 12 s, four hint windows, then 6 s without writes before the heal:
every hint for node 3 is older than the window and dropped, which is checked, so
only Merkle anti-entropy can bring node 3 those writes; with
repair-interval-seconds 0 the round fails). From the heal on, nothing reads through the
coordinator (no read repair) until every node's local copy is the same: each
node's own Merkle root over the whole ring and its record count, asked as a
peer (local_digest.py). The seconds from heal to that point are printed with the
hints delivered and the records repair moved meanwhile; a round fails only when
the replicas have not converged within 60 s (a bound on correctness, not a speed
assertion). Then every acknowledged write reads back from every node at QUORUM,
and at ONE.

SKIPs when iptables is missing or unusable, and while the binary has no
cluster. Ends with "N passed, M failed".
"""
import sys
import time

import redis

import harness
from local_digest import converged, digests

HINT_WINDOW_MS = 3000
REPAIR_INTERVAL_S = 2
CONVERGE_BOUND_S = 60.0


def counters(cl):
    """Sums over the nodes of the INFO kvdcluster counters that say how data moved."""
    keys = ('hints_delivered', 'hints_dropped_window', 'repair_records_pulled',
            'repair_records_pushed', 'repair_bytes_in')
    tot = dict.fromkeys(keys, 0)
    for nd in cl.nodes:
        c = nd.client(timeout=5.0)
        try:
            inf = c.info('kvdcluster')
        finally:
            c.close()
        for k in keys:
            tot[k] += int(inf.get(k, 0))
    return tot


def rules_in_place():
    """How many partition rules (tagged harness.PARTITION_TAG) are on INPUT now."""
    r = harness._iptables('-S', 'INPUT')
    return sum(harness.PARTITION_TAG in line for line in r.stdout.splitlines())


def wait_converged(cl, bound):
    """Polls every node's local digest until all agree; (seconds, last digests)."""
    t0 = time.time()
    d = {}
    while time.time() - t0 < bound:
        d = digests(cl)
        if converged(d):
            return time.time() - t0, d
        time.sleep(0.1)
    return None, d


def cut_off_write_fails(n3, res):
    c = harness.consistency_client(n3, 'QUORUM', timeout=10.0)
    try:
        c.set('p:cut-off', 'x')
        res.check('a QUORUM write through the cut-off node3 fails', False)
    except redis.ResponseError as e:
        res.check('a QUORUM write through the cut-off node3 fails with NOQUORUM',
                  str(e).startswith('NOQUORUM'), str(e))
    finally:
        c.close()


def one_round(cl, res, label, hold_s, quiet_s, prefix):
    """Partitions node3 while writers run for hold_s after node1 sees it down,
    stops the writers, heals quiet_s later, and measures the time to converge."""
    n1, n2, n3 = cl.nodes
    start = counters(cl)
    pool = harness.WriterPool(cl, threads=4, level='QUORUM', prefix=prefix, nodes=[n1, n2],
                              keys_per_writer=256).start()
    time.sleep(1.0)
    harness.partition([n3], [n1, n2])
    t_cut = time.time()
    try:
        res.check('%s: node1 sees node3 down while partitioned' % label,
                  cl.wait_state(n1, n3, 'down', 30))
        mid = pool.ack_count()
        time.sleep(hold_s)
        res.check('%s: QUORUM writes through nodes 1 and 2 still acknowledged' % label,
                  pool.ack_count() > mid + 10, pool.error_samples)
        cut_off_write_fails(n3, res)
        res.check('%s: writers stop' % label, pool.stop())
        time.sleep(quiet_s)
        before = counters(cl)
        at_cut = digests(cl)
        held = rules_in_place()
    finally:
        removed = harness.heal()
    t_heal = time.time()
    res.check('%s: the partition rules were removed (%d)' % (label, removed), removed == 4,
              removed)
    res.check('%s: the partition held until the heal (%d rules; fewer: another run\'s '
              'heal() removed every %s rule, run this test alone)'
              % (label, held, harness.PARTITION_TAG), held == 4)
    res.check('%s: at the heal node3 lacks writes the others hold (its records differ)'
              % label, not converged(at_cut) or held < 4, at_cut)
    took, d = wait_converged(cl, CONVERGE_BOUND_S)
    after = counters(cl)
    delta = {k: after[k] - before[k] for k in after}
    res.check('%s: every replica holds the same records within %.0f s of the heal'
              % (label, CONVERGE_BOUND_S), took is not None, d)
    print('MEASURED partition %s: cut %.1f s, %d acknowledged writes; converged %s after the heal '
          '(%d records on each node); meanwhile hints delivered %d, records repair pulled '
          '%d / pushed %d; hints dropped by the window in the round %d'
          % (label, t_heal - t_cut, pool.ack_count(),
             '%.2f s' % took if took is not None else 'NOT within %.0f s' % CONVERGE_BOUND_S,
             next(iter(d.values()))[0] if took is not None else -1,
             delta['hints_delivered'], delta['repair_records_pulled'],
             delta['repair_records_pushed'],
             after['hints_dropped_window'] - start['hints_dropped_window']), flush=True)
    ok, why = cl.wait_all_up(60)
    res.check('%s: after healing every node sees every member up' % label, ok, why)
    harness.check_acked(cl, pool, res)
    harness.converged_at_one(cl, pool, res, label)
    return after['hints_dropped_window'] - start['hints_dropped_window']


def run(cl, res):
    one_round(cl, res, 'short', 2.0, 0.0, 'p')
    window = HINT_WINDOW_MS / 1000.0
    dropped = one_round(cl, res, 'long', 4 * window, 2 * window, 'q')
    res.check('long: hints older than the window were dropped (%d), so anti-entropy repair '
              'had to bring node3 those writes' % dropped, dropped > 0)


def main():
    usable, why = harness.iptables_usable()
    if not usable:
        print('SKIP partition: %s' % why)
        return harness.Results('partition').summary()
    return harness.scenario(sys.argv[1], 'partition', run, n=3, mode='persistent',
                            extra={'hinted-handoff-window': HINT_WINDOW_MS,
                                   'repair-interval-seconds': REPAIR_INTERVAL_S})


if __name__ == '__main__':
    sys.exit(main())
