"""tests/cluster/quorum_test.py KVD_BINARY [--asan]: W=3 with a node down.

A 3-node persistent cluster. With every node up, KVD CONSISTENCY ALL writes work;
with node 3 SIGKILLed, a write at ALL through node 1 fails with an error starting
NOQUORUM that says how many acknowledged and how many were required, while the same
write at QUORUM works; KVD CONSISTENCY shows the levels; after node 3 restarts and
is seen up, writes at ALL work again and the key written at ALL reads back from node
3 at ONE. Ends with "N passed, M failed"; SKIPs while the binary has no cluster.
"""
import re
import sys
import time

import redis

import harness


def set_with_retry(c, key, val, timeout=20.0):
    """SET at the connection's level, retried while the cluster settles; returns the
    last reply or error text."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            return c.set(key, val)
        except redis.ResponseError as e:
            last = 'error: %s' % e
        time.sleep(0.3)
    return last


def run(cl, res):
    n1, n3 = cl.nodes[0], cl.nodes[2]
    c = n1.client(single_connection_client=True)
    res.eq('KVD CONSISTENCY ALL answers OK', c.execute_command('KVD', 'CONSISTENCY', 'ALL'), b'OK')
    shown = c.execute_command('KVD', 'CONSISTENCY')
    res.check('KVD CONSISTENCY with no argument shows the levels', shown not in (None, b'', []), shown)
    try:
        c.execute_command('KVD', 'CONSISTENCY', 'SOMETIMES')
        res.check('KVD CONSISTENCY SOMETIMES is refused', False)
    except redis.ResponseError as e:
        res.check('KVD CONSISTENCY SOMETIMES is refused', True, str(e))
    res.eq('SET at ALL with every node up', c.set('all:1', 'a'), True)

    n3.kill9()
    res.check('node1 sees node3 down', cl.wait_state(n1, n3, 'down', 30))
    try:
        r = c.set('all:2', 'b')
        res.check('SET at ALL with node3 down fails', False, r)
    except redis.ResponseError as e:
        msg = str(e)
        res.check('SET at ALL with node3 down fails with NOQUORUM', msg.startswith('NOQUORUM'), msg)
        res.check('the NOQUORUM error says 3 were required', re.search(r'\b3\b', msg) is not None, msg)
    # one node down does not stop QUORUM
    q = harness.consistency_client(n1, 'QUORUM')
    res.eq('SET at QUORUM with node3 down works', q.set('q:1', 'x'), True)
    res.eq('read back at QUORUM', q.get('q:1'), b'x')
    q.close()
    # READ r WRITE w spelled out
    rw = harness.consistency_client(n1, 'READ 1 WRITE 3')
    try:
        rw.set('rw:1', 'y')
        res.check('SET at WRITE 3 with node3 down fails', False)
    except redis.ResponseError as e:
        res.check('SET at WRITE 3 with node3 down fails with NOQUORUM', str(e).startswith('NOQUORUM'), str(e))
    rw.close()

    res.check('node3 restarts', n3.restart())
    ok, why = cl.wait_all_up(60)
    res.check('every node sees node3 up again', ok, why)
    r = set_with_retry(c, 'all:3', 'c')
    res.eq('SET at ALL works again after the restart', r, True)
    one = harness.consistency_client(n3, 'ONE')
    res.eq('the ALL write reads back from node3 at ONE', one.get('all:3'), b'c')
    one.close()
    c.close()


def main():
    return harness.scenario(sys.argv[1], 'quorum', run, n=3, mode='persistent')


if __name__ == '__main__':
    sys.exit(main())
