"""tests/cluster/gossip_test.py KVD_BINARY [--asan]: membership by gossip, phi accrual
failure detection and the clock-offset guard on 5 real nodes (N=3 W=2 R=2,
cluster-request-timeout 2000 ms so that a wait for it stands out).

1. Each node is given one seed only (node i seeds node i-1, node 1 itself): all five
   converge (every KVD NODES lists 5 members up, with phi= and gen=); the time is
   measured and printed.
2. SIGSTOP node 5: every other node shows it down within a bound (time printed);
   meanwhile a QUORUM write of a key node 5 replicates answers OK well inside the
   request timeout, an ALL write fails at once (NOQUORUM, no timeout wait: node 5 is
   known down), and node 1 keeps a hint for node 5. SIGCONT: up again everywhere, the
   hints delivered.
3. Restart node 3: the others see a higher generation.
4. debug-clock-offset-ms 2000 on node 2: its INFO says clock_ok:0 and it answers
   writes it coordinates with -CLOCKSKEW, while reads through it work and writes
   through node 1 (in range) work; back to 0: writes through node 2 work again.
Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import re
import sys
import time

import harness
from harness import info

TIMEOUT_MS = 2000


def nodes_lines(nd):
    c = nd.client()
    try:
        txt = c.execute_command('KVD', 'NODES')
    finally:
        c.close()
    if isinstance(txt, bytes):
        txt = txt.decode()
    return [ln for ln in txt.splitlines() if ln.strip()]


def field(line, name):
    m = re.search(r'\b%s=(\S+)' % name, line)
    return m.group(1) if m else None


def wait_until(cond, seconds, step=0.1):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if cond():
                return True
        except Exception:  # noqa: BLE001 - a node busy or restarting: try again
            pass
        time.sleep(step)
    return False


def key_on(cl, coord, target, prefix):
    """a key whose replicas (asked of coord) include target and exclude coord"""
    c = coord.client()
    try:
        for i in range(2000):
            k = '%s%d' % (prefix, i)
            txt = c.execute_command('KVD', 'KEYNODES', k)
            if isinstance(txt, bytes):
                txt = txt.decode()
            addrs = [ln.split()[1] for ln in txt.splitlines() if ln.strip()]
            if target.addr in addrs and coord.addr not in addrs:
                return k
    finally:
        c.close()
    return None


def converge_from_one_seed(cl, res, t0):
    ok, why = cl.wait_all_up(timeout=60)
    took = time.time() - t0
    res.check('5 nodes with one seed each converge: every KVD NODES lists 5 up', ok, why)
    print('gossip: 5 nodes, one seed each: every node sees 5 up %.1f s after the start' % took)
    for nd in cl.nodes:
        lines = nodes_lines(nd)
        res.eq('KVD NODES on %s lists 5 members' % nd.addr, len(lines), 5)
        res.check('KVD NODES on %s: phi= and gen= on every line, no fail/down' % nd.addr,
                  all(field(l, 'phi') and field(l, 'gen') and 'fail' not in l and 'down' not in l
                      for l in lines), lines)
    res.check('the load of node 2 reaches node 1 by gossip (INFO peer load > 0)',
              wait_until(lambda: int(peer_info(cl.nodes[0], cl.nodes[1]).get('load', 0)) > 0,
                         10), peer_info(cl.nodes[0], cl.nodes[1]))
    i = info(cl.nodes[0])
    res.check('INFO kvdcluster: clock_ok:1 and a generation', i.get('clock_ok') == 1 and
              int(i.get('generation', 0)) > 0, i)


def timed_set(nd, key, level):
    c = harness.consistency_client(nd, level, timeout=10.0)
    t = time.time()
    try:
        c.set(key, 'v')
        out = 'OK'
    except harness.redis.ResponseError as e:
        out = str(e)
    finally:
        c.close()
    return out, (time.time() - t) * 1000.0


def stopped_node(cl, res):
    n1, n5 = cl.nodes[0], cl.nodes[4]
    key = key_on(cl, n1, n5, 'g')
    res.check('a key replicated on node 5, not on node 1', key is not None)
    n5.sigstop()
    t = time.time()
    seen = {}
    for nd in cl.nodes[:4]:
        if cl.wait_state(nd, n5, 'down', timeout=20):
            seen[nd.addr] = time.time() - t
    res.eq('the 4 others show SIGSTOPped node 5 down within 20 s', len(seen), 4)
    print('gossip: SIGSTOP node 5 -> down on the others after %s s' %
          ', '.join('%.1f' % v for v in sorted(seen.values())))
    def phi5():
        for l in nodes_lines(n1):
            if l.split()[1] == n5.addr:
                return float(field(l, 'phi') or 0)
        return 0.0
    res.check('node 1 convicts node 5 by phi (>= phi-convict-threshold 8) within 20 s',
              wait_until(lambda: phi5() >= 8, 20), phi5())
    print('gossip: node 1 sees phi >= 8 for node 5 %.1f s after SIGSTOP' % (time.time() - t))
    out, ms = timed_set(n1, key, 'QUORUM')
    print('gossip: QUORUM write with a replica down: %s in %.1f ms (request timeout %d ms, '
          'ratio %.3f)' % (out, ms, TIMEOUT_MS, ms / TIMEOUT_MS))
    res.eq('QUORUM write with node 5 down answers OK', out, 'OK')
    res.check('... well inside the request timeout (%.0f ms < %d ms / 4)' % (ms, TIMEOUT_MS),
              ms < TIMEOUT_MS / 4.0)
    out, ms = timed_set(n1, key, 'ALL')
    print('gossip: ALL write with a replica known down: "%s" in %.1f ms' % (out[:60], ms))
    res.check('ALL write fails with NOQUORUM', out.startswith('NOQUORUM'), out)
    res.check('... at once, no request-timeout wait (%.0f ms < %d ms / 4)' % (ms, TIMEOUT_MS),
              ms < TIMEOUT_MS / 4.0)
    p5 = peer_info(n1, n5)
    res.check('node 1 keeps a hint for node 5 and shows it down (INFO)',
              int(p5.get('hints', 0)) > 0 and p5.get('state') == 'down', p5)
    n5.sigcont()
    t = time.time()
    ok, why = cl.wait_all_up(timeout=30)
    res.check('SIGCONT: node 5 up again on every node', ok, why)
    print('gossip: SIGCONT node 5 -> up everywhere after %.1f s' % (time.time() - t))
    res.check('the hints for node 5 are delivered', wait_until(
        lambda: int(peer_info(n1, n5).get('hints', -1)) == 0, 30), peer_info(n1, n5))


def peer_info(nd, target):
    """node nd's INFO kvdcluster peerN entry for target (a dict), or {}"""
    for k, v in info(nd).items():
        if k.startswith('peer') and isinstance(v, dict) and v.get('addr') == target.addr:
            return v
    return {}


def gen_of(observer, target):
    for l in nodes_lines(observer):
        if l.split()[1] == target.addr:
            return int(field(l, 'gen') or 0)
    return 0


def restart_generation(cl, res):
    n1, n3 = cl.nodes[0], cl.nodes[2]
    before = gen_of(n1, n3)
    time.sleep(1.1)  # the generation is at least the Unix second
    res.check('node 3 restarts', n3.restart())
    ok = wait_until(lambda: gen_of(n1, n3) > before, 30)
    after = gen_of(n1, n3)
    res.check('after a restart node 1 sees node 3 at a higher generation (%d -> %d)'
              % (before, after), ok and after > before)
    ok, why = cl.wait_all_up(timeout=30)
    res.check('all up after the restart', ok, why)


def skewed_clock(cl, res):
    n1, n2 = cl.nodes[0], cl.nodes[1]
    c = n2.client()
    try:
        c.config_set('debug-clock-offset-ms', 2000)
    finally:
        c.close()
    t = time.time()
    res.check('node 2 with a clock 2000 ms ahead: INFO clock_ok:0',
              wait_until(lambda: info(n2).get('clock_ok') == 0, 40, 0.2), info(n2))
    print('gossip: a 2000 ms skew is flagged after %.1f s; node 2 clock_offset_ms %s'
          % (time.time() - t, info(n2).get('clock_offset_ms')))
    off = int(info(n2).get('clock_offset_ms', 0))
    res.check('its clock_offset_ms is about 2000 (%d)' % off, 1500 < off < 2500)
    out, _ = timed_set(n2, 'skew-key', 'QUORUM')
    res.check('a write through node 2 is refused with -CLOCKSKEW', out.startswith('CLOCKSKEW'), out)
    res.check('... saying why', 'cluster-max-clock-offset-ms' in out, out)
    c = harness.consistency_client(n2, 'QUORUM')
    try:
        res.eq('a read through node 2 works', c.get('skew-key'), None)
    finally:
        c.close()
    res.eq('node 1 is in range (clock_ok:1)', info(n1).get('clock_ok'), 1)
    out, _ = timed_set(n1, 'skew-key', 'QUORUM')
    res.eq('a write through node 1 works', out, 'OK')
    c = n2.client()
    try:
        c.config_set('debug-clock-offset-ms', 0)
    finally:
        c.close()
    res.check('back to 0: node 2 clock_ok:1 again',
              wait_until(lambda: info(n2).get('clock_ok') == 1, 40, 0.2), info(n2))
    out, _ = timed_set(n2, 'skew-key2', 'QUORUM')
    res.eq('a write through node 2 works again', out, 'OK')


def main():
    name = 'gossip'
    skip = harness.node_cluster_or_skip(sys.argv[1], name)
    if skip is not None:
        return skip
    res = harness.Results(name)
    cl = harness.Cluster(sys.argv[1], n=5, mode='persistent',
                         extra={'cluster-request-timeout': TIMEOUT_MS})
    for i, nd in enumerate(cl.nodes):
        nd.conf['cluster-seeds'] = cl.nodes[max(i - 1, 0)].addr
    try:
        t0 = time.time()
        for nd in cl.nodes:
            nd.start()
        for nd in cl.nodes:
            res.check('node %s answers' % nd.addr, nd.wait_ping(30))
        converge_from_one_seed(cl, res, t0)
        stopped_node(cl, res)
        restart_generation(cl, res)
        skewed_clock(cl, res)
        harness.check_no_crash(cl, res)
    except Exception as e:  # noqa: BLE001 - a harness failure is one failed case
        res.check('cluster run without exception', False, repr(e))
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
