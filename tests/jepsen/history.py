"""tests/jepsen/history.py: what the clients did, as a history of operations.

An operation is one client request: who sent it (process), to which node, what
(f, key, value), when it was sent (invoke) and when its answer came (complete),
both from one monotonic clock in nanoseconds since the run began, and how it
ended (type):

  ok    the server answered; result holds the reply, decoded;
  fail  the operation certainly had no effect: only reads end so (a read that got
        an error changed nothing, so dropping it loses no information);
  info  indeterminate: an error reply, a timeout or a dropped connection on an
        operation that may change data. It may have taken effect, at any time
        after its invoke, or never. complete is None: the checkers treat it as
        open until the end of time.

A write that got -NOQUORUM is info, never fail: some replicas (or hints) may hold
it and it may appear later, as the README says.

History is thread-safe; its JSON form (save/load) is what a failed run leaves
behind for replay (`jepsen.py check FILE`). Leaves to workloads.py what the
operations are and to the checkers what they mean.
"""
import json
import threading
import time

OK, FAIL, INFO = 'ok', 'fail', 'info'


class Op:
    __slots__ = ('id', 'process', 'node', 'f', 'key', 'value', 'invoke', 'complete',
                 'type', 'result', 'error')

    def __init__(self, id, process, f, key, value=None, invoke=0, complete=None,
                 type=None, result=None, node=None, error=None):
        self.id = id
        self.process = process  # worker number (one request at a time each)
        self.node = node  # ip:port the request went to
        self.f = f  # read write del incr acquire get release add readset
        self.key = key
        self.value = value  # the argument: a written value, a lock token, an element
        self.invoke = invoke  # ns since the run began, taken before sending
        self.complete = complete  # ns, taken after the answer; None when info
        self.type = type  # ok fail info; None while in flight
        self.result = result  # the decoded reply when ok
        self.error = error  # the error text when fail or info

    def to_json(self):
        return {s: getattr(self, s) for s in self.__slots__}

    @classmethod
    def from_json(cls, d):
        return cls(**{s: d.get(s) for s in cls.__slots__})

    def __repr__(self):
        end = '-' if self.complete is None else '%.3f' % (self.complete / 1e9)
        return '<op %d p%s %s %s %r -> %s %r [%.3f..%s]%s>' % (
            self.id, self.process, self.f, self.key, self.value, self.type, self.result,
            self.invoke / 1e9, end, ' ' + self.error if self.error else '')


class History:
    """Operations in invoke order. invoke() opens one, ok()/fail()/info() close it."""

    def __init__(self, meta=None):
        self.ops = []
        self.meta = dict(meta or {})
        self._lock = threading.Lock()
        self._t0 = time.monotonic_ns()

    def now(self):
        return time.monotonic_ns() - self._t0

    def invoke(self, process, f, key, value=None, node=None):
        with self._lock:
            op = Op(len(self.ops), process, f, key, value, node=node)
            self.ops.append(op)
            op.invoke = self.now()  # last: the request is sent right after
            return op

    def ok(self, op, result):
        op.complete = self.now()
        op.result = result
        op.type = OK

    def fail(self, op, error):
        op.complete = self.now()
        op.error = str(error)[:200]
        op.type = FAIL

    def info(self, op, error):
        op.complete = None
        op.error = str(error)[:200]
        op.type = INFO

    def close_open(self, why='never answered'):
        """Every operation still in flight (a worker stuck at the deadline) becomes info."""
        for op in self.ops:
            if op.type is None:
                self.info(op, why)

    def counts(self):
        c = {OK: 0, FAIL: 0, INFO: 0}
        for op in self.ops:
            c[op.type or INFO] += 1
        return c

    def save(self, path, anomalies=None):
        with open(path, 'w') as f:
            json.dump({'meta': self.meta, 'anomalies': anomalies or [],
                       'ops': [op.to_json() for op in self.ops]}, f, indent=0)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            d = json.load(f)
        h = cls(d.get('meta'))
        h.ops = [Op.from_json(o) for o in d['ops']]
        return h


def by_key(ops, fs=None):
    """{key: [op, ...]} for the ops whose f is in fs (all when None), in invoke order."""
    out = {}
    for op in ops:
        if fs is None or op.f in fs:
            out.setdefault(op.key, []).append(op)
    return out
