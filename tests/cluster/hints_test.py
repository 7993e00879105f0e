"""tests/cluster/hints_test.py KVD_BINARY [--asan]: hinted handoff on real processes.

1. Durable hints (persistent, N=3 W=2): node3 is down, writes at QUORUM through
   node1 become hints for node3 on node1; node1 is SIGKILLed and restarted (its
   hint log in dir/hints/ brings them back), node3 is started again: every write
   is on node3 afterwards (read at ONE from node3 while the others are SIGSTOPped,
   so only its own replica answers), and node1's hint log is drained to its header.
   node3 is killed rather than SIGSTOPped: a stopped node still has in its socket
   buffer the requests sent to it before the timeout and applies them when
   continued, so only hints can bring it a write here.
2. Bounds (persistent, short window, small max bytes): beyond
   hinted-handoff-max-bytes new hints are refused and counted while every write is
   still acknowledged; hints older than hinted-handoff-window are dropped and
   counted, also when the window passes while the coordinator is down (at load);
   node3 then does not hold the dropped writes.
3. Cache mode: hints in memory (no hint log), delivered when node3, SIGSTOPped
   during the writes, is continued. (Stopped, not killed: a cache node restarts
   with a new id, a new member, which part 1's membership cannot retire.)
Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import os
import sys
import time

import harness
from harness import info

N_KEYS = 200


def wait_info(node, pred, timeout=20.0):
    """The node's INFO kvdcluster once pred(info) holds (bounded), else the last one."""
    deadline = time.time() + timeout
    last = {}
    while time.time() < deadline:
        try:
            last = info(node)
            if pred(last):
                return True, last
        except Exception as e:  # noqa: BLE001 - loading, restarting
            last = {'error': repr(e)}
        time.sleep(0.2)
    return False, last


def write_keys(node, prefix, n, value=lambda i: 'v%d' % i, level='QUORUM'):
    """SETs prefix:i = value(i) through node; returns how many were acknowledged."""
    c = harness.consistency_client(node, level, timeout=5.0)
    ok = 0
    try:
        for i in range(n):
            try:
                if c.set('%s:%d' % (prefix, i), value(i)):
                    ok += 1
            except Exception:  # noqa: BLE001 - counted as not acknowledged
                pass
    finally:
        c.close()
    return ok


def local_values(cl, node, keys):
    """What node's own replica holds for keys: the other nodes are SIGSTOPped, so at
    ONE only node's local replica can answer; they are continued after."""
    others = [n for n in cl.nodes if n is not node and n.alive()]
    for o in others:
        o.sigstop()
    try:
        c = harness.consistency_client(node, 'ONE', timeout=10.0)
        try:
            vals = []
            for k in keys:  # (a pipeline would take another connection of the pool)
                try:
                    vals.append(c.get(k))
                except Exception as e:  # noqa: BLE001 - reported as the value
                    vals.append(e)
        finally:
            c.close()
    finally:
        for o in others:
            o.sigcont()
    return [v.decode() if isinstance(v, bytes) else v for v in vals]


def hint_files(node):
    d = os.path.join(node.dir, 'hints')
    if not os.path.isdir(d):
        return {}
    return {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith('.log')}


def take_down(cl, res, label, node, observer):
    """SIGKILLs node and waits until observer sees it down (writes then hint it at
    once, sending it nothing)."""
    node.kill9()
    res.check('%s: %s seen down' % (label, node.addr), cl.wait_state(observer, node, 'down'))


def durable_hints(binary, res):
    cl = harness.Cluster(binary, n=3, mode='persistent')
    try:
        cl.start()
        n1, n3 = cl.nodes[0], cl.nodes[2]
        take_down(cl, res, 'durable', n3, n1)
        acked = write_keys(n1, 'dur', N_KEYS)
        res.eq('durable: every write acknowledged at QUORUM with node3 down', acked, N_KEYS)
        ok, inf = wait_info(n1, lambda i: i.get('hints_pending') == N_KEYS)
        res.check('durable: node1 keeps a hint per write for node3', ok,
                  {k: inf.get(k) for k in ('hints_pending', 'hints_added', 'hints_dropped')})
        res.check('durable: node1 says its hints are durable', inf.get('hints_durable') == 1, inf)
        files = hint_files(n1)
        res.check('durable: node1 has a non-empty hint log', any(s > 9 for s in files.values()),
                  files)
        time.sleep(0.3)  # (written at the end of the turn; nothing waits for the sync)
        n1.kill9()
        res.check('durable: node1 restarts after SIGKILL', n1.restart())
        ok, inf = wait_info(n1, lambda i: i.get('hints_pending') == N_KEYS, timeout=30)
        res.check('durable: node1 loaded every hint from its log after the restart', ok,
                  {k: inf.get(k) for k in ('hints_pending', 'hints_log_loaded',
                                           'hints_log_skipped', 'error')})
        res.check('durable: node3 restarts', n3.restart())
        ok, inf = wait_info(n1, lambda i: i.get('hints_pending') == 0 and
                            i.get('hints_delivered', 0) >= N_KEYS, timeout=60)
        res.check('durable: node1 delivered the hints to node3', ok,
                  {k: inf.get(k) for k in ('hints_pending', 'hints_delivered')})
        ok, why = cl.wait_all_up(60)
        res.check('durable: all members up', ok, why)
        keys = ['dur:%d' % i for i in range(N_KEYS)]
        vals = local_values(cl, n3, keys)
        bad = [(k, v) for i, (k, v) in enumerate(zip(keys, vals)) if v != 'v%d' % i]
        res.check('durable: node3 holds every write (read at ONE from it alone)', not bad,
                  bad[:5])
        files = hint_files(n1)
        res.check('durable: node1 hint log drained to its header', files and
                  all(s == 9 for s in files.values()), files)
        harness.check_no_crash(cl, res)
    except Exception as e:  # noqa: BLE001
        res.check('durable: run without exception', False, repr(e))
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)


def bounds(binary, res):
    window = 3000
    cl = harness.Cluster(binary, n=3, mode='persistent',
                         extra={'hinted-handoff-window': window,
                                'hinted-handoff-max-bytes': 20000,
                                'cluster-request-timeout': 300})
    try:
        cl.start()
        n1, n3 = cl.nodes[0], cl.nodes[2]
        take_down(cl, res, 'bounds', n3, n1)
        big = 'x' * 500
        acked = write_keys(n1, 'full', 100, value=lambda i: big)
        res.eq('bounds: every write acknowledged although hints overflow', acked, 100)
        ok, inf = wait_info(n1, lambda i: i.get('hints_refused_full', 0) > 0 and
                            i.get('hints_pending', 0) + i.get('hints_refused_full', 0) >= 100,
                            timeout=10)
        res.check('bounds: hints beyond hinted-handoff-max-bytes are refused and counted', ok,
                  {k: inf.get(k) for k in ('hints_pending', 'hints_refused_full',
                                           'hints_pending_bytes')})
        res.check('bounds: pending hint bytes stay under the bound',
                  0 < inf.get('hints_pending_bytes', 0) <= 20000, inf.get('hints_pending_bytes'))
        kept = inf.get('hints_pending', 0)
        res.check('bounds: the oldest hints are the ones kept', 0 < kept < 100, kept)
        ok, inf = wait_info(n1, lambda i: i.get('hints_pending') == 0, timeout=window / 1000 + 10)
        res.check('bounds: hints older than the window are dropped', ok,
                  inf.get('hints_pending'))
        res.check('bounds: window drops are counted', inf.get('hints_dropped_window', 0) >= kept,
                  (inf.get('hints_dropped_window'), kept))
        # the window passes while the coordinator is down: dropped at load
        acked = write_keys(n1, 'late', 5)
        res.eq('bounds: late writes acknowledged', acked, 5)
        ok, inf = wait_info(n1, lambda i: i.get('hints_pending') == 5, timeout=10)
        res.check('bounds: late writes hinted', ok, inf.get('hints_pending'))
        time.sleep(0.3)
        n1.kill9()
        time.sleep(window / 1000 + 0.5)
        res.check('bounds: node1 restarts', n1.restart())
        ok, inf = wait_info(n1, lambda i: 'hints_dropped_window' in i, timeout=30)
        res.check('bounds: hints out of the window at load are dropped and counted',
                  ok and inf.get('hints_pending') == 0 and inf.get('hints_dropped_window') == 5,
                  {k: inf.get(k) for k in ('hints_pending', 'hints_dropped_window', 'error')})
        res.check('bounds: node3 restarts', n3.restart())
        ok, why = cl.wait_all_up(60)
        res.check('bounds: all members up', ok, why)
        time.sleep(1.0)  # room for any (wrong) delivery
        vals = local_values(cl, n3, ['late:%d' % i for i in range(5)] +
                            ['full:%d' % i for i in range(100)])
        res.check('bounds: node3 did not get the dropped hints', all(v is None for v in vals),
                  [v for v in vals if v is not None][:3])
        harness.check_no_crash(cl, res)
    except Exception as e:  # noqa: BLE001
        res.check('bounds: run without exception', False, repr(e))
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)


def cache_mode(binary, res):
    cl = harness.Cluster(binary, n=3, mode='cache')
    try:
        cl.start()
        n1, n3 = cl.nodes[0], cl.nodes[2]
        n3.sigstop()
        acked = write_keys(n1, 'mem', 50)
        res.eq('cache: writes acknowledged with node3 stopped', acked, 50)
        ok, inf = wait_info(n1, lambda i: i.get('hints_pending') == 50)
        res.check('cache: hints kept in memory', ok and inf.get('hints_durable') == 0,
                  {k: inf.get(k) for k in ('hints_pending', 'hints_durable')})
        res.check('cache: no hint log', hint_files(n1) == {}, hint_files(n1))
        n3.sigcont()
        ok, inf = wait_info(n1, lambda i: i.get('hints_pending') == 0, timeout=30)
        res.check('cache: hints delivered when node3 is back',
                  ok and inf.get('hints_delivered', 0) >= 50,
                  {k: inf.get(k) for k in ('hints_pending', 'hints_delivered')})
        ok, why = cl.wait_all_up(60)
        res.check('cache: all members up', ok, why)
        vals = local_values(cl, n3, ['mem:%d' % i for i in range(50)])
        res.check('cache: node3 holds every write',
                  vals == ['v%d' % i for i in range(50)], vals[:5])
        harness.check_no_crash(cl, res)
    except Exception as e:  # noqa: BLE001
        res.check('cache: run without exception', False, repr(e))
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)


def main():
    binary = sys.argv[1]
    res = harness.Results('hints')
    skip = harness.node_cluster_or_skip(binary, 'hints')
    if skip is not None:
        return skip
    only = os.environ.get('HINTS_ONLY', '')
    for name, fn in (('durable', durable_hints), ('bounds', bounds), ('cache', cache_mode)):
        if not only or name in only.split(','):
            harness.log('hints: %s' % name)
            fn(binary, res)
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
