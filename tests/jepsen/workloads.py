"""tests/jepsen/workloads.py: what the clients do, and how each workload is checked.

A workload is a step (one client operation, or a short sequence of them, for one
process), a final phase (reads made after the faults healed) and a check over the
history. Every request goes through Clients.call, which records it in the history
(history.py) and, after any error, drops the connection so that the next request
goes to another random node. Keys carry the run's prefix, so a workload starts
from absent keys. Leaves to nemesis.py the faults and to jepsen.py the schedule.

  registers     GET / SET (a value unique per run) / DEL on a few shared keys, any
                process on any key: concurrent writers through different nodes; new
                keys every ops_per_key operations per key.
  registers-1w  the same, but each key has one writing process (reads from all).
  counters      INCR on a few keys; a final GET.
  locks         SET k token NX PX lease; hold; GET; DEL if the GET saw our token
                with time to spare (else the lease runs out).
  sets          HSET k element 1 (unique elements) and HKEYS k; a final HKEYS.
"""
import itertools
import random
import threading
import time

import redis

import checks
import harness
import linear
from history import INFO

READS = ('read', 'get', 'readset', 'final')  # an error leaves these 'fail', not 'info'
# after an error a process waits this long (s): a node that refuses at once (NOQUORUM
# while cut off) would otherwise take thousands of requests a second, each of them an
# indeterminate write the checkers must consider
ERROR_PAUSE = 0.1


class Clients:
    """The shared state of one phase: history, nodes, consistency level, timeouts."""

    def __init__(self, history, nodes, level, timeout, seed):
        self.history = history
        self.nodes = nodes
        self.level = level
        self.timeout = timeout
        self.stop = threading.Event()
        self.seed = seed

    def connection(self, p):
        return Conn(self, random.Random('%s-%s' % (self.seed, p)))

    def call(self, p, conn, f, key, value, fn, decode=lambda r: r):
        """Runs fn(redis client) as one recorded operation; returns the op. Any error:
        the op is fail (reads) or info (writes) and the connection is dropped."""
        op = self.history.invoke(p, f, key, value, node=conn.node.addr)
        try:
            res = fn(conn.client)
        except (redis.RedisError, OSError) as e:
            if f in READS:
                self.history.fail(op, e)
            else:
                self.history.info(op, e)
            conn.drop()
            self.stop.wait(ERROR_PAUSE)
            return op
        self.history.ok(op, decode(res))
        return op


class Conn:
    """One process's connection: to a random node, replaced by another random node
    after any error."""

    def __init__(self, clients, rng):
        self.clients = clients
        self.rng = rng
        self.node = None
        self.client = None

    def ensure(self):
        """True once connected (KVD CONSISTENCY set) to a random node; False after a
        failed attempt (the caller waits a little and tries again)."""
        if self.client is not None:
            return True
        others = [n for n in self.clients.nodes if n is not self.node]
        self.node = self.rng.choice(others or self.clients.nodes)  # another node after an error
        try:
            self.client = harness.consistency_client(self.node, self.clients.level,
                                                     timeout=self.clients.timeout)
            return True
        except (redis.RedisError, OSError):
            self.client = None
            return False

    def drop(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - a dead socket may refuse to close
                pass
        self.client = None


def _str(v):
    return v.decode() if isinstance(v, bytes) else v


def _strs(vs):
    return sorted(_str(v) for v in vs)


def run_processes(clients, workload, procs, seconds, max_ops, rate):
    """Runs procs threads doing workload.step, together at most rate steps a second,
    until seconds pass or the history holds max_ops operations; returns when all
    stopped (each bounded by the timeouts)."""
    deadline = time.monotonic() + seconds
    gap = procs / float(rate)  # seconds between one process's steps

    def loop(p):
        conn = clients.connection(p)
        rng = random.Random('%s-w%d' % (clients.seed, p))
        seq = 0
        due = time.monotonic()
        while (not clients.stop.is_set() and time.monotonic() < deadline
               and len(clients.history.ops) < max_ops):
            if not conn.ensure():
                clients.stop.wait(0.1)
                continue
            seq += 1
            workload.step(clients, conn, p, seq, rng)
            due = max(due + gap, time.monotonic() - 1.0)  # no burst after a stall
            clients.stop.wait(max(0.0, due - time.monotonic()))
        conn.drop()

    threads = [threading.Thread(target=loop, args=(p,), daemon=True) for p in range(procs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(seconds + 10 * clients.timeout + 5)
    clients.stop.set()
    clients.history.close_open('still in flight at the end of the run')
    return all(not th.is_alive() for th in threads)


def final_reads(clients, keys, f, fn, decode, attempts=10):
    """One successful read of each key after healing (f: the op name), retried on
    another node after an error, at most attempts times per key."""
    conn = clients.connection('final')
    for key in keys:
        for _ in range(attempts):
            if not conn.ensure():
                time.sleep(0.5)
                continue
            op = clients.call(-1, conn, f, key, None, lambda c, k=key: fn(c, k), decode)
            if op.type == 'ok':
                break
            time.sleep(0.5)
    conn.drop()


class Registers:
    """Keys come in generations of `keys` keys: once the workload made ops_per_key
    steps per key, every process moves to the next generation (Jepsen's independent
    keys). The checker's cost grows fast with one key's history, above all to prove
    a long history NOT linearizable; short ones keep every verdict exact."""
    name = 'registers'

    def __init__(self, prefix, keys, procs, one_writer=False, del_ratio=0.1, ops_per_key=500):
        self.prefix = prefix
        self.nkeys = keys
        self.procs = procs
        self.del_ratio = del_ratio  # of the writes
        self.one_writer = one_writer
        self.ops_per_key = ops_per_key
        self._steps = itertools.count()  # thread-safe under the GIL
        self.generations = 1
        if one_writer:
            self.name = 'registers-1w'

    def _key(self, gen, i):
        return '%s:r%d.%d' % (self.prefix, gen, i)

    def step(self, clients, conn, p, seq, rng):
        gen = next(self._steps) // (self.ops_per_key * self.nkeys)
        self.generations = max(self.generations, gen + 1)
        x = rng.random()
        if x < 0.5:
            key = self._key(gen, rng.randrange(self.nkeys))
            clients.call(p, conn, 'read', key, None, lambda c: c.get(key), _str)
            return
        mine = range(self.nkeys)
        if self.one_writer:
            mine = [i for i in mine if i % self.procs == p]
            if not mine:  # more processes than keys: this one only reads
                return
        key = self._key(gen, rng.choice(mine))
        if x >= 0.5 + 0.5 * self.del_ratio:
            val = '%d-%d' % (p, seq)
            clients.call(p, conn, 'write', key, val, lambda c: c.set(key, val))
        else:
            clients.call(p, conn, 'del', key, None, lambda c: c.delete(key))

    def final(self, clients):
        keys = [self._key(g, i) for g in range(self.generations) for i in range(self.nkeys)]
        final_reads(clients, keys, 'read', lambda c, k: c.get(k), _str)

    def check(self, ops, budget):
        out = []
        for key, r in linear.check_registers(ops, budget).items():
            if r['verdict'] == 'fail':
                out.append(checks.anomaly('nonlinearizable', key, 'no linearization of %d ops; '
                                          'stuck at %r after %d taken' % (
                                              r['ops'], r['stuck'], r['depth']),
                                          [r['stuck']] + _context(ops, r['stuck'])))
            elif r['verdict'] == 'unknown':
                out.append(checks.anomaly('linearizability-unknown', key, 'gave up after %d '
                                          'steps over %d ops' % (r['steps'], r['ops'])))
        return out


def _context(ops, stuck, writes=3):
    """The operations a reader of a failed register check wants beside the stuck one:
    the last writes of its key completed before it began, and those overlapping it."""
    key = [op for op in ops if op.key == stuck.key and op is not stuck]
    before = [op for op in key if op.f != 'read' and op.type == 'ok' and op.complete < stuck.invoke]
    before.sort(key=lambda op: op.complete)
    end = stuck.complete if stuck.complete is not None else float('inf')
    during = [op for op in key if op.invoke < end and
              (op.complete is None or op.complete > stuck.invoke)]
    return before[-writes:] + sorted(during, key=lambda op: op.invoke)[:10]


class Counters:
    name = 'counters'

    def __init__(self, prefix, keys):
        self.keys = ['%s:c%d' % (prefix, i) for i in range(keys)]

    def step(self, clients, conn, p, seq, rng):
        key = rng.choice(self.keys)
        clients.call(p, conn, 'incr', key, None, lambda c: c.incr(key))

    def final(self, clients):
        final_reads(clients, self.keys, 'final', lambda c, k: c.get(k),
                    lambda v: int(v) if v is not None else 0)

    def check(self, ops, budget):
        return checks.check_counters(ops)


class Locks:
    name = 'locks'

    def __init__(self, prefix, keys, lease_ms, hold_ms, timeout):
        self.keys = ['%s:l%d' % (prefix, i) for i in range(keys)]
        self.lease_ms = lease_ms
        self.hold_ms = hold_ms
        self.timeout = timeout

    def step(self, clients, conn, p, seq, rng):
        key = rng.choice(self.keys)
        token = '%d-%d' % (p, seq)
        acq = clients.call(p, conn, 'acquire', key, token,
                           lambda c: c.set(key, token, nx=True, px=self.lease_ms))
        if acq.type != 'ok' or acq.result is not True:
            clients.stop.wait(0.02)
            return
        clients.stop.wait(rng.uniform(*self.hold_ms) / 1000.0)
        if conn.client is None:
            return  # unreachable after an error: the lease runs out
        get = clients.call(p, conn, 'get', key, token, lambda c: c.get(key), _str)
        # DEL only with time to spare: it must land inside our lease (checks.check_locks)
        spare = acq.invoke + self.lease_ms * 1e6 - clients.history.now()
        if get.type == 'ok' and get.result == token and spare > 2 * self.timeout * 1e9:
            clients.call(p, conn, 'release', key, token, lambda c: c.delete(key))

    def final(self, clients):
        pass  # the check needs no final state

    def check(self, ops, budget):
        return checks.check_locks(ops, self.lease_ms, excuse_ms=self.lease_ms)


class Sets:
    name = 'sets'

    def __init__(self, prefix, keys):
        self.keys = ['%s:s%d' % (prefix, i) for i in range(keys)]

    def step(self, clients, conn, p, seq, rng):
        key = rng.choice(self.keys)
        if rng.random() < 0.8:
            elem = '%d-%d' % (p, seq)
            clients.call(p, conn, 'add', key, elem, lambda c: c.hset(key, elem, 1))
        else:
            clients.call(p, conn, 'readset', key, None, lambda c: c.hkeys(key), _strs)

    def final(self, clients):
        final_reads(clients, self.keys, 'final', lambda c, k: c.hkeys(k), _strs)

    def check(self, ops, budget):
        return checks.check_sets(ops)


NAMES = ('registers', 'registers-1w', 'counters', 'locks', 'sets')


def make(name, prefix, args):
    """The workload called name (one of NAMES) with the run's parameters."""
    if name in ('registers', 'registers-1w'):
        return Registers(prefix, args.keys, args.clients, one_writer=name == 'registers-1w',
                         del_ratio=args.del_ratio, ops_per_key=args.ops_per_key)
    if name == 'counters':
        return Counters(prefix, args.keys)
    if name == 'locks':
        return Locks(prefix, args.keys, args.lease_ms, (20, args.hold_ms), args.timeout)
    if name == 'sets':
        return Sets(prefix, args.keys)
    raise ValueError('unknown workload %r (one of %s)' % (name, ', '.join(NAMES)))


def indeterminate_count(ops):
    return sum(1 for op in ops if op.type == INFO)
