"""redis-compat-tests/respclient.py: a minimal RESP2/RESP3 client over a raw socket,
and the small harness the Python suites share.

Replies keep their wire type so two servers can be compared type by type:
    ('simple', b'OK')  ('error', b'ERR ...')  ('int', 5)  ('bulk', b'..')
    ('nullbulk',)  ('nullarray',)  ('null',)  ('array', [..])  ('map', [(k, v), ..])
    ('set', [..])  ('double', b'1.5')  ('bool', True)  ('verbatim', b'txt', b'..')
    ('bignum', b'..')  ('push', [..])  ('attr', [(k, v), ..], reply)
It leaves starting servers to serverctl.py and test bookkeeping to Harness below.
"""
import socket
import os
import sys


class ProtocolError(Exception):
    pass


def encode(args):
    """Encodes one command as a RESP multibulk; args are bytes, str or int."""
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a).encode()
        elif isinstance(a, str):
            a = a.encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)


class Conn:
    def __init__(self, port, host='127.0.0.1', timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b''

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, *args):
        self.sock.sendall(encode(args))

    def call(self, *args):
        self.send(*args)
        return self.read()

    def pipeline(self, cmds):
        self.sock.sendall(b''.join(encode(c) for c in cmds))
        return [self.read() for _ in cmds]

    def _fill(self):
        d = self.sock.recv(1 << 16)
        if not d:
            raise EOFError('connection closed by server')
        self.buf += d

    def _line(self):
        while True:
            i = self.buf.find(b'\r\n')
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        if not line:
            raise ProtocolError('empty reply line')
        t, rest = line[:1], line[1:]
        if t == b'+':
            return ('simple', rest)
        if t == b'-':
            return ('error', rest)
        if t == b':':
            return ('int', int(rest))
        if t == b'$':
            n = int(rest)
            return ('nullbulk',) if n < 0 else ('bulk', self._exact(n))
        if t == b'*':
            n = int(rest)
            return ('nullarray',) if n < 0 else ('array', [self.read() for _ in range(n)])
        if t == b'_':
            return ('null',)
        if t == b',':
            return ('double', rest)
        if t == b'#':
            return ('bool', rest == b't')
        if t == b'(':
            return ('bignum', rest)
        if t == b'=':
            data = self._exact(int(rest))
            return ('verbatim', data[:3], data[4:])
        if t == b'!':
            return ('error', self._exact(int(rest)))
        if t == b'%':
            n = int(rest)
            return ('map', [(self.read(), self.read()) for _ in range(n)])
        if t == b'~':
            return ('set', [self.read() for _ in range(int(rest))])
        if t == b'>':
            return ('push', [self.read() for _ in range(int(rest))])
        if t == b'|':
            n = int(rest)
            attrs = [(self.read(), self.read()) for _ in range(n)]
            return ('attr', attrs, self.read())
        raise ProtocolError('unknown reply type %r' % line[:40])

    def closed_by_peer(self, wait=3.0):
        """True when the server closes the connection within `wait` seconds (any
        bytes still in flight are read and dropped)."""
        self.sock.settimeout(wait)
        try:
            while True:
                d = self.sock.recv(1 << 16)
                if not d:
                    return True
        except socket.timeout:
            return False
        except OSError:
            return True


def plain(r):
    """A reply with wire types dropped: bytes, int, None, list, dict-as-list, float."""
    t = r[0]
    if t in ('simple', 'bulk', 'bignum'):
        return r[1]
    if t == 'error':
        return ('ERR', r[1])
    if t in ('int', 'bool'):
        return r[1]
    if t in ('nullbulk', 'nullarray', 'null'):
        return None
    if t in ('array', 'set', 'push'):
        return [plain(x) for x in r[1]]
    if t == 'map':
        return [(plain(k), plain(v)) for k, v in r[1]]
    if t == 'double':
        return float(r[1])
    if t == 'verbatim':
        return r[2]
    if t == 'attr':
        return plain(r[2])
    return r


class Harness:
    """Counts test cases. check() records one; the suite ends with summary()."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.current = None

    def check(self, what, cond, detail=''):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print('FAIL %s: %s%s' % (self.name, what, (': ' + str(detail)) if detail else ''),
                  flush=True)
        return cond

    def eq(self, what, got, want):
        return self.check(what, got == want, 'want %r got %r' % (want, got))

    def skip(self, what, why):
        """A check this target cannot run, said with its reason (not counted)."""
        print('SKIP %s: %s (%s)' % (self.name, what, why), flush=True)

    def case(self, fn, *args):
        """Runs fn(*args) as a group of checks; an exception is one failure."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - any crash of a case is a failure
            self.failed += 1
            print('FAIL %s: %s raised %s: %s' % (self.name, fn.__name__, type(e).__name__, e),
                  flush=True)

    def summary(self):
        print('%s: %d passed, %d failed' % (self.name, self.passed, self.failed))
        print('%d passed, %d failed' % (self.passed, self.failed))
        return 0 if self.failed == 0 else 1


# ---- the target: where the server under test listens, and what it refuses -----------
# run.sh sets these for every suite (README "Cluster mode", tests/cluster/compat3.py):
#   COMPAT_HOST     the main server's address (default 127.0.0.1; its port is argv[1])
#   COMPAT_POOL     "host:port,host:port,...": spread connections over these servers,
#                   a different one per new connection in turn (the nodes of a cluster);
#                   empty: every connection goes to COMPAT_HOST and the given port
#   COMPAT_REFUSED  the commands the main server refuses ("WATCH FLUSHALL DBSIZE ...",
#                   probed by run.sh: a kvd cluster refuses what it cannot run yet); the
#                   suites skip what needs them, with the reason REFUSED_WHY
#   COMPAT_DB_BASE  first database a suite may take for a fresh key space when FLUSHALL
#                   is refused (fresh_db); the server runs with enough `databases`
#   COMPAT_CLUSTER=1: a one-node cluster (KVD_ARGS with --cluster-enabled yes).
HOST = os.environ.get('COMPAT_HOST') or '127.0.0.1'
POOL = [(a.rsplit(':', 1)[0], int(a.rsplit(':', 1)[1]))
        for a in os.environ.get('COMPAT_POOL', '').split(',') if a.strip()]
REFUSED = set(os.environ.get('COMPAT_REFUSED', '').upper().split())
REFUSED_WHY = ('a multi-node kvd cluster refuses %s until it runs keyless commands on every '
               'node (SCAN/KEYS/DBSIZE/FLUSH fan-out) and WATCH across nodes: README "Cluster mode"')
CLUSTER = os.environ.get('COMPAT_CLUSTER') == '1' or 'WATCH' in REFUSED
CLUSTER_WATCH = 'cluster mode refuses WATCH until EXEC can learn of writes made through other nodes'
_pool_next = [0]
_db_next = [int(os.environ.get('COMPAT_DB_BASE') or 0)]


def refused(*cmds):
    """None when the server runs every one of cmds, else the skip reason."""
    bad = [c for c in cmds if c.upper() in REFUSED]
    return REFUSED_WHY % '/'.join(bad) if bad else None


def next_addr(port):
    """(host, port) of the next connection: the pool's next member in turn, or
    (HOST, port) without a pool."""
    if not POOL:
        return HOST, port
    a = POOL[_pool_next[0] % len(POOL)]
    _pool_next[0] += 1
    return a


def fresh_db():
    """The next unused database from COMPAT_DB_BASE: a fresh, empty key space for a
    suite when FLUSHALL is refused (never flushed; the server is the run's own)."""
    _db_next[0] += 1
    return _db_next[0]


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(2)
