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
3. A big hash whose replicas hold one version and other fields (hints dropped,
   background repair off, hash-max-listpack-entries 64): a hash of BH_FIELDS
   fields on every node; node3 SIGSTOPped until node1 sees it down, f1 written
   (node3 misses it, its hint expires at once); node3 continued, then SIGSTOPped
   again and f2 written at once (node1 still thinks it up: the write is sent and
   waits in node3's socket, the coordinator gives up before node3 answers, so no
   read repair reaches it); node3 continued past the request deadline applies f2.
   Now node3's hash has f2's version, like the others', without f1. KVD REPAIR on
   node1; then node3 alone at ONE returns f1. Without the content digest
   (cluster_key.digest) the Merkle trees match and f1 never reaches node3.
Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import os
import shutil
import signal
import sys
import time

import harness
from harness import info

N_KEYS = int(os.environ.get('REPAIR_TEST_KEYS', '20000'))
N_BG = 2000


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


BH_FIELDS = 200


def hget_alone(cl, node, key, fields):
    """HGETs of key's fields at ONE from node with every other node SIGSTOPped,
    continued only past the request deadline: their late answers are then ignored,
    so this read repairs nothing on node."""
    others = [o for o in cl.nodes if o is not node]
    for o in others:
        o.sigstop()
    try:
        c = harness.consistency_client(node, 'ONE', timeout=10.0)
        try:
            return [c.hget(key, f) for f in fields]
        finally:
            c.close()
    finally:
        time.sleep(2.5)
        for o in others:
            o.sigcont()


def hset_at(node, level, key, field, value):
    c = harness.consistency_client(node, level, timeout=10.0)
    try:
        return c.hset(key, field, value)
    finally:
        c.close()


def repair_on(cl, node, res, label):
    """KVD REPAIR on node until a pass ends with every peer (at most 3 tries)."""
    ok, inf = False, {}
    for attempt in range(3):
        cl.wait_all_up(timeout=60.0)
        b4 = info(node)
        c = node.client(timeout=10.0)
        try:
            c.execute_command('KVD', 'REPAIR')
        finally:
            c.close()
        ok, inf = wait_info(node, lambda i: i.get('repair_queued_ranges') == 0 and
                            i.get('repair_running') == 0 and
                            i.get('repair_passes', 0) > b4.get('repair_passes', 0),
                            timeout=120.0)
        if inf.get('repair_sessions_partial', 0) == b4.get('repair_sessions_partial', 0):
            break
        harness.log('%s: repair pass %d met a peer away: run again' % (label, attempt + 1))
    res.check('%s: the repair pass ends' % label, ok, inf)
    return inf


def body_bighash(cl, res):
    n1, n3 = cl.nodes[0], cl.nodes[2]
    c = harness.consistency_client(n1, 'ALL', timeout=10.0)
    try:
        c.hset('bh', mapping={'g%d' % i: 'v%d' % i for i in range(BH_FIELDS)})
        res.eq('bighash: the hash is big (hashtable)', c.object('encoding', 'bh'),
               b'hashtable')
    finally:
        c.close()
    n3.sigstop()
    res.check('bighash: node1 sees node3 down', cl.wait_state(n1, n3, 'down', 30.0))
    hset_at(n1, 'QUORUM', 'bh', 'f1', 'one')
    time.sleep(1.5)
    ok, inf = wait_info(n1, lambda i: i.get('hints_pending', 1) == 0, timeout=10.0)
    res.check('bighash: node1 keeps no hint of f1 (window 1 ms)', ok, inf.get('hints_pending'))
    n3.sigcont()
    ok, why = cl.wait_all_up(timeout=60.0)
    res.check('bighash: node3 up again', ok, why)
    n3.sigstop()
    hset_at(n1, 'QUORUM', 'bh', 'f2', 'two')  # reaches node3's socket, nobody waits
    time.sleep(2.5)
    n3.sigcont()
    ok, why = cl.wait_all_up(timeout=60.0)
    res.check('bighash: node3 up again after f2', ok, why)
    time.sleep(0.5)
    before = hget_alone(cl, n3, 'bh', ['f1', 'f2', 'g7'])
    res.eq('bighash: before repair node3 alone has f2 (its version) but not f1', before,
           [None, b'two', b'v7'])
    inf = repair_on(cl, n1, res, 'bighash')
    harness.log('bighash: repair moved %s records (pulled) / %s (pushed) from node1'
                % (inf.get('repair_records_pulled'), inf.get('repair_records_pushed')))
    after = hget_alone(cl, n3, 'bh', ['f1', 'f2', 'g7'])
    res.eq('bighash: after KVD REPAIR on node1 node3 alone returns f1 at ONE', after,
           [b'one', b'two', b'v7'])


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
    run_case(binary, res, 'bighash', body_bighash,
             {'repair-interval-seconds': 0, 'hinted-handoff-window': 1,
              'hash-max-listpack-entries': 64})
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
