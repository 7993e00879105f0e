"""tests/jepsen/checks.py: the checkers of the counter, lock and set workloads.

Each takes a history's operations (history.py) and returns a list of anomalies,
dicts {kind, key, detail, ops: [op ids]}. Registers are checked by linear.py.
Every rule below holds for a linearizable store whatever the faults, with
indeterminate (info) operations allowed to have taken effect or not; where a
rule needs an assumption, it says which.
"""
import bisect

from history import OK, INFO


def anomaly(kind, key, detail, ops=()):
    return {'kind': kind, 'key': key, 'detail': detail, 'ops': [op.id for op in ops]}


# ---- counters: INCR -----------------------------------------------------------------

def check_counters(ops):
    """Per key: incr ops (result: the new value) and one final read (f 'final',
    result an int or None) made after every incr ended.

    counter-duplicate    two acknowledged INCRs answered the same value;
    counter-nonmonotonic an acknowledged INCR invoked after another one completed
                         answered a value not above it (a stale read-modify-write);
    counter-lost         the final value is below the number of acknowledged INCRs
                         or below an acknowledged answer (an increment vanished);
    counter-overcount    the final value is above acknowledged + indeterminate INCRs
                         (an increment applied twice), or an answer is.
    A missing final read is counter-unchecked (the bounds could not be judged)."""
    out = []
    keys = {}
    for op in ops:
        if op.f in ('incr', 'final'):
            keys.setdefault(op.key, []).append(op)
    for key, kops in sorted(keys.items()):
        incrs = [op for op in kops if op.f == 'incr']
        acked = [op for op in incrs if op.type == OK]
        maybe = sum(1 for op in incrs if op.type == INFO)
        out += _counter_replies(key, acked, len(acked) + maybe)
        finals = [op for op in kops if op.f == 'final' and op.type == OK]
        if not finals:
            out.append(anomaly('counter-unchecked', key, 'no final read succeeded'))
            continue
        final = finals[-1]
        value = int(final.result or 0)
        top = max((op.result for op in acked), default=0)
        if value < len(acked) or value < top:
            out.append(anomaly('counter-lost', key, 'final %d < acknowledged %d (highest answer %d)'
                               % (value, len(acked), top), [final]))
        if value > len(acked) + maybe:
            out.append(anomaly('counter-overcount', key, 'final %d > acknowledged %d + '
                               'indeterminate %d' % (value, len(acked), maybe), [final]))
    return out


def _counter_replies(key, acked, most):
    out = []
    seen = {}
    for op in acked:
        if op.result in seen:
            out.append(anomaly('counter-duplicate', key, 'two INCRs answered %d' % op.result,
                               [seen[op.result], op]))
        seen.setdefault(op.result, op)
        if not 1 <= op.result <= most:
            out.append(anomaly('counter-overcount', key, 'INCR answered %d; at most %d INCRs'
                               % (op.result, most), [op]))
    # real-time order: the best answer among INCRs completed before each invoke
    done = sorted(acked, key=lambda op: op.complete)
    ends = [op.complete for op in done]
    best, best_op = [], []
    for op in done:
        if not best or op.result > best[-1]:
            best.append(op.result)
            best_op.append(op)
        else:
            best.append(best[-1])
            best_op.append(best_op[-1])
    for op in acked:
        i = bisect.bisect_left(ends, op.invoke)
        if i > 0 and op.result <= best[i - 1]:
            out.append(anomaly('counter-nonmonotonic', key, 'INCR answered %d after an INCR '
                               'that answered %d had completed' % (op.result, best[i - 1]),
                               [best_op[i - 1], op]))
    return out


# ---- locks: SET k token NX PX lease, hold, GET, DEL if still ours --------------------

def check_locks(ops, lease_ms, excuse_ms):
    """Per key: acquire (value: token; result True when granted), get (result: the
    token read), release (DEL, sent only when the get saw our token early enough).

    A granted lock is certainly held from its acquire's complete until the earlier
    of its release's invoke and its acquire's invoke + lease (the server starts the
    lease after the invoke, so it cannot end sooner). Two such intervals must not
    overlap (lock-overlap), and a holder's get completed inside its interval must
    read its own token (lock-lost-early: expired early, e.g. by a skewed clock).

    Not counted: an anomaly that an indeterminate DEL of the key could explain (DEL
    removes whatever token is there, and one whose answer was lost may land late):
    one invoked at most excuse_ms before the anomaly (assumption: an indeterminate
    request lands within excuse_ms, if ever). Those come back as lock-excused."""
    out = []
    for key, kops in sorted(_group(ops, ('acquire', 'get', 'release')).items()):
        held = _lock_intervals(kops, lease_ms)
        lost_dels = sorted(op.invoke for op in kops if op.f == 'release' and op.type == INFO)
        found = _lock_overlaps(key, held) + _lock_lost_early(key, kops, held)
        for a, when in found:
            i = bisect.bisect_right(lost_dels, when)
            if i > 0 and lost_dels[i - 1] >= when - excuse_ms * 1000000:
                a['kind'] = 'lock-excused'
            out.append(a)
    return out


def _group(ops, fs):
    out = {}
    for op in ops:
        if op.f in fs:
            out.setdefault(op.key, []).append(op)
    return out


def _lock_intervals(kops, lease_ms):
    """[(start, end, acquire op)] of the granted locks, by start."""
    release = {op.value: op for op in kops if op.f == 'release'}
    held = []
    for op in kops:
        if op.f != 'acquire' or op.type != OK or op.result is not True:
            continue
        end = op.invoke + lease_ms * 1000000
        rel = release.get(op.value)
        if rel is not None:
            end = min(end, rel.invoke)
        if end > op.complete:
            held.append((op.complete, end, op))
    held.sort(key=lambda h: h[0])
    return held


def _lock_overlaps(key, held):
    """(anomaly, when) for each granted lock that began while an earlier one held."""
    out = []
    latest = None  # the interval ending last among those started so far
    for h in held:
        if latest is not None and h[0] < latest[1]:
            out.append((anomaly('lock-overlap', key, '%s held %.3f..%.3f, %s granted at %.3f' % (
                latest[2].value, latest[0] / 1e9, latest[1] / 1e9, h[2].value, h[0] / 1e9),
                [latest[2], h[2]]), h[0]))
        if latest is None or h[1] > latest[1]:
            latest = h
    return out


def _lock_lost_early(key, kops, held):
    mine = {h[2].value: h for h in held}
    out = []
    for op in kops:
        h = mine.get(op.value)
        if op.f != 'get' or op.type != OK or h is None:
            continue
        if op.complete < h[1] and op.result != op.value:
            out.append((anomaly('lock-lost-early', key, '%s read %r at %.3f, lease until %.3f'
                                % (op.value, op.result, op.complete / 1e9, h[1] / 1e9),
                                [h[2], op]), op.complete))
    return out


# ---- sets of unique elements: HSET key element, HKEYS ----------------------------------

def check_sets(ops):
    """Per key: add (value: a unique element), readset (result: the elements read
    during the run) and final (the read after healing).

    set-lost     an acknowledged element is missing from the final read;
    set-stale    a read invoked after an element's add was acknowledged misses it;
    set-phantom  a read holds an element no add had been invoked for before its
                 complete.
    A missing final read is set-unchecked."""
    out = []
    for key, kops in sorted(_group(ops, ('add', 'readset', 'final')).items()):
        adds = [op for op in kops if op.f == 'add']
        acked = sorted((op for op in adds if op.type == OK), key=lambda op: op.complete)
        ends = [op.complete for op in acked]
        invoked = {op.value: op.invoke for op in adds}
        reads = [op for op in kops if op.f in ('readset', 'final') and op.type == OK]
        for r in reads:
            got = set(r.result)
            before = acked[:bisect.bisect_left(ends, r.invoke)]
            missing = [op for op in before if op.value not in got]
            if missing:
                kind = 'set-lost' if r.f == 'final' else 'set-stale'
                out.append(anomaly(kind, key, '%d acknowledged elements missing, e.g. %s' % (
                    len(missing), missing[0].value), [r] + missing[:5]))
            ghosts = sorted(e for e in got if invoked.get(e, float('inf')) > r.complete)
            if ghosts:
                out.append(anomaly('set-phantom', key, 'read %d elements never written, e.g. %r'
                                   % (len(ghosts), ghosts[0]), [r]))
        if not any(r.f == 'final' for r in reads):
            out.append(anomaly('set-unchecked', key, 'no final read succeeded'))
    return out
