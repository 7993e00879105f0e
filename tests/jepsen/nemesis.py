"""tests/jepsen/nemesis.py: faults, one at a time, on a harness.Cluster.

Each round waits quiet_s, picks a fault kind and a node (seeded), applies the fault,
keeps it fault_s, then undoes it:

  kill       SIGKILL, then restart on the same directory (persistent mode keeps
             the data, the node id and the tokens);
  pause      SIGSTOP, then SIGCONT;
  partition  iptables DROP on lo between the node's address and every other node's,
             both ways (rules tagged PARTITION_TAG, removed in a finally, at exit and
             by heal_all); clients still reach the node;
  skew       restart the node with debug-clock-offset-ms of +-2..5 s, then restart
             it again on the true clock.

Partitions need root and a usable iptables: without them the kind is dropped with
one SKIP line. The rules carry their own tag (not harness.PARTITION_TAG), so this
suite and tests/cluster/ never remove each other's rules. Every fault and its undo
is logged with its time (history clock) for the history file.
"""
import atexit
import subprocess
import threading

import harness

PARTITION_TAG = 'kvd-jepsen-test'
KINDS = ('kill', 'pause', 'partition', 'skew')
_lock = threading.Lock()


def _iptables(*args):
    return subprocess.run(['iptables', '-w', '5'] + list(args), capture_output=True, text=True,
                          timeout=10)


def isolate(node, others):
    """Drops every packet between node's address and each of others', both ways."""
    with _lock:
        for o in others:
            for src, dst in ((node.ip, o.ip), (o.ip, node.ip)):
                r = _iptables('-I', 'INPUT', '-i', 'lo', '-s', src, '-d', dst, '-j', 'DROP',
                              '-m', 'comment', '--comment', PARTITION_TAG)
                if r.returncode != 0:
                    raise RuntimeError('iptables: %s' % r.stderr.strip())


def heal_partitions():
    """Removes every INPUT rule tagged PARTITION_TAG; returns how many."""
    removed = 0
    with _lock:
        try:
            r = _iptables('-S', 'INPUT')
        except (OSError, subprocess.TimeoutExpired):
            return 0
        for line in r.stdout.splitlines():
            if PARTITION_TAG in line and line.startswith('-A '):
                rule = [w.strip('"') for w in line.split()[2:]]
                if _iptables('-D', 'INPUT', *rule).returncode == 0:
                    removed += 1
    return removed


atexit.register(heal_partitions)


class Nemesis:
    def __init__(self, cluster, kinds, rng, history, fault_s, quiet_s, log=harness.log):
        self.cl = cluster
        self.rng = rng
        self.history = history
        self.fault_s = fault_s
        self.quiet_s = quiet_s
        self.log = log
        self.events = []  # [time s, what]
        self.kinds = list(kinds)
        if 'partition' in self.kinds:
            ok, why = harness.iptables_usable()
            if not ok:
                print('SKIP partition faults: %s' % why, flush=True)
                self.kinds.remove('partition')
        self.stop = threading.Event()
        self._thread = None

    def note(self, what):
        self.events.append([round(self.history.now() / 1e9, 3), what])
        self.log('nemesis:', what)

    def start(self):
        if self.kinds:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self.stop.wait(self.quiet_s):
            kind = self.rng.choice(self.kinds)
            node = self.rng.choice(self.cl.nodes)
            try:
                undo = getattr(self, '_' + kind)(node)
                try:
                    self.stop.wait(self.fault_s)
                finally:
                    undo()
            except Exception as e:  # noqa: BLE001 - a fault that failed is logged, then healed
                self.note('%s on node%d failed: %r' % (kind, node.index + 1, e))
                self.heal_all()

    def _kill(self, node):
        self.note('SIGKILL node%d' % (node.index + 1))
        node.kill9()

        def undo():
            ok = node.restart()
            self.note('restarted node%d: %s' % (node.index + 1, 'up' if ok else 'NOT answering'))
        return undo

    def _pause(self, node):
        self.note('SIGSTOP node%d' % (node.index + 1))
        node.sigstop()

        def undo():
            node.sigcont()
            self.note('SIGCONT node%d' % (node.index + 1))
        return undo

    def _partition(self, node):
        others = [o for o in self.cl.nodes if o is not node]
        self.note('partition node%d from the others' % (node.index + 1))
        try:
            isolate(node, others)
        except Exception:
            heal_partitions()
            raise

        def undo():
            self.note('healed partition (%d rules)' % heal_partitions())
        return undo

    def _skew(self, node):
        offset = self.rng.choice((-1, 1)) * self.rng.randint(2000, 5000)
        self._restart_with_offset(node, offset)

        def undo():
            self._restart_with_offset(node, 0)
        return undo

    def _restart_with_offset(self, node, offset):
        node.terminate()
        node.conf['debug-clock-offset-ms'] = offset
        node.start()
        ok = node.wait_ping(30)
        self.note('node%d restarted with debug-clock-offset-ms %d: %s' % (
            node.index + 1, offset, 'up' if ok else 'NOT answering'))

    def finish(self):
        """Stops the rounds (the current fault is undone) and heals everything."""
        self.stop.set()
        if self._thread is not None:
            self._thread.join(120)
        self.heal_all()

    def heal_all(self):
        """No partition, no stopped node, every node running on the true clock."""
        n = heal_partitions()
        if n:
            self.note('healed %d partition rules' % n)
        for nd in self.cl.nodes:
            if nd.stopped:
                nd.sigcont()
                self.note('SIGCONT node%d' % (nd.index + 1))
            if nd.conf.get('debug-clock-offset-ms', 0) != 0:
                self._restart_with_offset(nd, 0)
            elif not nd.alive():
                ok = nd.restart()
                self.note('restarted node%d: %s' % (nd.index + 1, ok))
