"""redis-compat-tests/persist_lib.py: what the persistent-mode suites (persist_*.py)
share: a server that keeps its data dir across restarts, bulk loading, RSS samples.

PServer starts kvd in `--mode persistent` (or, to check the suites themselves, a
redis-server with `--appendonly yes`, which makes the same durability promises) on
a free loopback port with a data dir that outlives the process, so the suites can
SIGKILL it, SHUTDOWN it and start it again on the same dir. Every process is
stopped by its PID (kill/stop/close); nothing is found by name.

Replies come from respclient.Conn (wire-typed tuples). Test bookkeeping is
respclient.Harness, plus a skipped count printed before the final line.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from respclient import Conn, encode
from serverctl import free_port



def _on_sigterm(signum, frame):
    # a time limit (timeout(1) sends SIGTERM first) unwinds through the tests'
    # finally blocks, which stop every server by PID and remove the temp dirs
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)

SAN_RE = re.compile(rb'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|'
                    rb'SUMMARY: (Address|Undefined|Leak)')


def is_redis(binary):
    return 'redis-server' in os.path.basename(binary)


class Workdir:
    """A temporary dir under /tmp, removed by close() (unmounting whatever a suite
    mounted inside it first)."""

    def __init__(self, tag):
        self.path = tempfile.mkdtemp(prefix='kvd-persist-%s-' % tag, dir='/tmp')
        self.mounts = []

    def sub(self, name):
        p = os.path.join(self.path, name)
        os.makedirs(p, exist_ok=True)
        return p

    def close(self):
        for m in reversed(self.mounts):
            subprocess.run(['umount', '-l', m], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(self.path, ignore_errors=True)


class PServer:
    """One server process on a data dir that survives it.

    fsync: appendfsync policy (always|everysec|no). maxmemory: e.g. '64mb' or None.
    extra: more command-line flags. The log (stdout+stderr of every start) goes to
    <dir>.log beside the data dir, so the data dir holds only the server's files."""

    def __init__(self, binary, datadir, fsync='always', maxmemory=None, extra=(),
                 name='server'):
        self.binary = os.path.abspath(binary) if os.sep in binary else \
            (shutil.which(binary) or binary)
        self.redis = is_redis(binary)
        self.dir = datadir
        self.fsync = fsync
        self.maxmemory = maxmemory
        self.extra = list(extra)
        self.name = name
        self.proc = None
        self.port = free_port()
        self.logpath = datadir.rstrip('/') + '.log'
        self.log = None
        self.starts = 0

    def args(self):
        a = [self.binary, '--port', str(self.port), '--bind', '127.0.0.1', '--dir', self.dir]
        if self.redis:
            a += ['--daemonize', 'no', '--save', '', '--appendonly', 'yes',
                  '--appendfsync', self.fsync, '--enable-debug-command', 'local']
        else:
            a += ['--mode', 'persistent', '--appendfsync', self.fsync]
        if self.maxmemory:
            a += ['--maxmemory', self.maxmemory]
        return a + self.extra

    def spawn(self):
        """Starts the process and returns at once (the node may still be loading)."""
        assert self.proc is None or self.proc.poll() is not None
        self.log = open(self.logpath, 'ab')
        self.log.write(b'==== start %d: %s\n' % (self.starts, ' '.join(self.args()).encode()))
        self.log.flush()
        self.starts += 1
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        self.spawned_at = time.time()
        return self.proc.pid

    def start(self, timeout=120.0):
        """spawn() then wait_ready(); on a port already taken, retries on another."""
        for attempt in range(3):
            self.spawn()
            try:
                return self.wait_ready(timeout)
            except RuntimeError:
                if self.proc.poll() is not None and b'ddress already in use' in self.tail():
                    self.port = free_port()
                    continue
                raise
        raise RuntimeError('%s: no free port after 3 tries' % self.name)

    def wait_ready(self, timeout=120.0):
        """Waits until PING answers PONG (not -LOADING). Returns the seconds it took
        from spawn(). Raises RuntimeError with the log's tail if the process exits or
        the time runs out."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('%s exited with status %s while starting; log tail:\n%s'
                                   % (self.name, self.proc.returncode,
                                      self.tail().decode(errors='replace')))
            try:
                c = Conn(self.port, timeout=5)
                try:
                    while time.time() < deadline:
                        r = c.call('PING')
                        if r == ('simple', b'PONG'):
                            return time.time() - self.spawned_at
                        if not (r[0] == 'error' and r[1].startswith(b'LOADING')):
                            raise RuntimeError('%s: PING answered %r' % (self.name, r))
                        time.sleep(0.02)
                finally:
                    c.close()
            except (OSError, EOFError):
                time.sleep(0.02)
        raise RuntimeError('%s did not become ready within %.0f s; log tail:\n%s'
                           % (self.name, timeout, self.tail().decode(errors='replace')))

    def conn(self, timeout=30.0):
        return Conn(self.port, timeout=timeout)

    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL by PID and reap."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()
        self._close_log()

    def stop(self, timeout=60.0, how='sigterm'):
        """how: 'sigterm' or 'shutdown' (the SHUTDOWN command). Bounded wait, then
        SIGKILL. Returns the exit status, or None when it had to be killed."""
        if not self.alive():
            rc = self.proc.returncode if self.proc else None
            self._close_log()
            return rc
        if how == 'shutdown':
            try:
                c = Conn(self.port, timeout=timeout)
                c.send('SHUTDOWN')
                c.closed_by_peer(timeout)
                c.close()
            except OSError:
                pass
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._close_log()
        return rc

    def _close_log(self):
        if self.log:
            self.log.close()
            self.log = None

    def tail(self, n=3000):
        try:
            with open(self.logpath, 'rb') as f:
                return f.read()[-n:]
        except OSError:
            return b''

    def sanitizer_report(self):
        """The first sanitizer report in the log (all starts), or None."""
        try:
            with open(self.logpath, 'rb') as f:
                data = f.read()
        except OSError:
            return None
        m = SAN_RE.search(data)
        return data[m.start():m.start() + 3000].decode(errors='replace') if m else None

    def rss_kb(self):
        return rss_kb(self.proc.pid) if self.alive() else None


def check_clean_stop(h, srv, timeout=300):
    """Stops srv with SIGTERM and checks, on harness h, that it exited with status 0
    and left no sanitizer report."""
    rc = srv.stop(timeout=timeout)
    h.check('SIGTERM exits with status 0', rc == 0, 'status %r' % rc)
    rep = srv.sanitizer_report()
    h.check('no sanitizer report', rep is None, rep)


def rss_kb(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples VmRSS of a PID every `every` seconds on a thread; peak in KiB."""

    def __init__(self, pid, every=0.2):
        self.pid = pid
        self.every = every
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            v = rss_kb(self.pid)
            if v is not None:
                self.peak = max(self.peak, v)
                self.samples += 1
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._t.join()
        return self.peak


def info(conn, section=None):
    """INFO as a dict of str -> str."""
    r = conn.call('INFO', section) if section else conn.call('INFO')
    if r[0] not in ('bulk', 'verbatim'):
        raise RuntimeError('INFO answered %r' % (r,))
    text = (r[1] if r[0] == 'bulk' else r[2]).decode(errors='replace')
    out = {}
    for line in text.split('\r\n'):
        if ':' in line and not line.startswith('#'):
            k, v = line.split(':', 1)
            out[k] = v
    return out


def info_sections(conn):
    r = conn.call('INFO', 'everything')
    text = (r[1] if r[0] == 'bulk' else b'').decode(errors='replace')
    return [line[2:].strip() for line in text.split('\r\n') if line.startswith('# ')]


def pipe_raw(conn, payload, nreplies, want=b'+OK\r\n'):
    """Sends pre-encoded commands and reads nreplies replies. Fast path: when every
    reply is exactly `want`, they are counted without parsing. Returns the number
    of replies that were not `want` (0 = all as expected) and the first of them."""
    conn.sock.sendall(payload)
    need = len(want) * nreplies
    buf = conn.buf
    conn.buf = b''
    chunks = [buf]
    have = len(buf)
    while have < need:
        d = conn.sock.recv(1 << 20)
        if not d:
            raise EOFError('connection closed by server')
        chunks.append(d)
        have += len(d)
    data = b''.join(chunks)
    if data[:need] == want * nreplies:
        conn.buf = data[need:]
        return 0, None
    # slow path: parse every reply
    conn.buf = data
    bad = 0
    first = None
    for _ in range(nreplies):
        r = conn.read()
        if r != ('simple', want.strip()[1:]) and not (r[0] == 'int' and want[:1] == b':'):
            bad += 1
            if first is None:
                first = r
    return bad, first


def load_strings(conn, keys_vals, batch=2000):
    """SETs (key, value) pairs pipelined in batches. Returns (not OK count, first
    non-OK reply)."""
    bad = 0
    first = None
    cmds = []
    for kv in keys_vals:
        cmds.append(encode(('SET',) + kv))
        if len(cmds) >= batch:
            b, f = pipe_raw(conn, b''.join(cmds), len(cmds))
            bad += b
            first = first or f
            cmds = []
    if cmds:
        b, f = pipe_raw(conn, b''.join(cmds), len(cmds))
        bad += b
        first = first or f
    return bad, first


def finish(h, skipped=0, skipped_what=()):
    """Prints the skipped cases and the final count line; returns the exit status."""
    for w in skipped_what:
        print('SKIP %s: %s' % (h.name, w))
    if skipped:
        print('%s: %d skipped' % (h.name, skipped))
    return h.summary()
