"""tests/cluster/repair_test.py KVD_BINARY [--asan]: Merkle anti-entropy repair on
real processes (cluster/repair.h, KVD REPAIR, repair-interval-seconds).

1. A wiped replica (persistent, N=3, W=2, background repair off): N_KEYS keys
   written at QUORUM; node3 stopped, its data directory wiped except node-id and
   node-tokens (it keeps its identity and tokens), restarted; node1's hints for
   it are none (it was up for every write). KVD REPAIR on node3; when INFO says
   the pass is done, every key reads back with its value at ONE from node3 alone
   (node1 and node2 SIGSTOPped: only node3's replica can answer). Bytes moved are
   reported against the data set. Before the repair node3 answers (almost)
   nothing at ONE: the test would fail without repair.
2. Background repair with hints dropped (hinted-handoff-window 1 ms,
   repair-interval-seconds 1): node3 killed, keys written at QUORUM (their hints
   expire at once), node3 restarted: with no command, node3 holds every key at ONE
   within a bounded time, and INFO shows records pulled by node3 or pushed to it.
Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import os
import shutil
import signal
import sys
import time

import harness

N_KEYS = int(os.environ.get('REPAIR_TEST_KEYS', '20000'))
N_BG = 2000


def info(node):
    c = node.client(timeout=5.0)
    try:
        return c.info('kvdcluster')
    finally:
        c.close()


def wait_info(node, pred, timeout=60.0):
    deadline = time.time() + timeout
    last = {}
    while time.time() < deadline:
        try:
            last = info(node)
            if pred(last):
                return True, last
        except Exception as e:  # noqa: BLE001 - loading, restarting
            last = {'error': repr(e)}
        time.sleep(0.3)
    return False, last


def write_keys(node, prefix, n):
    """SETs prefix:i = val-prefix-i through node at the connections' default, QUORUM
    (W=2), pipelined; returns the acked count."""
    c = node.client(timeout=10.0)
    ok = 0
    try:
        for start in range(0, n, 500):
            p = c.pipeline(transaction=False)
            for i in range(start, min(n, start + 500)):
                p.set('%s:%d' % (prefix, i), 'val-%s-%d' % (prefix, i))
            for r in p.execute(raise_on_error=False):
                ok += r is True
    finally:
        c.close()
    return ok


def count_at_one(node, prefix, n):
    """How many prefix:i read back with their value at ONE from node (MGET on the
    one connection KVD CONSISTENCY ONE was set on)."""
    c = harness.consistency_client(node, 'ONE', timeout=20.0)
    good = 0
    try:
        for start in range(0, n, 500):
            idx = range(start, min(n, start + 500))
            vals = c.mget(['%s:%d' % (prefix, i) for i in idx])
            good += sum(v == ('val-%s-%d' % (prefix, i)).encode() for i, v in zip(idx, vals))
    finally:
        c.close()
    return good


def alone_count(cl, node, prefix, n):
    """count_at_one on node with every other node SIGSTOPped (then continued)."""
    others = [o for o in cl.nodes if o is not node]
    for o in others:
        o.sigstop()
    try:
        return count_at_one(node, prefix, n)
    finally:
        for o in others:
            o.sigcont()


def wipe_keep_identity(d):
    for name in os.listdir(d):
        if name in ('node-id', 'node-tokens', 'kv.conf', 'kvd.log'):
            continue
        p = os.path.join(d, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def data_bytes(d):
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            if f not in ('kvd.log', 'kv.conf'):
                total += os.path.getsize(os.path.join(root, f))
    return total


def body_wiped(cl, res):
    n1, n3 = cl.nodes[0], cl.nodes[2]
    t0 = time.time()
    acked = write_keys(n1, 'k', N_KEYS)
    res.eq('every write acknowledged at QUORUM', acked, N_KEYS)
    harness.log('wrote %d keys in %.1fs' % (acked, time.time() - t0))
    time.sleep(1.0)  # the third replica's copies land
    n3.terminate()
    before = data_bytes(n3.dir)
    wipe_keep_identity(n3.dir)
    res.check('node3 restarts after its data was wiped', n3.restart(timeout=60.0), n3.tail())
    ok, why = cl.wait_all_up(timeout=60.0)
    res.check('the cluster sees node3 up again', ok, why)
    empty = alone_count(cl, n3, 'k', N_KEYS)
    res.check('before repair node3 alone lacks the keys (%d of %d at ONE)' % (empty, N_KEYS),
              empty < N_KEYS // 10, empty)
    # (the probe above stopped the others: their links come back first; a pass that
    # met a peer still away ends partial and is run again, at most 3 times)
    t0 = time.time()
    for attempt in range(3):
        ok, why = cl.wait_all_up(timeout=60.0)
        b4 = info(n3)
        c = n3.client(timeout=10.0)
        try:
            queued = c.execute_command('KVD', 'REPAIR')
        finally:
            c.close()
        ok, inf = wait_info(n3, lambda i: i.get('repair_queued_ranges') == 0 and
                            i.get('repair_running') == 0 and
                            i.get('repair_passes', 0) > b4.get('repair_passes', 0),
                            timeout=240.0)
        if inf.get('repair_sessions_partial', 0) == b4.get('repair_sessions_partial', 0):
            break
        harness.log('repair pass %d met a peer away: run again' % (attempt + 1))
    took = time.time() - t0
    res.check('KVD REPAIR queues ranges (%s)' % queued, int(queued) > 0, queued)
    res.check('the repair pass ends', ok, inf)
    moved = inf.get('repair_bytes_in', 0) + inf.get('repair_bytes_out', 0)
    logical = sum(len('k:%d' % i) + len('val-k-%d' % i) for i in range(N_KEYS))
    harness.log('repair of a wiped replica: %.1fs, %d records pulled, %s bytes moved '
                '(in %s, out %s); the data set is %d bytes of keys and values (%.2fx), '
                'node3 held %d bytes on disk before the wipe (%.2fx)'
                % (took, inf.get('repair_records_pulled', 0), moved, inf.get('repair_bytes_in'),
                   inf.get('repair_bytes_out'), logical, moved / max(1, logical), before,
                   moved / max(1, before)))
    res.check('node3 pulled at least every key (%s records)' % inf.get('repair_records_pulled'),
              inf.get('repair_records_pulled', 0) >= N_KEYS, inf)
    got = alone_count(cl, n3, 'k', N_KEYS)
    res.eq('after KVD REPAIR node3 alone answers every key with its value at ONE', got, N_KEYS)
    lines = [k for k in inf if k.startswith('repair_range') and k[12:].isdigit()]
    res.check('INFO lists the ranges with their last repair (%d ranges)' % len(lines),
              len(lines) > 0 and all(isinstance(inf[k], dict) and
                                     inf[k].get('last_repaired_seconds_ago', -1) >= 0
                                     for k in lines), [inf[k] for k in lines[:3]])
    c = n3.client(timeout=5.0)
    try:
        try:
            c.execute_command('KVD', 'REPAIR', 'NOW')
            res.check('KVD REPAIR NOW is a syntax error', False)
        except harness.redis.ResponseError as e:
            res.check('KVD REPAIR NOW is a syntax error', 'syntax' in str(e), str(e))
        full = c.execute_command('KVD', 'REPAIR', 'FULL')
        res.check('KVD REPAIR FULL queues ranges (%s)' % full, int(full) > 0, full)
    finally:
        c.close()


def body_background(cl, res):
    n1, n3 = cl.nodes[0], cl.nodes[2]
    n3.kill9()
    time.sleep(1.0)
    acked = write_keys(n1, 'bg', N_BG)
    res.eq('every write acknowledged at QUORUM with node3 down', acked, N_BG)
    time.sleep(0.5)
    ok, inf = wait_info(n1, lambda i: i.get('hints_pending', 1) == 0, timeout=10.0)
    res.check('node1 keeps no hints (window 1 ms): only repair can bring node3 the keys', ok,
              inf.get('hints_pending'))
    res.check('node3 restarts', n3.restart(timeout=60.0), n3.tail())
    ok, why = cl.wait_all_up(timeout=60.0)
    res.check('the cluster sees node3 up again', ok, why)
    t0 = time.time()
    got = 0
    while time.time() - t0 < 90.0:
        got = alone_count(cl, n3, 'bg', N_BG)
        if got == N_BG:
            break
        time.sleep(2.0)
    harness.log('background repair converged node3 in %.1fs (%d of %d keys)'
                % (time.time() - t0, got, N_BG))
    res.eq('without any command node3 alone answers every key at ONE', got, N_BG)
    moved = sum(info(nd).get('repair_records_pulled', 0) + info(nd).get('repair_records_pushed', 0)
                for nd in cl.nodes)
    res.check('INFO counts the records repair moved (%d)' % moved, moved >= N_BG, moved)


def run_case(binary, res, label, body, extra):
    harness.log('repair: %s' % label)
    cl = harness.Cluster(binary, n=3, mode='persistent', extra=extra)
    try:
        cl.start()
        body(cl, res)
        harness.check_no_crash(cl, res)
    except Exception as e:  # noqa: BLE001 - a harness failure is one failed case
        res.check('%s: run without exception' % label, False, repr(e))
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)


def main():
    binary = sys.argv[1]
    skip = harness.node_cluster_or_skip(binary, 'repair')
    if skip is not None:
        return skip
    res = harness.Results('repair')
    run_case(binary, res, 'wiped', body_wiped,
             {'repair-interval-seconds': 0, 'repair-throughput-mb-per-sec': 0})
    run_case(binary, res, 'background', body_background,
             {'repair-interval-seconds': 1, 'hinted-handoff-window': 1})
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
