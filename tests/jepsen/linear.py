"""tests/jepsen/linear.py: is one register's history linearizable?

The model is a register per key: its state is a value or None (absent); `write v`
sets v, `del` sets None and answers 1 when the key existed, else 0; `read` answers
the state. A history is linearizable when every operation can be given one point
between its invoke and its complete such that, taken in the order of those points,
every answer is the model's answer. An indeterminate (info) write or del has no
complete: it may take effect at any point after its invoke, or never (being last,
after every observed operation, is the same as never). Reads that did not succeed
are dropped: they changed nothing and told nothing.

HOW IT WORKS (Wing and Gong's search, with Lowe's memoisation, as in Porcupine).
The history becomes a list of events, call and return, in time order (a call
before a return at the same time: touching operations count as concurrent, which
can only make the checker more lenient). Walk the list: at a call, try to take
that operation as the next linearization point: if the model accepts its answer,
remember (the set of operations taken, the state) in a cache, push where we were,
lift the call and its return out of the list, and restart from the head. If the
pair (set, state) was seen before, this branch was already explored: skip. (The
set is a bitset of the key's operations, so the memo is bounded in bytes too.) At a
return, the operation it closes was not taken although its time is over: undo the
last choice (pop, put its events back) and try the next call after it. An empty
list is a linearization; popping from an empty stack means there is none.
Example: write 1 [0..10], read -> 2 [5..15], write 2 [12..20]. Events: call w1,
call r, return w1, call w2, return r, ... Taking w1 then r fails (the state is 1),
so the search takes w1, then w2 (called at 12), then r (2: accepted): linearizable.
Had write 2 been called at 16, after the read's return, every branch would stop at
that return with the read not taken: not linearizable (a read of a future value).

Unique values per key keep the search narrow; each key is checked alone (a
history of independent registers is linearizable iff each key's is). A budget of
steps (and the memo's size) bounds the search: beyond it the answer is 'unknown',
never 'ok'.
"""
from history import OK, FAIL

DEFAULT_BUDGET = 1000000  # search steps per key
UNREAD = ('unread',)  # the state after an indeterminate write whose value no read returned
CACHE_BYTES = 256 << 20  # about what the memo may hold per key (each entry: a bitset)


class _Entry:
    __slots__ = ('op', 'is_call', 'match', 'prev', 'next')

    def __init__(self, op, is_call):
        self.op = op
        self.is_call = is_call
        self.match = None  # a call's return entry
        self.prev = None
        self.next = None


def _step(state, op):
    """(accepted, next state) of the register model for op taken at state."""
    if op.f == 'write':
        return True, op.value
    if op.f == 'del':
        if op.type != OK:
            return True, None
        return op.result == (0 if state is None else 1), None
    if op.f == 'read':
        return op.result == state, state
    raise ValueError('register model: unknown f %r' % op.f)


def _event_list(ops):
    """The head sentinel of a doubly-linked list of call and return entries in time
    order. An indeterminate operation returns at infinity."""
    events = []
    for i, op in enumerate(ops):
        call, ret = _Entry(op, True), _Entry(op, False)
        call.match = ret
        end = op.complete if op.type == OK else float('inf')
        events.append((op.invoke, 0, i, call))
        events.append((end, 1, i, ret))
    events.sort(key=lambda e: e[:3])
    head = _Entry(None, False)
    prev = head
    for ev in events:
        e = ev[3]
        prev.next, e.prev = e, prev
        prev = e
    return head


def _lift(e):
    for x in (e, e.match):
        x.prev.next = x.next
        if x.next is not None:
            x.next.prev = x.prev


def _unlift(e):
    for x in (e.match, e):
        x.prev.next = x
        if x.next is not None:
            x.next.prev = x


def _prune(ops):
    """Drops the indeterminate writes no read returned, when the key has no DEL.
    Safe: in a linearization where such a write w takes effect, no read lies between
    w and the next write (it would have returned w's unique value), so taking w out
    leaves every answer true; only DEL's answer (did the key exist?) could depend on
    w. Each open write would otherwise stay concurrent with everything after it, and
    a few thousand of them (a node that answers every write NOQUORUM) blow up the
    search."""
    if any(op.f == 'del' for op in ops):
        return ops
    seen = {op.result for op in ops if op.f == 'read'}
    return [op for op in ops if not (op.f == 'write' and op.type != OK and op.value not in seen)]


def _interchangeable(ops):
    """Classes of twins: 'w' the indeterminate writes no read returned, 'd' the
    indeterminate DELs. Within a class every member has the same effect (the state
    becomes UNREAD, or None) and no answer to check, and none ever returns, so once
    two are invoked either may stand for the other: a linearization that takes a
    later twin first can swap it with an earlier untaken one. The search takes each
    class's members in invoke order only, so k open twins cost k + 1 branches, not
    2^k (a minute of NOQUORUM under a partition leaves hundreds). Returns (class of
    each op index or None, {class: [op indexes in invoke order]})."""
    seen = {op.result for op in ops if op.f == 'read'}
    klass, members = [], {'w': [], 'd': []}
    for i, op in enumerate(ops):
        c = None
        if op.type != OK and op.f == 'del':
            c = 'd'
        elif op.type != OK and op.f == 'write' and op.value not in seen:
            c = 'w'
        klass.append(c)
        if c is not None:
            members[c].append(i)
    return klass, members


def _first_untaken(indexes, taken):
    for j in indexes:
        if not (taken >> j) & 1:
            return j
    return None


def check_register(ops, budget=DEFAULT_BUDGET, initial=None):
    """Checks one key's operations (read/write/del ops of history.py). Returns a
    dict: verdict 'ok' | 'fail' | 'unknown', ops (how many were checked), steps, and
    on 'fail' `stuck`: the operation whose return no linearization could pass,
    at the deepest point the search reached, with `depth` operations taken."""
    ops = _prune([op for op in ops
                  if op.type != FAIL and not (op.f == 'read' and op.type != OK)])
    ops.sort(key=lambda op: op.invoke)
    head = _event_list(ops)
    ids = {id(op): i for i, op in enumerate(ops)}
    klass, members = _interchangeable(ops)
    cache = set()
    cache_max = max(10000, CACHE_BYTES // (len(ops) // 8 + 64))
    calls = []  # (call entry, state before it)
    state, taken = initial, 0
    entry = head.next
    steps = 0
    deepest, stuck = -1, None
    while head.next is not None:
        steps += 1
        if steps > budget or len(cache) > cache_max:
            return {'verdict': 'unknown', 'ops': len(ops), 'steps': steps}
        if entry.is_call:
            i = ids[id(entry.op)]
            c = klass[i]
            if c is not None and _first_untaken(members[c], taken) != i:
                entry = entry.next  # a twin invoked earlier stands for it
                continue
            ok, nxt = _step(state, entry.op)
            if c == 'w':
                nxt = UNREAD
            if ok:
                bit = 1 << i
                memo = (taken | bit, nxt)
                if memo not in cache:
                    cache.add(memo)
                    calls.append((entry, state))
                    state, taken = nxt, taken | bit
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
            continue
        if len(calls) > deepest:  # a return blocks: remember the deepest one
            deepest, stuck = len(calls), entry.op
        if not calls:
            return {'verdict': 'fail', 'ops': len(ops), 'steps': steps, 'stuck': stuck,
                    'depth': deepest}
        entry, state = calls.pop()
        taken &= ~(1 << ids[id(entry.op)])
        _unlift(entry)
        entry = entry.next
    return {'verdict': 'ok', 'ops': len(ops), 'steps': steps}


def check_registers(ops, budget=DEFAULT_BUDGET):
    """check_register over every key of ops (read/write/del); {key: result}."""
    keys = {}
    for op in ops:
        if op.f in ('read', 'write', 'del'):
            keys.setdefault(op.key, []).append(op)
    return {k: check_register(v, budget) for k, v in sorted(keys.items())}
