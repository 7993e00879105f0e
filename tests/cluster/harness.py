"""tests/cluster/harness.py: real kvd processes forming a cluster on loopback.

Starts N kvd nodes on 127.0.0.2, 127.0.0.3, ... (one address each, so a node's
peer links can be cut off alone), each with a free port, its own directory and a
kv.conf written here; keeps every node's log (node dir/kvd.log). Waits, bounded,
until every node's `KVD NODES` lists all members up. Faults by PID: SIGKILL,
SIGSTOP, SIGCONT, restart (same dir, same port: the node keeps its id and
tokens). Partitions with iptables rules on lo tagged with a comment
(PARTITION_TAG); every rule is removed in finally/stop(), at exit, and on
SIGINT/SIGTERM. A writer pool records every acknowledged write (key, value,
node) and a checker reads every acknowledged key back from every node at QUORUM.

Leaves to the *_test.py files what to assert; to run.sh which tests run and the
total count. Every wait here is bounded in time; processes are stopped by their
own PID only.

Interface relied on (issue 10, cluster/cluster.h): directives cluster-enabled,
cluster-seeds, cluster-secret, replication-factor, write-quorum, read-quorum,
vnodes, cluster-request-timeout; KVD NODES lines
"<id> <ip:port> <state> <share>%[ myself]"; KVD CONSISTENCY ...; write quorum
failures are errors starting "NOQUORUM".
"""
import atexit
import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import redis

PARTITION_TAG = 'kvd-cluster-test'
SANITIZER_RE = r'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:'
FIRST_IP = 2  # nodes live on 127.0.0.2, 127.0.0.3, ...


def node_ip(i):
    return '127.0.0.%d' % (FIRST_IP + i)


def free_port(ip):
    """A port free on ip and on 127.0.0.1 right now (small race, checked at start)."""
    for _ in range(50):
        s = socket.socket()
        s.bind((ip, 0))
        port = s.getsockname()[1]
        s.close()
        t = socket.socket()
        try:
            t.bind(('127.0.0.1', port))
            return port
        except OSError:
            continue
        finally:
            t.close()
    raise RuntimeError('no free port on %s' % ip)


# ---- results --------------------------------------------------------------------

class Results:
    """check() counts one case; summary() prints the "N passed, M failed" line."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, what, cond, detail=None):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            extra = '' if detail is None else ': %r' % (detail,)
            print('FAIL %s: %s%s' % (self.name, what, extra), flush=True)
        return bool(cond)

    def eq(self, what, got, want):
        return self.check(what, got == want, 'got %r, want %r' % (got, want))

    def summary(self):
        print('%s: %d passed, %d failed' % (self.name, self.passed, self.failed), flush=True)
        print('%d passed, %d failed' % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 else 1


def log(*a):
    print(time.strftime('%H:%M:%S'), *a, flush=True)


def run_counted(res, name, argv, env=None, timeout=120, cwd=None):
    """Runs a program that ends with "N passed, M failed" (a client program, a
    suite); adds its counts to res and shows its FAIL/MISMATCH/SKIP lines. No count
    line, a timeout, or a non-zero exit with 0 failed counts one failure."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                           cwd=cwd)
        out = r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        res.check('%s finished within %d s' % (name, timeout), False, str(e)[-800:])
        return
    p = f = None
    for line in out.splitlines():
        w = line.split()
        if len(w) == 4 and w[1] == 'passed,' and w[3] == 'failed' and w[0].isdigit():
            p, f = int(w[0]), int(w[2])
    for line in out.splitlines():
        if line.startswith(('FAIL', 'MISMATCH', 'SKIP', '  ')) or 'Error' in line:
            print('%s: %s' % (name, line) if not line.startswith(' ') else line)
    if p is None:
        res.check('%s printed its counts' % name, False, out[-800:])
        return
    print('%s: %d passed, %d failed' % (name, p, f), flush=True)
    res.passed += p
    res.failed += f
    if f == 0 and r.returncode != 0:
        res.check('%s exit status 0' % name, False, r.returncode)


# ---- iptables partitions ---------------------------------------------------------

_partition_lock = threading.Lock()


def iptables_usable():
    """(True, '') when iptables can add and delete a rule here, else (False, why)."""
    if shutil.which('iptables') is None:
        return False, 'iptables is not installed (tests/install-deps.sh installs it)'
    try:
        r = subprocess.run(['iptables', '-w', '5', '-S', 'INPUT'], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, 'iptables failed: %s' % e
    if r.returncode != 0:
        return False, 'iptables -S failed: %s' % r.stderr.strip()
    return True, ''


def _iptables(*args):
    return subprocess.run(['iptables', '-w', '5'] + list(args), capture_output=True, text=True,
                          timeout=10)


def partition(group_a, group_b):
    """Drops every packet on lo between the addresses of group_a and group_b (lists of
    Node), both ways. The rules carry the comment PARTITION_TAG."""
    with _partition_lock:
        for a in group_a:
            for b in group_b:
                for src, dst in ((a.ip, b.ip), (b.ip, a.ip)):
                    r = _iptables('-I', 'INPUT', '-i', 'lo', '-s', src, '-d', dst, '-j', 'DROP',
                                  '-m', 'comment', '--comment', PARTITION_TAG)
                    if r.returncode != 0:
                        raise RuntimeError('iptables: %s' % r.stderr.strip())


def heal():
    """Removes every rule tagged PARTITION_TAG (from any run); returns how many."""
    if shutil.which('iptables') is None:
        return 0
    removed = 0
    with _partition_lock:
        for chain in ('INPUT', 'OUTPUT'):
            r = _iptables('-S', chain)
            if r.returncode != 0:
                continue
            for line in r.stdout.splitlines():
                if PARTITION_TAG not in line or not line.startswith('-A '):
                    continue
                rule = line.split()[2:]  # drop "-A CHAIN"
                # the comment is quoted in -S output; pass it back unquoted
                rule = [w.strip('"') for w in rule]
                if _iptables('-D', chain, *rule).returncode == 0:
                    removed += 1
    return removed


# ---- nodes ----------------------------------------------------------------------

_live_clusters = []


def _cleanup_all():
    for c in list(_live_clusters):
        try:
            c.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    heal()


def _on_signal(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


atexit.register(_cleanup_all)
for _sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_sig, _on_signal)


class Node:
    def __init__(self, binary, index, ip, port, dirpath, conf):
        self.binary = binary
        self.index = index
        self.ip = ip
        self.port = port
        self.dir = dirpath
        self.conf = conf  # dict directive -> value
        self.conf_path = os.path.join(dirpath, 'kv.conf')
        self.log_path = os.path.join(dirpath, 'kvd.log')
        self.proc = None
        self.stopped = False  # SIGSTOPped
        self.exits = []  # exit statuses of earlier processes of this node

    @property
    def addr(self):
        return '%s:%d' % (self.ip, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def write_conf(self):
        with open(self.conf_path, 'w') as f:
            f.write('# written by tests/cluster/harness.py\n')
            for k, v in self.conf.items():
                f.write('%s %s\n' % (k, v))

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.write_conf()
        logf = open(self.log_path, 'ab')
        logf.write(('---- start %s\n' % time.strftime('%H:%M:%S')).encode())
        logf.flush()
        self.proc = subprocess.Popen([self.binary, self.conf_path], cwd=self.dir, stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        self.stopped = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout=5.0, **kw):
        return redis.Redis(host=self.ip, port=self.port, socket_timeout=timeout,
                           socket_connect_timeout=timeout, **kw)

    def wait_ping(self, timeout=30.0):
        """True once the node answers PING (any reply, errors included)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alive():
                return False
            try:
                c = self.client(timeout=1.0)
                try:
                    c.ping()
                    return True
                except redis.ResponseError:
                    return True  # answering, even if not ready
                finally:
                    c.close()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                time.sleep(0.1)
        return False

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill9(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.exits.append(self.proc.returncode)

    def sigstop(self):
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        self.signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self, timeout=20.0):
        """SIGTERM (SIGCONT first when stopped), bounded wait, SIGKILL. Returns the exit
        status, or None when it had to be killed."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        if self.stopped:
            self.sigcont()
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            rc = None
        self.exits.append(rc)
        return rc

    def restart(self, timeout=30.0):
        if self.alive():
            self.kill9()
        self.start()
        return self.wait_ping(timeout)

    def tail(self, n=20):
        try:
            with open(self.log_path, 'rb') as f:
                lines = f.read().decode('utf-8', 'replace').splitlines()
            return '\n'.join(lines[-n:])
        except OSError:
            return ''


def parse_nodes(text):
    """KVD NODES text -> list of dicts id, addr, state, share, myself."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    out = []
    for line in text.splitlines():
        w = line.split()
        if len(w) < 4:
            continue
        out.append({'id': w[0], 'addr': w[1], 'state': w[2], 'share': w[3],
                    'myself': 'myself' in w[4:]})
    return out


def info(node, section='kvdcluster', timeout=5.0):
    """node's INFO section as redis-py parses it (a dict)."""
    c = node.client(timeout=timeout)
    try:
        return c.info(section)
    finally:
        c.close()


def info_fields(node, section='kvdcluster', timeout=5.0):
    """node's INFO section as {name: text}, values unparsed."""
    c = node.client(timeout=timeout)
    try:
        txt = c.execute_command('INFO', section)
    finally:
        c.close()
    if isinstance(txt, dict):
        return {k: str(v) for k, v in txt.items()}
    out = {}
    for line in txt.decode().splitlines():
        if ':' in line and not line.startswith('#'):
            k, v = line.split(':', 1)
            out[k] = v
    return out


def local_keys(node, timeout=5.0):
    """The keys node holds itself in db 0 (INFO keyspace: its local count)."""
    return info(node, 'keyspace', timeout).get('db0', {}).get('keys', 0)


def kvd_text(node, *args, timeout=2.0):
    """The text KVD <args> answers on node (NODES, RING, ...)."""
    c = node.client(timeout=timeout)
    try:
        t = c.execute_command('KVD', *args)
    finally:
        c.close()
    return t.decode() if isinstance(t, bytes) else str(t)


def kvd_error(node, *args):
    """The error KVD <args> answers on node, or None when it succeeded."""
    c = node.client()
    try:
        c.execute_command('KVD', *args)
        return None
    except redis.ResponseError as e:
        return str(e)
    finally:
        c.close()


def statuses(node):
    """node's KVD NODES as {addr: status}."""
    out = {}
    for line in kvd_text(node, 'NODES').splitlines():
        w = line.split()
        st = [x[len('status='):] for x in w if x.startswith('status=')]
        if len(w) > 1 and st:
            out[w[1]] = st[0]
    return out


def self_line(node):
    """node's own line of KVD NODES ('' when it has none)."""
    for line in kvd_text(node, 'NODES').splitlines():
        if ' myself' in line:
            return line
    return ''


def ring_tokens(node):
    """node's KVD RING as {id: sorted tokens}."""
    out = {}
    for line in kvd_text(node, 'RING', timeout=5.0).splitlines():
        w = line.split()
        if len(w) == 2:
            out.setdefault(w[1], []).append(int(w[0]))
    return {k: sorted(v) for k, v in out.items()}


class Cluster:
    """n kvd nodes; conf keys override the defaults per cluster (extra) or per node
    (node_extra[i])."""

    def __init__(self, binary, n=3, mode='persistent', base_dir=None, extra=None,
                 node_extra=None, secret=None, keep_dirs=False):
        self.binary = os.path.abspath(binary)
        self.n = n
        self.own_base = base_dir is None
        self.base = base_dir or tempfile.mkdtemp(prefix='kvd-cluster.')
        self.keep_dirs = keep_dirs
        self.secret = secret or 'test-secret-%d' % os.getpid()
        ports = [free_port(node_ip(i)) for i in range(n)]
        seeds = ','.join('%s:%d' % (node_ip(i), ports[i]) for i in range(n))
        self.nodes = []
        for i in range(n):
            conf = {
                'bind': node_ip(i),
                'port': ports[i],
                'dir': os.path.join(self.base, 'node%d' % (i + 1)),
                'mode': mode,
                'cluster-enabled': 'yes',
                'cluster-seeds': seeds,
                'cluster-secret': self.secret,
                'replication-factor': min(3, n),
                'write-quorum': min(2, n),
                'read-quorum': min(2, n),
                'vnodes': 16,
                'cluster-request-timeout': 500,
            }
            conf.update(extra or {})
            conf.update((node_extra or {}).get(i, {}))
            self.nodes.append(Node(self.binary, i, node_ip(i), ports[i], conf['dir'], conf))
        self.stopped = False
        self.sanitizer_reports = {}
        self.pools = []  # WriterPools started on this cluster: stop() stops them first
        _live_clusters.append(self)

    def start(self, timeout=60.0):
        """Starts every node and waits until all see all members up. Raises on timeout
        with the nodes' log tails."""
        for nd in self.nodes:
            nd.start()
        for nd in self.nodes:
            if not nd.wait_ping(timeout):
                raise RuntimeError('node %d (%s) did not answer:\n%s' % (nd.index, nd.addr, nd.tail()))
        ok, why = self.wait_all_up(timeout)
        if not ok:
            raise RuntimeError('cluster not up within %.0fs: %s\n%s' % (
                timeout, why, '\n'.join('node%d:\n%s' % (n.index + 1, n.tail(8)) for n in self.nodes)))
        return self

    def nodes_view(self, node, timeout=2.0):
        c = node.client(timeout=timeout)
        try:
            return parse_nodes(c.execute_command('KVD', 'NODES'))
        finally:
            c.close()

    def all_up_on(self, node, members=None):
        """(True, '') when node's KVD NODES lists every member (of members) up."""
        members = members if members is not None else self.nodes
        try:
            view = self.nodes_view(node)
        except (redis.RedisError, OSError) as e:
            return False, '%s: %s' % (node.addr, e)
        states = {v['addr']: v['state'] for v in view}
        for m in members:
            if states.get(m.addr) != 'up':
                return False, '%s sees %s as %s' % (node.addr, m.addr, states.get(m.addr, 'absent'))
        return True, ''

    def wait_all_up(self, timeout=60.0, members=None):
        members = members if members is not None else self.nodes
        deadline = time.time() + timeout
        why = ''
        while time.time() < deadline:
            ok = True
            for nd in members:
                ok, why = self.all_up_on(nd, members)
                if not ok:
                    break
            if ok:
                return True, ''
            time.sleep(0.2)
        return False, why

    def wait_state(self, observer, target, state, timeout=30.0):
        """True once observer's KVD NODES shows target in state."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                for v in self.nodes_view(observer):
                    if v['addr'] == target.addr and v['state'] == state:
                        return True
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.2)
        return False

    def crashed(self):
        """Nodes that died on their own (not stopped by the harness): list of (node, rc)."""
        return [(nd, nd.proc.returncode) for nd in self.nodes
                if nd.proc is not None and nd.proc.poll() is not None and not self.stopped]

    def stop(self):
        """Stops every node by PID (SIGTERM, bounded, SIGKILL) and removes the partition
        rules; returns {index: exit status}."""
        heal()
        for pool in self.pools:
            pool.stop()
        rcs = {}
        if self.stopped:
            return rcs
        self.stopped = True
        for nd in self.nodes:
            if nd.proc is not None and nd.alive() and nd.stopped:
                nd.sigcont()
        for nd in self.nodes:
            if nd.proc is not None:
                rcs[nd.index] = nd.terminate()
        if self in _live_clusters:
            _live_clusters.remove(self)
        self.sanitizer_reports = {}
        for nd in self.nodes:
            tail = nd.tail(1000000)
            if re.search(SANITIZER_RE, tail):
                self.sanitizer_reports[nd.index] = tail[-3000:]
        if self.own_base and not self.keep_dirs:
            shutil.rmtree(self.base, ignore_errors=True)
        return rcs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def consistency_client(node, level='QUORUM', timeout=3.0):
    """A one-connection client to node with KVD CONSISTENCY level in force (level is
    a string or a list of words)."""
    c = node.client(timeout=timeout, single_connection_client=True)
    words = level.split() if isinstance(level, str) else list(level)
    c.execute_command('KVD', 'CONSISTENCY', *words)
    return c


# ---- cluster availability ---------------------------------------------------------

def probe(binary, timeout=30.0):
    """(True, '') when binary runs a cluster (knows cluster-enabled and answers KVD
    NODES on a one-node cluster), else (False, reason) for a clean SKIP."""
    try:
        r = subprocess.run([binary, '--help-config'], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, 'cannot run %s: %s' % (binary, e)
    if 'cluster-enabled' not in r.stdout + r.stderr:
        return False, 'kvd has no cluster-enabled directive yet'
    c = Cluster(binary, n=1, mode='cache')
    try:
        nd = c.nodes[0]
        nd.start()
        if not nd.wait_ping(timeout):
            tail = nd.tail(5)
            if 'unknown' in tail.lower() or 'not yet' in tail.lower():
                return False, 'kvd does not start a cluster node yet: %s' % tail.strip()
            return True, ''  # let the tests fail loudly
        cl = nd.client(timeout=3.0)
        try:
            cl.execute_command('KVD', 'NODES')
        except redis.ResponseError as e:
            msg = str(e).lower()
            if 'unknown' in msg or 'not supported' in msg or 'wrong number' in msg:
                return False, 'KVD NODES is not available: %s' % e
        except (redis.RedisError, OSError):
            pass
        finally:
            cl.close()
        return True, ''
    finally:
        c.stop()


# ---- writers and checker ---------------------------------------------------------

class WriterPool:
    """threads writers, writer t connected to nodes[t % n], each SETting keys of its
    own ("w<t>:<k>", k < keys_per_writer) with values "<t>:<seq>", at level. Records
    for every key its last acknowledged value and the values attempted after it
    (indeterminate writes, which may land). Errors and reconnects are counted, not
    raised."""

    def __init__(self, cluster, threads=4, level='QUORUM', keys_per_writer=64, prefix='w',
                 nodes=None, timeout=2.0):
        self.cluster = cluster
        self.nodes = nodes or cluster.nodes
        self.threads = threads
        self.level = level
        self.kpw = keys_per_writer
        self.prefix = prefix
        self.timeout = timeout
        self.lock = threading.Lock()
        self.acked = {}  # key -> (value, node addr)
        self.pending = {}  # key -> set of values attempted since the last ack
        self.acks = 0
        self.errors = 0
        self.error_samples = []
        self.acks_by_node = {}
        self._stop = threading.Event()
        self._threads = []

    def _run(self, t):
        node = self.nodes[t % len(self.nodes)]
        c = None
        seq = 0
        while not self._stop.is_set():
            seq += 1
            key = '%s%d:%d' % (self.prefix, t, seq % self.kpw)
            val = '%d:%d' % (t, seq)
            with self.lock:
                self.pending.setdefault(key, set()).add(val)
            try:
                if c is None:
                    c = consistency_client(node, self.level, timeout=self.timeout)
                ok = c.set(key, val)
                if ok:
                    with self.lock:
                        self.acked[key] = (val, node.addr)
                        self.pending[key] = set()
                        self.acks += 1
                        self.acks_by_node[node.addr] = self.acks_by_node.get(node.addr, 0) + 1
            except (redis.RedisError, OSError) as e:
                with self.lock:
                    self.errors += 1
                    if len(self.error_samples) < 5:
                        self.error_samples.append('%s: %s' % (node.addr, e))
                if c is not None and not isinstance(e, redis.ResponseError):
                    try:
                        c.close()
                    except Exception:  # noqa: BLE001
                        pass
                    c = None
                self._stop.wait(0.05)
        if c is not None:
            c.close()

    def start(self):
        """Starts the writers; Cluster.stop() stops them too (stop() twice is fine)."""
        self.cluster.pools.append(self)
        for t in range(self.threads):
            th = threading.Thread(target=self._run, args=(t,), daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def ack_count(self):
        with self.lock:
            return self.acks

    def stop(self, timeout=15.0):
        self._stop.set()
        deadline = time.time() + timeout
        for th in self._threads:
            th.join(max(0.1, deadline - time.time()))
        return all(not th.is_alive() for th in self._threads)


def preload_keys(node, n, value_of, prefix='pre:', batch=500):
    """Writes prefix<k> = value_of(k) for k in [0, n) through node at QUORUM,
    pipelined; raises on any error."""
    c = consistency_client(node, 'QUORUM', timeout=10.0)
    try:
        for i in range(0, n, batch):
            p = c.pipeline(transaction=False)
            for k in range(i, min(n, i + batch)):
                p.set('%s%d' % (prefix, k), value_of(k))
            p.execute()
    finally:
        c.close()


def bad_preloaded(node, n, value_of, prefix='pre:', batch=1000):
    """Reads prefix<k> for k in [0, n) through node at QUORUM: the (k, what came
    back) of every key whose value is not value_of(k)."""
    bad = []
    c = consistency_client(node, 'QUORUM', timeout=10.0)
    try:
        for i in range(0, n, batch):
            ks = range(i, min(n, i + batch))
            p = c.pipeline(transaction=False)
            for k in ks:
                p.get('%s%d' % (prefix, k))
            for k, v in zip(ks, p.execute(raise_on_error=False)):
                if v != value_of(k).encode():
                    bad.append((k, v[:12] if isinstance(v, bytes) else v))
    finally:
        c.close()
    return bad


def check_acked(cluster, pool, res, level='QUORUM', nodes=None, attempts=5):
    """Reads every key pool acknowledged from every node at level; a read must give
    the last acknowledged value or a later attempted one. One case per node."""
    nodes = nodes or cluster.nodes
    with pool.lock:
        acked = dict(pool.acked)
        pending = {k: set(v) for k, v in pool.pending.items()}
    keys = sorted(acked)
    res.check('writers had acknowledged writes', len(keys) > 0, pool.error_samples)
    for nd in nodes:
        bad = []
        for attempt in range(attempts):
            bad = []
            try:
                c = consistency_client(nd, level, timeout=5.0)
                try:
                    for i in range(0, len(keys), 200):
                        chunk = keys[i:i + 200]
                        p = c.pipeline(transaction=False)
                        for k in chunk:
                            p.get(k)
                        vals = p.execute(raise_on_error=False)
                        for k, v in zip(chunk, vals):
                            if isinstance(v, Exception):
                                bad.append((k, 'error %s' % v))
                                continue
                            v = v.decode() if v is not None else None
                            if v != acked[k][0] and v not in pending.get(k, ()):
                                bad.append((k, 'got %r, acked %r via %s' % (v, acked[k][0], acked[k][1])))
                finally:
                    c.close()
            except (redis.RedisError, OSError) as e:
                bad = [('*', 'connection: %s' % e)]
            if not bad:
                break
            time.sleep(1.0)
        res.check('every acknowledged write (%d keys) reads back from %s at %s'
                  % (len(keys), nd.addr, level), not bad, bad[:5])


def node_cluster_or_skip(binary, name):
    """For a test's main: returns None to go on, or prints the SKIP and the zero
    count and returns the exit status 0."""
    ok, why = probe(binary)
    if not ok:
        print('SKIP %s: %s' % (name, why))
        print('%s: 0 passed, 0 failed' % name)
        print('0 passed, 0 failed')
        return 0
    return None


def converged_at_one(cl, pool, res, label, timeout=30.0):
    """Every node answers every key pool acknowledged at ONE with an accepted value
    (hints delivered or read repaired), within timeout: one case."""
    deadline = time.time() + timeout
    while True:
        sub = Results(res.name + '-probe')
        # a quiet probe: its FAIL lines would only be noise until the deadline
        with contextlib.redirect_stdout(io.StringIO()):
            check_acked(cl, pool, sub, level='ONE', attempts=1)
        if sub.failed == 0 or time.time() > deadline:
            break
        time.sleep(1.0)
    res.check('%s: every node converged: acknowledged writes read at ONE from each' % label,
              sub.failed == 0, '%d of %d node checks failed' % (sub.failed, sub.passed + sub.failed))


def scenario(binary, name, body, n=3, mode='persistent', start_timeout=60.0, start=True,
             **cluster_kw):
    """The frame of every *_test.py: SKIP (0 counted) while binary has no cluster;
    else starts an n-node cluster (Cluster(binary, n, mode, **cluster_kw); start
    False: body starts the nodes it wants, e.g. after setting their conf), runs
    body(cl, res), checks no node died on its own, and always stops the cluster (its
    writer pools first) checking every node exits 0 with no sanitizer report. An
    exception out of body or the start is one failed case. Returns the exit status
    after printing the "N passed, M failed" lines."""
    skip = node_cluster_or_skip(binary, name)
    if skip is not None:
        return skip
    res = Results(name)
    cl = Cluster(binary, n=n, mode=mode, **cluster_kw)
    try:
        if start:
            cl.start(timeout=start_timeout)
        body(cl, res)
        check_no_crash(cl, res)
    except Exception as e:  # noqa: BLE001 - a harness failure is one failed case
        res.check('cluster run without exception', False, repr(e))
    finally:
        check_clean_exit(cl.stop(), res, cl)
    return res.summary()


def check_no_crash(cluster, res):
    for nd in cluster.nodes:
        if nd.proc is None:
            continue
        alive = nd.alive()
        res.check('node%d %s still running' % (nd.index + 1, nd.addr), alive,
                  None if alive else 'exit %s; log tail:\n%s' % (nd.proc.returncode, nd.tail()))
        bad = [rc for rc in nd.exits if rc not in (-signal.SIGKILL, None, 0)]
        res.check('node%d: no earlier process of it died on its own' % (nd.index + 1), not bad, bad)


def check_clean_exit(rcs, res, cluster=None):
    """rcs from Cluster.stop(): every node exited 0; with cluster, no node's log
    holds a sanitizer report."""
    for i, rc in sorted(rcs.items()):
        res.check('node%d exits 0 on SIGTERM' % (i + 1), rc == 0, rc)
    if cluster is not None:
        for i, rep in sorted(cluster.sanitizer_reports.items()):
            res.check('node%d: no sanitizer report' % (i + 1), False, rep)
        if not cluster.sanitizer_reports:
            res.check('no sanitizer report in any node log', True)
