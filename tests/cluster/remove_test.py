"""tests/cluster/remove_test.py KVD_BINARY [--asan]: KVD REMOVENODE and cluster-replace.

Remove: four nodes (N=3, W=2, R=2) hold a preloaded data set; node4 is SIGKILLed
while QUORUM writers run through the others. KVD REMOVENODE is refused for a live
member, for the node itself, for an unknown id and with the wrong arity; then
KVD REMOVENODE node4 on node1 is accepted, KVD NODES shows node4 "removing" with a
progress, and node4 goes from every node's NODES. Afterwards every key (preload
and writers') has 3 replicas by KVD KEYNODES, node4 among none, and each replica
holds the key in its own store (read at ONE through it while the other nodes are
SIGSTOPped); every acknowledged write and preloaded key reads back at QUORUM; no
hint is left pending for node4; and node4 restarted on its dir does not come back:
it answers CLUSTERDOWN ("removed") and stays out of the others' NODES.

Replace: four nodes, node4 SIGKILLed while writers run; a fresh node5 with
cluster-replace naming a live member is refused (CLUSTERDOWN "cluster-replace
refused"); a fresh node6 with cluster-replace node4 becomes normal, holds exactly
node4's tokens in KVD RING (node4 gone from it), and the same replica, acknowledged
write and preload checks pass.

KVD JOIN: a lone node (cluster-enabled, no seeds) refuses KVD JOIN with a bad
address, its own, or while it holds keys; a member refuses it; emptied, the lone
node joins the three others through KVD JOIN, becomes normal, and reads the
preload back at QUORUM.

Prints the streaming numbers (ranges, records, ms). Ends with "N passed, M failed";
SKIPs while the binary has no cluster.
"""
import sys
import time

import redis

import harness
from harness import info_fields, kvd_error, kvd_text, ring_tokens

PRELOAD = 3000


def value(k):
    return 'v%d-' % k + 'x' * 60


def node_id(cl, node):
    for v in cl.nodes_view(node):
        if v['myself']:
            return v['id']
    return None


def preload(node, res):
    harness.preload_keys(node, PRELOAD, value)
    res.check('preloaded %d keys at QUORUM' % PRELOAD, True)


def check_preload(nodes, res, label):
    for nd in nodes:
        bad = harness.bad_preloaded(nd, PRELOAD, value)
        res.check('%s: all %d preloaded keys read back from %s at QUORUM'
                  % (label, PRELOAD, nd.addr), not bad, bad[:5])


def key_nodes(node, keys):
    """{key: [replica ids]} by KVD KEYNODES on node."""
    c = node.client(timeout=10.0)
    try:
        p = c.pipeline(transaction=False)
        for k in keys:
            p.execute_command('KVD', 'KEYNODES', k)
        out = {}
        for k, t in zip(keys, p.execute()):
            t = t.decode() if isinstance(t, bytes) else str(t)
            out[k] = [line.split()[0] for line in t.splitlines() if line.strip()]
        return out
    finally:
        c.close()


def local_values(cl, node, keys):
    """What node's own replica holds for keys: the other live nodes are SIGSTOPped,
    so at ONE only node's local replica can answer; they are continued after."""
    others = [n for n in cl.nodes if n is not node and n.alive()]
    for o in others:
        o.sigstop()
    vals = []
    try:
        c = harness.consistency_client(node, 'ONE', timeout=10.0)
        try:
            for k in keys:  # (a pipeline would take another connection of the pool)
                try:
                    vals.append(c.get(k))
                except redis.RedisError as e:
                    vals.append(e)
        finally:
            c.close()
    finally:
        for o in others:
            o.sigcont()
    return [v.decode() if isinstance(v, bytes) else v for v in vals]


def expected(pool):
    """{key: set of accepted values}: the preload, and each writer key's last
    acknowledged value or a later attempted one."""
    with pool.lock:
        acked = dict(pool.acked)
        pending = {k: set(v) for k, v in pool.pending.items()}
    want = {'pre:%d' % k: {value(k)} for k in range(PRELOAD)}
    for k, (v, _) in acked.items():
        want[k] = {v} | pending.get(k, set())
    return want


def check_replicas(cl, res, live, dead_id, want, label):
    """Every key has 3 replicas, dead_id among none, and each replica holds an
    accepted value in its own store."""
    keys = sorted(want)
    ids = {node_id(cl, nd): nd for nd in live}
    kn = key_nodes(live[0], keys)
    bad = [(k, r) for k, r in kn.items() if len(r) != 3 or dead_id in r or
           any(x not in ids for x in r)]
    res.check('%s: every key (%d) has 3 live replicas by KVD KEYNODES, %s among none'
              % (label, len(keys), dead_id), not bad, bad[:5])
    for rid, nd in ids.items():
        mine = [k for k in keys if rid in kn.get(k, [])]
        got = local_values(cl, nd, mine)
        wrong = [(k, v) for k, v in zip(mine, got) if v not in want[k]]
        res.check('%s: %s holds every key it replicates (%d) in its own store'
                  % (label, nd.addr, len(mine)), mine and not wrong, wrong[:5])


def wait_gone(cl, res, nodes, dead, label, timeout=120):
    """Until dead is in no node's KVD NODES; records "removing" lines seen."""
    seen = []
    deadline = time.time() + timeout
    gone = False
    while time.time() < deadline and not gone:
        gone = True
        for nd in nodes:
            try:
                txt = kvd_text(nd, 'NODES')
            except (redis.RedisError, OSError):
                gone = False
                continue
            for line in txt.splitlines():
                if line.split()[1:2] == [dead.addr]:
                    gone = False
                    if 'removing' in line:
                        seen.append(line)
        time.sleep(0.1)
    res.check('%s: %s is gone from every node\'s KVD NODES' % (label, dead.addr), gone,
              '\n'.join(nd.tail(6) for nd in nodes))
    return seen


def check_stream_rate(res, node):
    """CONFIG SET stream-throughput-mb-per-sec reaches the running cluster."""
    c = node.client()
    try:
        res.check('CONFIG SET stream-throughput-mb-per-sec 3',
                  c.config_set('stream-throughput-mb-per-sec', 3))
        got = info_fields(node).get('stream_throughput_bytes_per_sec')
        res.eq('INFO shows the new stream pace', got, str(3 << 20))
        try:
            c.config_set('stream-throughput-mb-per-sec', -1)
            err = None
        except redis.ResponseError as e:
            err = str(e)
        res.check('a negative stream-throughput-mb-per-sec is refused', err is not None, err)
        c.config_set('stream-throughput-mb-per-sec', 64)
    finally:
        c.close()


def remove_when_down(node, dead_id, timeout=30):
    """KVD REMOVENODE dead_id on node, retried while node's phi does not yet call
    the dead member down (its last heartbeats may reach node late, through the
    others' gossip). None once accepted, else the last error."""
    deadline = time.time() + timeout
    e = None
    while time.time() < deadline:
        e = kvd_error(node, 'REMOVENODE', dead_id)
        if e is None or ' is up ' not in e and ' is suspect ' not in e:
            return e
        time.sleep(0.5)
    return e


def bad_input(cl, res, n1, live_other, dead_id):
    e = kvd_error(n1, 'REMOVENODE', node_id(cl, live_other))
    res.check('REMOVENODE of a live member is refused', e and 'down' in e, e)
    e = kvd_error(n1, 'REMOVENODE', node_id(cl, n1))
    res.check('REMOVENODE of this node is refused', e and 'this node' in e, e)
    e = kvd_error(n1, 'REMOVENODE', 'no-such-node')
    res.check('REMOVENODE of an unknown id is refused', e and 'no member' in e, e)
    e = kvd_error(n1, 'REMOVENODE', 'x' * 5000)
    res.check('REMOVENODE of an overlong id is refused', e and 'no member' in e, e)
    e = kvd_error(n1, 'REMOVENODE')
    res.check('REMOVENODE without an id: arity error', e and 'wrong number' in e, e)
    e = kvd_error(n1, 'REMOVENODE', dead_id, 'extra')
    res.check('REMOVENODE with two ids: arity error', e and 'wrong number' in e, e)


def start_four(cl, res):
    four = cl.nodes[:4]
    seeds = ','.join(nd.addr for nd in four[:3])
    for nd in cl.nodes:
        nd.conf['cluster-seeds'] = seeds
    for nd in four:
        nd.start()
    for nd in four:
        res.check('node%d answers' % (nd.index + 1), nd.wait_ping(30))
    ok, why = cl.wait_all_up(60, members=four)
    res.check('4 nodes up', ok, why)
    preload(four[0], res)
    return four


def kill_one(cl, res, dead, observers):
    dead.kill9()
    dead.exits.clear()  # killed on purpose
    for o in observers:
        res.check('%s sees node%d down' % (o.addr, dead.index + 1),
                  cl.wait_state(o, dead, 'down', timeout=30))


def stream_line(label, node):
    inf = info_fields(node)
    print('%s %s: %s ranges pulled (%s retried), %s records, %s bytes in %s ms; '
          'removals_done %s' % (label, node.addr, inf.get('stream_ranges'),
                                inf.get('stream_retries'), inf.get('stream_records'),
                                inf.get('stream_bytes'), inf.get('stream_ms'),
                                inf.get('removals_done')))
    return inf


def check_no_hints_for(res, live, label):
    for nd in live:
        pending = '?'
        for _ in range(50):
            pending = info_fields(nd).get('hints_pending')
            if pending == '0':
                break
            time.sleep(0.2)
        res.check('%s: %s holds no hints (hints_pending %s)' % (label, nd.addr, pending),
                  pending == '0')


def check_removed_stays_out(cl, res, dead, live):
    """The removed node restarted on its dir: not a member again."""
    dead.start()
    res.check('removed node%d restarted answers' % (dead.index + 1), dead.wait_ping(30))
    err = None
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            c = dead.client()
            try:
                c.get('pre:1')
            finally:
                c.close()
            err = None
        except redis.ResponseError as e:
            err = str(e)
            if 'removed' in err:
                break
        except (redis.RedisError, OSError) as e:
            err = str(e)
        time.sleep(0.2)
    res.check('removed node%d answers CLUSTERDOWN: it was removed' % (dead.index + 1),
              err and 'removed' in err, err)
    time.sleep(3)
    back = [nd.addr for nd in live if dead.addr in [v['addr'] for v in cl.nodes_view(nd)]]
    res.check('removed node%d stays out of the others\' KVD NODES' % (dead.index + 1),
              not back, back)
    res.eq('removed node%d exits 0 on SIGTERM' % (dead.index + 1), dead.terminate(), 0)
    dead.proc = None  # stopped on purpose: out of check_no_crash and Cluster.stop


def remove_scenario(binary, res):
    cl = harness.Cluster(binary, n=4, mode='persistent')
    try:
        four = start_four(cl, res)
        n1, dead, live = four[0], four[3], four[:3]
        dead_id = node_id(cl, dead)
        pool = harness.WriterPool(cl, threads=3, level='QUORUM', prefix='r', nodes=live).start()
        time.sleep(2)
        kill_one(cl, res, dead, live)
        time.sleep(2)  # writes hinted for the dead node
        bad_input(cl, res, n1, live[1], dead_id)
        check_stream_rate(res, n1)
        e = remove_when_down(n1, dead_id)
        res.check('KVD REMOVENODE node4 on node1 is accepted', e is None, e)
        e = kvd_error(live[1], 'REMOVENODE', node_id(cl, live[2]))
        res.check('a second removal meanwhile is refused', e is not None, e)
        seen = wait_gone(cl, res, live, dead, 'remove')
        res.check('KVD NODES showed node4 removing with a progress',
                  any('removing=' in s for s in seen), seen[:2])
        time.sleep(2)
        res.check('writers stop', pool.stop())
        for nd in live:
            stream_line('remove', nd)
        res.eq('node1 counts one removal done', info_fields(n1).get('removals_done'), '1')
        harness.check_acked(cl, pool, res, nodes=live)
        check_preload(live, res, 'after the removal')
        check_replicas(cl, res, live, dead_id, expected(pool), 'after the removal')
        check_no_hints_for(res, live, 'after the removal')
        check_removed_stays_out(cl, res, dead, live)
        harness.check_no_crash(cl, res)
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)


def wait_normal(node, timeout):
    deadline = time.time() + timeout
    line = ''
    while time.time() < deadline:
        try:
            for line in kvd_text(node, 'NODES').splitlines():
                if ' myself' in line:
                    break
        except (redis.RedisError, OSError):
            line = ''
        if 'status=normal' in line:
            return True, line
        time.sleep(0.1)
    return False, line


def replace_refused(cl, res, nd, live_id):
    nd.conf['cluster-replace'] = live_id
    nd.start()
    res.check('node%d (replacing a live member) answers' % (nd.index + 1), nd.wait_ping(30))
    err = None
    deadline = time.time() + 40
    while time.time() < deadline:
        try:
            c = nd.client()
            try:
                c.get('pre:1')
            finally:
                c.close()
        except redis.ResponseError as e:
            err = str(e)
            if 'cluster-replace refused' in err:
                break
        time.sleep(0.2)
    res.check('cluster-replace of a live member is refused', err and 'alive' in err, err)
    deadline = time.time() + 20
    listed = True
    while time.time() < deadline and listed:
        listed = any(nd.addr in [v['addr'] for v in cl.nodes_view(o)] for o in cl.nodes[:3])
        time.sleep(0.2)
    res.check('the refused node leaves the ring (gone from the others\' KVD NODES)',
              not listed)
    res.eq('the refused node exits 0 on SIGTERM', nd.terminate(), 0)
    nd.proc = None


def replace_scenario(binary, res):
    cl = harness.Cluster(binary, n=6, mode='persistent')
    try:
        four = start_four(cl, res)
        n1, dead, live = four[0], four[3], four[:3]
        dead_id = node_id(cl, dead)
        tokens = ring_tokens(n1).get(dead_id)
        pool = harness.WriterPool(cl, threads=3, level='QUORUM', prefix='p', nodes=live).start()
        time.sleep(2)
        kill_one(cl, res, dead, live)
        dead.proc = None  # killed for good
        replace_refused(cl, res, cl.nodes[4], node_id(cl, live[1]))
        new = cl.nodes[5]
        new.conf['cluster-replace'] = dead_id
        new.start()
        res.check('node6 (replacing node4) answers', new.wait_ping(30))
        ok, line = wait_normal(new, 120)
        res.check('node6 becomes normal', ok, line + '\n' + new.tail(10))
        new_id = node_id(cl, new)
        live4 = live + [new]
        wait_gone(cl, res, live4, dead, 'replace')
        ring = ring_tokens(n1)
        res.check('node6 holds exactly node4\'s %d tokens' % len(tokens or []),
                  tokens and ring.get(new_id) == tokens, (len(ring.get(new_id) or []),))
        res.check('node4 is gone from KVD RING', dead_id not in ring, sorted(ring))
        time.sleep(2)
        res.check('writers stop', pool.stop())
        stream_line('replace', new)
        harness.check_acked(cl, pool, res, nodes=live4)
        check_preload(live4, res, 'after the replace')
        check_replicas(cl, res, live4, dead_id, expected(pool), 'after the replace')
        harness.check_no_crash(cl, res)
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)


def join_cmd_scenario(binary, res):
    """KVD JOIN host:port on a lone node (cluster-enabled, no seeds)."""
    cl = harness.Cluster(binary, n=4, mode='persistent')
    try:
        three, lone = cl.nodes[:3], cl.nodes[3]
        seeds = ','.join(nd.addr for nd in three)
        for nd in three:
            nd.conf['cluster-seeds'] = seeds
        lone.conf['cluster-seeds'] = '""'
        for nd in cl.nodes:
            nd.start()
        for nd in cl.nodes:
            res.check('node%d answers' % (nd.index + 1), nd.wait_ping(30))
        ok, why = cl.wait_all_up(60, members=three)
        res.check('3 nodes up', ok, why)
        preload(three[0], res)
        e = kvd_error(lone, 'JOIN')
        res.check('KVD JOIN without an address: arity error', e and 'wrong number' in e, e)
        for bad in ('nonsense', 'x' * 5000, lone.addr):
            e = kvd_error(lone, 'JOIN', bad)
            res.check('KVD JOIN %s... is refused' % bad[:12], e and 'cannot join' in e, e)
        c = harness.consistency_client(lone, 'ONE')
        try:
            c.set('lonely', '1')
        finally:
            c.close()
        e = kvd_error(lone, 'JOIN', three[0].addr)
        res.check('KVD JOIN of a node holding keys is refused', e and 'holds keys' in e, e)
        c = harness.consistency_client(lone, 'ONE')
        try:
            c.delete('lonely')  # (not FLUSHALL: its floor would hide older records)
        finally:
            c.close()
        e = kvd_error(three[1], 'JOIN', three[0].addr)
        res.check('KVD JOIN on a member is refused', e and 'member of a cluster' in e, e)
        e = kvd_error(lone, 'JOIN', three[0].addr)
        res.check('KVD JOIN on the lone empty node is accepted', e is None, e)
        ok, line = wait_normal(lone, 120)
        res.check('the joined node becomes normal', ok and 'status=normal' in line, line)
        ok, why = cl.wait_all_up(30)
        res.check('4 nodes up and listed everywhere', ok, why)
        check_preload([lone], res, 'after KVD JOIN')
        c = lone.client()
        try:
            keys = c.info('keyspace').get('db0', {}).get('keys', 0)
        finally:
            c.close()
        res.check('the joined node holds keys it streamed in (%d)' % keys, keys > 0)
        stream_line('KVD JOIN', lone)
        harness.check_no_crash(cl, res)
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)


def main():
    binary = sys.argv[1]
    skip = harness.node_cluster_or_skip(binary, 'remove')
    if skip is not None:
        return skip
    res = harness.Results('remove')
    for scen in (remove_scenario, replace_scenario, join_cmd_scenario):
        try:
            scen(binary, res)
        except Exception as e:  # noqa: BLE001 - a harness failure is one failed case
            res.check('%s without exception' % scen.__name__, False, repr(e))
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
