"""tests/jepsen/checker_test.py: the checkers on synthetic histories.

Known linearizable register histories must pass and known non-linearizable ones
(stale read, lost write, read of a value never written, a future read, a wrong DEL
count) must fail; indeterminate writes may or may not take effect; the search
gives up with 'unknown' beyond its budget. The counter, lock and set checkers
each find what they claim to and stay quiet on clean histories. No kvd process:
runs in well under a second. Ends with "N passed, M failed".
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'cluster'))

import checks  # noqa: E402
import linear  # noqa: E402
from history import Op, OK, FAIL, INFO  # noqa: E402

MS = 1000000


def ops_of(rows, key='k'):
    """rows: (f, value, invoke ms, complete ms or None, type, result) -> [Op]."""
    out = []
    for i, (f, value, inv, comp, typ, result) in enumerate(rows):
        out.append(Op(i, i, f, key, value, inv * MS, None if comp is None else comp * MS,
                      typ, result))
    return out


def verdict(rows, **kw):
    return linear.check_register(ops_of(rows), **kw)['verdict']


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


# ---- registers: linearizable ---------------------------------------------------------

@case
def test_sequential_write_read_del_passes(t):
    t('sequential', verdict([('read', None, 0, 1, OK, None), ('write', 'a', 2, 3, OK, True),
                             ('read', None, 4, 5, OK, 'a'), ('del', None, 6, 7, OK, 1),
                             ('del', None, 8, 9, OK, 0), ('read', None, 10, 11, OK, None)]),
      'ok')


@case
def test_concurrent_read_may_see_either_value(t):
    rows = [('write', 'a', 0, 1, OK, True), ('write', 'b', 2, 10, OK, True)]
    t('read overlapping write b sees a', verdict(rows + [('read', None, 3, 5, OK, 'a')]), 'ok')
    t('read overlapping write b sees b', verdict(rows + [('read', None, 3, 5, OK, 'b')]), 'ok')


@case
def test_reordered_concurrent_writes_pass(t):
    # write b invoked after write a but both overlap: a later read of a is fine
    t('concurrent writes, last is a', verdict([
        ('write', 'a', 0, 10, OK, True), ('write', 'b', 1, 9, OK, True),
        ('read', None, 11, 12, OK, 'a'), ('read', None, 13, 14, OK, 'a')]), 'ok')


@case
def test_indeterminate_write_may_take_effect_or_not(t):
    base = [('write', 'a', 0, 1, OK, True), ('write', 'b', 2, None, INFO, None)]
    t('info write seen', verdict(base + [('read', None, 50, 51, OK, 'b')]), 'ok')
    t('info write never seen', verdict(base + [('read', None, 50, 51, OK, 'a')]), 'ok')
    t('info write seen late', verdict(base + [('read', None, 50, 51, OK, 'a'),
                                              ('read', None, 60, 61, OK, 'b')]), 'ok')
    t('info write cannot precede its invoke',
      verdict([('write', 'a', 0, 1, OK, True), ('read', None, 2, 3, OK, 'b'),
               ('write', 'b', 4, None, INFO, None)]), 'fail')


@case
def test_unread_indeterminate_writes_are_pruned_safely(t):
    many = [('write', 'x%d' % i, 10 + i, None, INFO, None) for i in range(3000)]
    r = linear.check_register(ops_of([('write', 'a', 0, 1, OK, True)] + many +
                                     [('read', None, 5000, 5001, OK, 'a')]), budget=50000)
    t('3000 unread info writes: ok within a small budget', r['verdict'], 'ok')
    t('pruning keeps a lost write visible', verdict(
        [('write', 'a', 0, 1, OK, True), ('write', 'b', 2, None, INFO, None),
         ('read', None, 5, 6, OK, None)]), 'fail')
    t('with DEL nothing is pruned: an unread info write can explain a DEL of 1', verdict(
        [('write', 'a', 0, 1, OK, True), ('del', None, 2, 3, OK, 1),
         ('write', 'b', 4, None, INFO, None), ('del', None, 10, 11, OK, 1)]), 'ok')


@case
def test_many_open_dels_and_writes_stay_tractable_and_exact(t):
    rows = [('write', 'a', 0, 1, OK, True)]
    for i in range(25):  # 25 open DELs and 25 open unread writes, all concurrent
        rows.append(('del', None, 2 + i, None, INFO, None))
        rows.append(('write', 'u%d' % i, 2 + i, None, INFO, None))
    ok = rows + [('read', None, 500, 501, OK, 'a'), ('del', None, 502, 503, OK, 1),
                 ('del', None, 504, 505, OK, 1), ('read', None, 506, 507, OK, None),
                 ('write', 'b', 508, 509, OK, True), ('read', None, 510, 511, OK, 'b')]
    r = linear.check_register(ops_of(ok), budget=300000)
    t('two DELs of 1 explained by an open write between them', r['verdict'], 'ok')
    bad = ok + [('read', None, 512, 513, OK, 'a')]
    r = linear.check_register(ops_of(bad), budget=300000)
    t('a read of a after b was read fails, within the budget', r['verdict'], 'fail')


@case
def test_failed_and_indeterminate_reads_are_ignored(t):
    t('fail/info reads dropped', verdict([
        ('write', 'a', 0, 1, OK, True), ('read', None, 2, 3, FAIL, None),
        ('read', None, 4, None, INFO, None), ('read', None, 5, 6, OK, 'a')]), 'ok')


@case
def test_indeterminate_del(t):
    base = [('write', 'a', 0, 1, OK, True), ('del', None, 2, None, INFO, None)]
    t('info del seen', verdict(base + [('read', None, 10, 11, OK, None)]), 'ok')
    t('info del not seen', verdict(base + [('read', None, 10, 11, OK, 'a')]), 'ok')


# ---- registers: not linearizable -------------------------------------------------------

@case
def test_stale_read_fails(t):
    r = linear.check_register(ops_of([
        ('write', 'a', 0, 1, OK, True), ('write', 'b', 2, 3, OK, True),
        ('read', None, 4, 5, OK, 'a')]))
    t('stale read', r['verdict'], 'fail')
    t('stale read: the read is where it got stuck', r['stuck'].f, 'read')


@case
def test_lost_write_fails(t):
    t('lost write', verdict([('write', 'a', 0, 1, OK, True), ('read', None, 2, 3, OK, None)]),
      'fail')


@case
def test_read_of_never_written_value_fails(t):
    t('never written', verdict([('write', 'a', 0, 1, OK, True),
                                ('read', None, 2, 3, OK, 'zzz')]), 'fail')


@case
def test_read_of_future_value_fails(t):
    t('future read', verdict([('read', None, 0, 1, OK, 'a'), ('write', 'a', 2, 3, OK, True)]),
      'fail')


@case
def test_flip_flop_fails(t):
    # two reads after both writes ended disagree, then go back: a, b, a
    t('a b a', verdict([('write', 'a', 0, 5, OK, True), ('write', 'b', 0, 5, OK, True),
                        ('read', None, 6, 7, OK, 'a'), ('read', None, 8, 9, OK, 'b'),
                        ('read', None, 10, 11, OK, 'a')]), 'fail')


@case
def test_wrong_del_count_fails(t):
    t('DEL said 0 on an existing key', verdict([('write', 'a', 0, 1, OK, True),
                                                ('del', None, 2, 3, OK, 0)]), 'fail')
    t('two DELs both said 1', verdict([('write', 'a', 0, 1, OK, True),
                                       ('del', None, 2, 3, OK, 1), ('del', None, 4, 5, OK, 1)]),
      'fail')


@case
def test_budget_gives_unknown_not_ok(t):
    rows = [('write', 'v%d' % i, 0, 10, OK, True) for i in range(6)]
    rows.append(('read', None, 11, 12, OK, 'v0'))
    t('tiny budget', verdict(rows, budget=5), 'unknown')
    t('the same with the default budget', verdict(rows), 'ok')


@case
def test_many_concurrent_indeterminate_writes_stay_tractable(t):
    # 14 info writes all concurrent, then a read of one of them: memoisation keeps
    # this far below the budget (without it: 14! orders)
    rows = [('write', 'v%d' % i, i, None, INFO, None) for i in range(14)]
    rows += [('read', None, 100, 101, OK, 'v7'), ('read', None, 102, 103, OK, 'v3')]
    r = linear.check_register(ops_of(rows), budget=200000)
    t('14 info writes then two reads', r['verdict'], 'ok')


@case
def test_random_sequential_histories_pass_and_mutated_fail(t):
    rng = random.Random(12)
    bad = 0
    for trial in range(40):
        rows, state, now = [], None, 0
        for i in range(30):
            f = rng.choice(['read', 'read', 'write', 'del'])
            if f == 'write':
                state = 'v%d' % i
                rows.append(('write', state, now, now + 1, OK, True))
            elif f == 'del':
                rows.append(('del', None, now, now + 1, OK, 0 if state is None else 1))
                state = None
            else:
                rows.append(('read', None, now, now + 1, OK, state))
            now += 2
        if verdict(rows) != 'ok':
            bad += 1
        reads = [i for i, r in enumerate(rows) if r[0] == 'read']
        if reads:
            i = rng.choice(reads)
            f, v, a, b, typ, res = rows[i]
            rows[i] = (f, v, a, b, typ, 'never-written')
            if verdict(rows) != 'fail':
                bad += 1
    t('40 random sequential histories pass, each with one corrupted read fails', bad, 0)


# ---- counters --------------------------------------------------------------------------

def kinds(anoms):
    return sorted({a['kind'] for a in anoms})


@case
def test_counter_clean(t):
    ops = ops_of([('incr', None, 0, 2, OK, 1), ('incr', None, 1, 3, OK, 2),
                  ('incr', None, 4, None, INFO, None), ('final', None, 10, 11, OK, 3)])
    t('clean counter (info applied)', kinds(checks.check_counters(ops)), [])
    ops[3].result = 2
    t('clean counter (info not applied)', kinds(checks.check_counters(ops)), [])


@case
def test_counter_anomalies(t):
    dup = ops_of([('incr', None, 0, 1, OK, 1), ('incr', None, 0, 1, OK, 1),
                  ('final', None, 5, 6, OK, 2)])
    t('duplicate answers', kinds(checks.check_counters(dup)), ['counter-duplicate'])
    lost = ops_of([('incr', None, 0, 1, OK, 1), ('incr', None, 2, 3, OK, 2),
                   ('final', None, 5, 6, OK, 1)])
    t('lost increment', kinds(checks.check_counters(lost)), ['counter-lost'])
    over = ops_of([('incr', None, 0, 1, OK, 1), ('final', None, 5, 6, OK, 2)])
    t('double-applied increment', kinds(checks.check_counters(over)), ['counter-overcount'])
    stale = ops_of([('incr', None, 0, 1, OK, 2), ('incr', None, 2, 3, OK, 1),
                    ('final', None, 5, 6, OK, 2)])
    t('stale read-modify-write', kinds(checks.check_counters(stale)), ['counter-nonmonotonic'])
    nofinal = ops_of([('incr', None, 0, 1, OK, 1), ('final', None, 5, 6, FAIL, None)])
    t('no final read', kinds(checks.check_counters(nofinal)), ['counter-unchecked'])


# ---- locks -----------------------------------------------------------------------------

def lock_ops(rows):
    """rows: (f, token, invoke ms, complete ms, type, result)"""
    return ops_of(rows, key='L')


@case
def test_lock_clean_handover(t):
    ops = lock_ops([('acquire', 'A', 0, 1, OK, True), ('get', 'A', 50, 51, OK, 'A'),
                    ('release', 'A', 52, 53, OK, 1), ('acquire', 'B', 40, 41, OK, None),
                    ('acquire', 'B', 54, 55, OK, True), ('get', 'B', 90, 91, OK, 'B'),
                    ('release', 'B', 92, 93, OK, 1)])
    t('handover', kinds(checks.check_locks(ops, lease_ms=1000, excuse_ms=100)), [])


@case
def test_lock_after_lease_is_fine(t):
    ops = lock_ops([('acquire', 'A', 0, 1, OK, True), ('acquire', 'B', 1001, 1002, OK, True)])
    t('B after A expired', kinds(checks.check_locks(ops, lease_ms=1000, excuse_ms=100)), [])


@case
def test_lock_overlap_found(t):
    ops = lock_ops([('acquire', 'A', 0, 1, OK, True), ('acquire', 'B', 10, 11, OK, True),
                    ('get', 'A', 50, 51, OK, 'B')])
    got = kinds(checks.check_locks(ops, lease_ms=1000, excuse_ms=100))
    t('two holders', got, ['lock-lost-early', 'lock-overlap'])


@case
def test_lock_lost_early_found(t):
    ops = lock_ops([('acquire', 'A', 0, 1, OK, True), ('get', 'A', 50, 51, OK, None)])
    t('lease ended early', kinds(checks.check_locks(ops, lease_ms=1000, excuse_ms=100)),
      ['lock-lost-early'])


@case
def test_lock_overlap_excused_by_indeterminate_del(t):
    ops = lock_ops([('acquire', 'Z', 0, 1, OK, True), ('get', 'Z', 2, 3, OK, 'Z'),
                    ('release', 'Z', 4, None, INFO, None),
                    ('acquire', 'A', 5, 6, OK, True), ('acquire', 'B', 10, 11, OK, True)])
    t('a lost DEL explains it', kinds(checks.check_locks(ops, lease_ms=1000, excuse_ms=100)),
      ['lock-excused'])
    t('not when the DEL is older than the excuse window',
      'lock-overlap' in kinds(checks.check_locks(ops, lease_ms=1000, excuse_ms=0.001)), True)


# ---- sets ------------------------------------------------------------------------------

@case
def test_set_clean(t):
    ops = ops_of([('add', 'a', 0, 1, OK, 1), ('add', 'b', 2, None, INFO, None),
                  ('readset', None, 3, 4, OK, ['a', 'b']), ('add', 'c', 5, 6, OK, 1),
                  ('final', None, 10, 11, OK, ['a', 'c'])], key='S')
    t('clean set', kinds(checks.check_sets(ops)), [])


@case
def test_set_anomalies(t):
    ops = ops_of([('add', 'a', 0, 1, OK, 1), ('add', 'b', 2, 3, OK, 1),
                  ('readset', None, 4, 5, OK, ['a']), ('readset', None, 6, 7, OK, ['a', 'b', 'x']),
                  ('final', None, 10, 11, OK, ['b'])], key='S')
    t('lost, stale and phantom', kinds(checks.check_sets(ops)),
      ['set-lost', 'set-phantom', 'set-stale'])


# ---- histories ---------------------------------------------------------------------------

@case
def test_saved_history_replays_to_the_same_verdict(t):
    import tempfile
    from history import History
    h = History({'workload': 'registers'})
    h.ops = ops_of([('write', 'a', 0, 1, OK, True), ('write', 'b', 2, None, INFO, None),
                    ('read', None, 3, 4, OK, 'b'), ('read', None, 5, 6, OK, 'a')])
    t('before saving', linear.check_register(h.ops)['verdict'], 'fail')
    with tempfile.NamedTemporaryFile(suffix='.json') as f:
        h.save(f.name, [{'kind': 'nonlinearizable'}])
        back = History.load(f.name)
    t('after loading', linear.check_register(back.ops)['verdict'], 'fail')
    t('meta kept', back.meta, {'workload': 'registers'})
    t('every field kept', [o.to_json() for o in back.ops], [o.to_json() for o in h.ops])


@case
def test_history_types_and_counts(t):
    from history import History
    h = History()
    w = h.invoke(1, 'write', 'k', 'v', node='n')
    r = h.invoke(2, 'read', 'k')
    x = h.invoke(3, 'write', 'k', 'w')
    h.ok(w, True)
    h.fail(r, 'NOQUORUM 1 of 2')
    h.close_open()
    t('invoke order and times', w.invoke <= r.invoke <= x.invoke <= w.complete, True)
    t('an open write closes indeterminate', (x.type, x.complete), (INFO, None))
    t('counts', h.counts(), {OK: 1, FAIL: 1, INFO: 1})


def main():
    passed = failed = 0
    for fn in CASES:
        def t(what, got, want, fn=fn):
            nonlocal passed, failed
            if got == want:
                passed += 1
            else:
                failed += 1
                print('FAIL %s: %s: got %r, want %r' % (fn.__name__, what, got, want))
        try:
            fn(t)
        except Exception as e:  # noqa: BLE001 - a crashing case is one failure
            failed += 1
            print('FAIL %s: raised %r' % (fn.__name__, e))
    print('jepsen-checker: %d passed, %d failed' % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
