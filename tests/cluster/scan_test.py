"""tests/cluster/scan_test.py KVD_BINARY [--asan]: the keyless commands across a
cluster (SCAN, KEYS, DBSIZE, RANDOMKEY, FLUSHALL, FLUSHDB) and WATCH through any
node.

A 3-node persistent cluster, N=3 R=2 W=2. 10,000 string keys and 50 hashes are
written through the three nodes in turn. Then from each node: SCAN (COUNT 10 and
COUNT 1000) returns every key at least once and nothing that was not written;
MATCH and TYPE filter; KEYS * and KEYS k:1* are exact; DBSIZE equals the count;
RANDOMKEY returns existing keys and nil on an empty db. With node 3 SIGSTOPped:
SCAN, KEYS and DBSIZE through nodes 1 and 2 are still complete; FLUSHALL works;
keys written after it read back and the earlier ones are gone from nodes 1 and 2,
and after SIGCONT from node 3 too (at ONE as well: it did not keep or resurrect the
flushed keys). FLUSHDB empties only its db. WATCH k on node 1 with SET k on node 2
makes EXEC on node 1 return nil, and OK without the change. The peer verbs
(KVD.PEER SCAN / FLUSH) on an authenticated connection: bad arguments get errors,
a good request an answer. Ends with "N passed, M failed"; SKIPs while the binary
has no cluster. Then a cache-mode cluster: SCAN, DBSIZE, and FLUSHALL with node 3
stopped (node 3 ends up holding only the later key).
"""
import hashlib
import hmac
import os
import socket
import sys
import threading
import time

import redis

import harness

NKEYS = 10000
NHASH = 50


def full_scan(c, count=None, match=None, type_=None, max_calls=30000, cursors=None):
    """Every key a full SCAN returns (a list, duplicates kept) and the number of
    calls; None for the keys when it did not end within max_calls. The cursors
    returned are appended to the list `cursors` when given."""
    cursor = 0
    got = []
    calls = 0
    while True:
        args = ['SCAN', cursor]
        if match is not None:
            args += ['MATCH', match]
        if count is not None:
            args += ['COUNT', count]
        if type_ is not None:
            args += ['TYPE', type_]
        cursor, keys = c.execute_command(*args)
        cursor = int(cursor)
        if cursors is not None:
            cursors.append(cursor)
        got.extend(keys)
        calls += 1
        if cursor == 0:
            return got, calls
        if calls >= max_calls:
            return None, calls


def scan_calls(c, cursor, max_calls=30000):
    """(cursor returned, keys) per call of a SCAN COUNT 10 loop from `cursor` to
    its end ([] when it does not end within max_calls)."""
    calls = []
    for _ in range(max_calls):
        cursor, keys = c.execute_command('SCAN', cursor, 'COUNT', 10)
        cursor = int(cursor)
        calls.append((cursor, keys))
        if cursor == 0:
            return calls
    return []


def write_keys(cl):
    """NKEYS strings k:<i> and NHASH hashes h:<i>, through the nodes in turn, in
    pipelines. Returns the set of names written (bytes)."""
    names = set()
    clients = [nd.client(timeout=10) for nd in cl.nodes]
    batch = 500
    for start in range(0, NKEYS, batch):
        c = clients[(start // batch) % len(clients)]
        p = c.pipeline(transaction=False)
        for i in range(start, min(start + batch, NKEYS)):
            p.set('k:%d' % i, 'v%d' % i)
            names.add(b'k:%d' % i)
        p.execute()
    for i in range(NHASH):
        clients[i % len(clients)].hset('h:%d' % i, 'f', 'v')
        names.add(b'h:%d' % i)
    for c in clients:
        c.close()
    return names


# ---- an authenticated peer connection (cluster/LINKS.md "The handshake") ----

def resp(*args):
    out = b'*%d\r\n' % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b'$%d\r\n%s\r\n' % (len(a), a)
    return out


class Reader:
    def __init__(self, s):
        self.s = s
        self.buf = b''

    def _line(self):
        while b'\r\n' not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError('closed')
            self.buf += d
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            d = self.s.recv(65536)
            if not d:
                raise EOFError('closed')
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n + 2:]
        return out

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b'+', b'-'):
            return (t.decode(), rest)
        if t == b':':
            return int(rest)
        if t == b'$':
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b'*':
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError('bad reply %r' % line)


def lp(b):
    return bytes([len(b)]) + b


def peer_conn(nd, secret):
    """A connection to nd that proved the cluster secret (as a dialing peer)."""
    s = socket.create_connection((nd.ip, nd.port), timeout=10)
    s.settimeout(10)
    r = Reader(s)
    my_id = b'scan-test-peer'
    nd_ = os.urandom(32)
    s.sendall(resp('KVD.PEER', 'HELLO', my_id, nd_.hex()))
    rep = r.reply()
    if not isinstance(rep, list) or len(rep) != 2:
        raise RuntimeError('HELLO answered %r' % (rep,))
    their_id, nl = rep[0], bytes.fromhex(rep[1].decode())
    key = secret.encode() if isinstance(secret, str) else secret
    msg = lp(b'kvd-peer-v1 dialer') + nd_ + nl + lp(my_id) + lp(their_id)
    proof = hmac.new(key, msg, hashlib.sha256).hexdigest()
    s.sendall(resp('KVD.PEER', 'AUTH', proof))
    rep = r.reply()
    if not isinstance(rep, bytes):
        raise RuntimeError('AUTH answered %r' % (rep,))
    return s, r


def peer_verbs(cl, res):
    nd = cl.nodes[0]
    try:
        s, r = peer_conn(nd, cl.secret)
    except Exception as e:  # noqa: BLE001 (reported as a failure)
        res.check('an authenticated peer connection', False, repr(e))
        return
    bad = [
        ('SCAN with too few arguments', ['SCAN', '0', '0']),
        ('SCAN with a db out of range', ['SCAN', '70000', '0', '0', '10']),
        ('SCAN with a db the node does not have', ['SCAN', '99', '0', '0', '10']),
        ('SCAN with a signed db', ['SCAN', '-1', '0', '0', '10']),
        ('SCAN with a leading zero', ['SCAN', '00', '0', '0', '10']),
        ('SCAN with from >= to', ['SCAN', '0', '500', '400', '10']),
        ('SCAN with a token above 2^64', ['SCAN', '0', '18446744073709551616', '0', '10']),
        ('SCAN with count 0', ['SCAN', '0', '0', '0', '0']),
        ('SCAN with count 10001', ['SCAN', '0', '0', '0', '10001']),
        ('SCAN with a word for count', ['SCAN', '0', '0', '0', 'many']),
        ('FLUSH with a bad db', ['FLUSH', 'x', '123']),
        ('FLUSH with version 0', ['FLUSH', '0', '0']),
        ('FLUSH with too many arguments', ['FLUSH', '0', '5', '6']),
    ]
    for what, args in bad:
        s.sendall(resp('KVD.PEER', *args))
        rep = r.reply()
        res.check('peer %s: an error' % what, isinstance(rep, tuple) and rep[0] == '-', rep)
    s.sendall(resp('KVD.PEER', 'SCAN', '0', '0', '0', '5'))
    rep = r.reply()
    ok = isinstance(rep, list) and 1 <= len(rep) <= 1 + 5 + 5 and isinstance(rep[0], bytes)
    res.check('peer SCAN 0 [0, end) count 5: next then at most about 5 items', ok,
              rep if not ok else None)
    if ok:
        items = rep[1:]
        tokens = [int.from_bytes(it[:8], 'big') for it in items]
        res.check('peer SCAN items in token order, below next',
                  tokens == sorted(tokens) and (int(rep[0]) == 0 or all(t < int(rep[0]) for t in tokens)),
                  (tokens, rep[0]))
    s.close()
    res.check('node1 still answers after the peer verbs', nd.client().ping())


def watch_increments(nd, key, threads=4, each=25, timeout=60.0):
    """threads clients on nd each add 1 to key `each` times with WATCH/GET/MULTI/SET/
    EXEC, retrying aborted transactions (bounded). Returns (final value, errors)."""
    errors = []
    deadline = time.time() + timeout

    def run():
        c = nd.client(timeout=10)
        try:
            done = 0
            while done < each and time.time() < deadline:
                with c.pipeline() as p:
                    try:
                        p.watch(key)
                        v = int(p.get(key) or 0)
                        p.multi()
                        p.set(key, v + 1)
                        p.execute()
                        done += 1
                    except redis.WatchError:
                        continue
            if done < each:
                errors.append('timed out after %d' % done)
        except redis.RedisError as e:
            errors.append(repr(e))
        finally:
            c.close()

    ths = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout + 5)
    return nd.client(timeout=10).get(key), errors


def cache_mode(binary, res):
    """A cache-mode cluster (no tombstones, floors in memory): SCAN and DBSIZE
    complete, FLUSHALL with node 3 stopped, and node 3 holds only the later keys
    after SIGCONT."""
    cl = harness.Cluster(binary, n=3, mode='cache')
    try:
        cl.start()
        n1, n2, n3 = cl.nodes
        c = n1.client(timeout=30)
        p = c.pipeline(transaction=False)
        names = set()
        for i in range(1000):
            p.set('c:%d' % i, 'v')
            names.add(b'c:%d' % i)
        p.execute()
        got, _ = full_scan(n2.client(timeout=30), count=50)
        res.eq('cache mode: SCAN through node2', set(got or []), names)
        res.eq('cache mode: DBSIZE through node3', n3.client(timeout=30).dbsize(), len(names))
        n3.sigstop()
        try:
            res.eq('cache mode, node3 stopped: FLUSHALL', c.flushall(), True)
            c.set('c:after', 'a')
            res.eq('cache mode: DBSIZE after FLUSHALL', c.dbsize(), 1)
        finally:
            n3.sigcont()
        cl.wait_all_up(60)
        size3 = None
        for _ in range(60):
            one = harness.consistency_client(n3, 'ONE', timeout=30)
            size3 = one.dbsize()
            one.close()
            if size3 == 1:
                break
            time.sleep(0.5)
        res.eq('cache mode: node3 after SIGCONT holds only the later key (at ONE)', size3, 1)
        res.eq('cache mode: an earlier key stays gone through node3',
               n3.client(timeout=30).get('c:5'), None)
        harness.check_no_crash(cl, res)
    finally:
        cl.stop()


def main():
    binary = sys.argv[1]
    res = harness.Results('scan')
    skip = harness.node_cluster_or_skip(binary, 'scan')
    if skip is not None:
        return skip
    cl = harness.Cluster(binary, n=3, mode='persistent')
    try:
        cl.start()
        n1, n2, n3 = cl.nodes
        names = write_keys(cl)
        strings = {k for k in names if k.startswith(b'k:')}
        hashes = names - strings

        for nd in cl.nodes:
            c = nd.client(timeout=30)
            for count in (10, 1000):
                cursors = []
                got, calls = full_scan(c, count=count, cursors=cursors)
                # node-redis 4 reads the cursor with Number(): it must be exact
                res.check('SCAN COUNT %d through node%d: every cursor below 2^53'
                          % (count, nd.index + 1), max(cursors) < 2 ** 53, max(cursors))
                res.check('SCAN COUNT %d through node%d: cursors strictly increase'
                          % (count, nd.index + 1),
                          all(a < b for a, b in zip(cursors, cursors[1:-1])), cursors[:5])
                if got is None:
                    res.check('SCAN COUNT %d through node%d ends' % (count, nd.index + 1), False, calls)
                    continue
                s = set(got)
                res.check('SCAN COUNT %d through node%d returns every key (%d calls)'
                          % (count, nd.index + 1, calls), names <= s, len(names - s))
                res.check('SCAN COUNT %d through node%d returns only written keys'
                          % (count, nd.index + 1), s <= names, list(s - names)[:5])
            res.eq('DBSIZE through node%d' % (nd.index + 1), c.dbsize(), len(names))
            res.eq('KEYS * through node%d' % (nd.index + 1), sorted(c.keys('*')), sorted(names))
            c.close()
        c = n2.client(timeout=30)
        want = {k for k in names if k.startswith(b'k:1')}
        got, _ = full_scan(c, count=100, match='k:1*')
        res.eq('SCAN MATCH k:1* through node2', set(got or []), want)
        res.eq('KEYS k:1* through node2', set(c.keys('k:1*')), want)
        got, _ = full_scan(c, count=500, type_='hash')
        res.eq('SCAN TYPE hash through node2', set(got or []), hashes)
        got, _ = full_scan(c, count=500, type_='string', match='h:*')
        res.eq('SCAN TYPE string MATCH h:* through node2 is empty', got, [])
        for i in range(5):
            k = c.randomkey()
            res.check('RANDOMKEY returns an existing key (%d)' % i, k in names, k)
        e = n3.client(timeout=30, db=5)
        res.eq('RANDOMKEY on an empty db is nil', e.randomkey(), None)
        res.eq('DBSIZE on an empty db', e.dbsize(), 0)
        res.eq('SCAN 0 on an empty db ends at once', tuple(e.execute_command('SCAN', 0)), (0, []))
        res.eq('SCAN 2^53 (past every block) ends at once',
               tuple(c.execute_command('SCAN', 2 ** 53)), (0, []))
        # a cursor resumes at its block: SCAN <cursor> continues exactly where the
        # call that returned it stopped (nothing written meanwhile)
        calls = scan_calls(c, 0)
        mid = len(calls) // 2
        before = sum(len(keys) for _, keys in calls[:mid + 1])
        full = [k for _, keys in calls for k in keys]
        rest = scan_calls(c, calls[mid][0])
        res.check('SCAN from a middle cursor (%s) returns the rest of the full scan'
                  % (calls[mid][0] if calls else None),
                  len(calls) > 10 and [k for _, keys in rest for k in keys] == full[before:],
                  (len(calls), before, len(full)))
        e.close()
        try:
            c.execute_command('SCAN', 'notanumber')
            res.check('SCAN notanumber is refused', False)
        except redis.ResponseError as ex:
            res.eq('SCAN notanumber is refused', str(ex), 'invalid cursor')
        c.close()

        peer_verbs(cl, res)

        # ---- node 3 stopped ----
        n3.sigstop()
        try:
            for nd in (n1, n2):
                c = nd.client(timeout=60)
                got, calls = full_scan(c, count=1000)
                res.check('with node3 stopped: SCAN through node%d returns every key'
                          % (nd.index + 1), got is not None and names <= set(got),
                          None if got is None else len(names - set(got)))
                res.eq('with node3 stopped: DBSIZE through node%d' % (nd.index + 1),
                       c.dbsize(), len(names))
                c.close()
            c = n2.client(timeout=60)
            res.eq('with node3 stopped: KEYS * through node2', len(c.keys('*')), len(names))
            c.close()

            c1 = n1.client(timeout=60)
            res.eq('with node3 stopped: FLUSHALL through node1', c1.flushall(), True)
            res.eq('node1 keeps the flush for node3 (INFO flushes_pending)',
                   c1.info('kvdcluster').get('flushes_pending'), 1)
            after = set()
            for i in range(200):
                cl.nodes[i % 2].client(timeout=10).set('after:%d' % i, 'a%d' % i)
                after.add(b'after:%d' % i)
            for nd in (n1, n2):
                c = nd.client(timeout=60)
                res.eq('after FLUSHALL (node3 stopped): DBSIZE through node%d' % (nd.index + 1),
                       c.dbsize(), len(after))
                res.eq('after FLUSHALL: KEYS * through node%d' % (nd.index + 1),
                       set(c.keys('*')), after)
                res.eq('after FLUSHALL: an earlier key is gone through node%d' % (nd.index + 1),
                       c.get('k:7'), None)
                res.eq('after FLUSHALL: a later key reads back through node%d' % (nd.index + 1),
                       c.get('after:7'), b'a7')
                c.close()
            c1.close()
        finally:
            n3.sigcont()
        ok, why = cl.wait_all_up(60)
        res.check('node3 is seen up again', ok, why)
        # the flush reaches node3 (resent from the tick), the later writes as hints
        deadline = time.time() + 30
        size3 = None
        while time.time() < deadline:
            one = harness.consistency_client(n3, 'ONE', timeout=30)
            try:
                size3 = one.dbsize()
            finally:
                one.close()
            if size3 == len(after):
                break
            time.sleep(0.5)
        res.eq('node3 after SIGCONT: DBSIZE at ONE (its flush arrived, hints too)', size3,
               len(after))
        pend = None
        for _ in range(100):
            pend = n1.client(timeout=10).info('kvdcluster').get('flushes_pending')
            if pend == 0:
                break
            time.sleep(0.2)
        res.eq('node1 delivered the flush to node3 (flushes_pending 0)', pend, 0)
        c3 = n3.client(timeout=60)
        res.eq('node3 after SIGCONT: KEYS * (no flushed key resurrected)', set(c3.keys('*')), after)
        res.eq('node3 after SIGCONT: an earlier key stays gone', c3.get('k:7'), None)
        res.eq('node3 after SIGCONT: a later key reads back', c3.get('after:7'), b'a7')
        missing = [k for k in list(strings)[:300] if c3.exists(k)]
        res.check('node3 after SIGCONT: 300 earlier keys all gone', not missing, missing[:5])
        c3.close()
        for nd in cl.nodes:
            c = nd.client(timeout=60)
            res.eq('after SIGCONT: DBSIZE through node%d' % (nd.index + 1), c.dbsize(), len(after))
            c.close()

        # ---- FLUSHDB empties its db only ----
        c = n2.client(timeout=30, db=3)
        c.set('db3key', 'x')
        res.eq('FLUSHDB ASYNC through node2 (db 3)', c.flushdb(asynchronous=True), True)
        res.eq('FLUSHDB emptied db 3', c.dbsize(), 0)
        c.close()
        c = n1.client(timeout=30)
        res.eq('FLUSHDB of db 3 left db 0', c.dbsize(), len(after))
        try:
            c.execute_command('FLUSHALL', 'SOMETIMES')
            res.check('FLUSHALL SOMETIMES is a syntax error', False)
        except redis.ResponseError as ex:
            res.check('FLUSHALL SOMETIMES is a syntax error', 'syntax' in str(ex), str(ex))
        c.close()

        # ---- WATCH through any node ----
        a = n1.client(timeout=10, single_connection_client=True)
        b = n2.client(timeout=10)
        a.set('wk', '1')
        res.eq('WATCH wk on node1', a.execute_command('WATCH', 'wk'), True)
        b.set('wk', 'changed-through-node2')
        a.execute_command('MULTI')
        a.execute_command('SET', 'wk', 'from-node1')
        res.eq('EXEC after wk changed through node2 is nil', a.execute_command('EXEC'), None)
        res.eq('the aborted transaction wrote nothing', b.get('wk'), b'changed-through-node2')
        res.eq('WATCH wk again', a.execute_command('WATCH', 'wk'), True)
        a.execute_command('MULTI')
        a.execute_command('SET', 'wk', 'from-node1')
        res.eq('EXEC without a change runs', a.execute_command('EXEC'), [b'OK'])
        res.eq('its write reads back through node2', b.get('wk'), b'from-node1')
        res.eq('WATCH an absent key', a.execute_command('WATCH', 'wnew'), True)
        b.set('wnew', 'created')
        a.execute_command('MULTI')
        a.execute_command('GET', 'wnew')
        res.eq('EXEC after the watched absent key was created elsewhere is nil',
               a.execute_command('EXEC'), None)
        a.execute_command('WATCH', 'wk')
        b.set('wk', 'again')
        res.eq('UNWATCH', a.execute_command('UNWATCH'), True)
        a.execute_command('MULTI')
        a.execute_command('GET', 'wk')
        res.eq('after UNWATCH EXEC runs', a.execute_command('EXEC'), [b'again'])
        a.close()
        b.close()
        # concurrent WATCH increments through one node lose nothing: a transaction
        # whose watched key another one through the node is shipping aborts
        got, errs = watch_increments(n1, 'wcounter')
        res.check('4 threads x 25 WATCH increments through node1: no error', not errs, errs[:3])
        res.eq('4 threads x 25 WATCH increments through node1 add up', got, b'100')

        harness.check_no_crash(cl, res)
        rcs = cl.stop()
        harness.check_clean_exit(rcs, res, cl)
    finally:
        cl.stop()
    cache_mode(binary, res)
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
