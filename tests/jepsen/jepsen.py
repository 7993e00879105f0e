"""tests/jepsen/jepsen.py: the Jepsen-style suite against a real kvd cluster.

  jepsen.py KVD_BINARY [options]     run workloads under faults and check them
  jepsen.py check HISTORY.json       check a saved history again (replay)

For each workload (--workload, comma-separated; workloads.py), on one cluster of
--nodes nodes on 127.0.0.2, ... (tests/cluster/harness.py): --clients processes
through random nodes at --level for --time seconds while the nemesis (--nemesis,
nemesis.py) injects one fault at a time; then every fault is healed, the cluster
settles (all members up, --settle seconds), the final reads are made and the
history is checked. Prints one summary line per workload:

  jepsen registers-1w [kill,pause]: ops 4210 ok 3977 failed 41 indeterminate 192; anomalies none

and on any anomaly writes the history (with the nemesis events) to --out and names
the file. A kind named in --expect-anomalies is reported (EXPECTED lines, history
kept) without failing the run; every other kind fails it, and so does
'linearizability-unknown' (the checker's budget ran out: not a pass) unless
expected. Ends with "N passed, M failed" (one case per workload, plus no node
died and every node exits 0); exits non-zero when anything failed.
"""
import argparse
import os
import random
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'cluster'))

import harness  # noqa: E402
import linear  # noqa: E402
import nemesis  # noqa: E402
import workloads  # noqa: E402
from history import History  # noqa: E402

# cases a checker could not judge, reported but never failing a run (checks.py)
NOT_ANOMALIES = {'lock-excused'}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('binary')
    ap.add_argument('--workload', default='registers-1w,counters,locks,sets')
    ap.add_argument('--nodes', type=int, default=3)
    ap.add_argument('--mode', default='persistent', choices=('persistent', 'cache'))
    ap.add_argument('--level', default='QUORUM', help='KVD CONSISTENCY level of the clients')
    ap.add_argument('--clients', type=int, default=6)
    ap.add_argument('--keys', type=int, default=4, help='keys per workload')
    ap.add_argument('--time', type=float, default=20.0, help='seconds of load per workload')
    ap.add_argument('--rate', type=float, default=1000.0,
                    help='client steps per second, all processes together')
    ap.add_argument('--max-ops', type=int, default=200000, help='operations per workload')
    ap.add_argument('--nemesis', default='kill,pause,partition,skew',
                    help='fault kinds (nemesis.py), or none')
    ap.add_argument('--fault-secs', type=float, default=4.0)
    ap.add_argument('--quiet-secs', type=float, default=2.0)
    ap.add_argument('--settle', type=float, default=2.0)
    ap.add_argument('--timeout', type=float, default=1.0, help='client socket timeout (s)')
    ap.add_argument('--ops-per-key', type=int, default=500,
                    help='registers: operations per key before moving to new keys')
    ap.add_argument('--del-ratio', type=float, default=0.1,
                    help='registers: the share of writes that are DEL')
    ap.add_argument('--lease-ms', type=int, default=3000)
    ap.add_argument('--hold-ms', type=int, default=150)
    ap.add_argument('--budget', type=int, default=linear.DEFAULT_BUDGET,
                    help='linearizability search steps per key')
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('--out', default=None, help='folder for history files (default: a temp dir)')
    ap.add_argument('--expect-anomalies', default='',
                    help='anomaly kinds reported without failing the run (comma-separated)')
    ap.add_argument('--asan', action='store_true', help='(accepted for run.sh compatibility)')
    a = ap.parse_args(argv)
    a.workloads = [w for w in a.workload.split(',') if w]
    a.kinds = [] if a.nemesis == 'none' else [k for k in a.nemesis.split(',') if k]
    for k in a.kinds:
        if k not in nemesis.KINDS:
            ap.error('unknown fault kind %r (one of %s)' % (k, ', '.join(nemesis.KINDS)))
    for w in a.workloads:
        if w not in workloads.NAMES:
            ap.error('unknown workload %r (one of %s)' % (w, ', '.join(workloads.NAMES)))
    a.expect = set(k for k in a.expect_anomalies.split(',') if k)
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1 << 30)
    return a


def summarize(name, kinds, hist, anomalies):
    c = hist.counts()
    by = {}
    for a in anomalies:
        by[a['kind']] = by.get(a['kind'], 0) + 1
    what = ', '.join('%s=%d' % kv for kv in sorted(by.items())) or 'none'
    print('jepsen %s [%s]: ops %d ok %d failed %d indeterminate %d; anomalies %s' % (
        name, ','.join(kinds) or 'no faults', len(hist.ops), c['ok'], c['fail'], c['info'],
        what), flush=True)


def report(args, res, wl, hist, anomalies):
    """Prints the anomalies, keeps the history when there are any, counts one case."""
    unexpected = [a for a in anomalies if a['kind'] not in args.expect | NOT_ANOMALIES]
    for a in anomalies[:20]:
        tag = ('NOTE' if a['kind'] in NOT_ANOMALIES else
               'EXPECTED' if a['kind'] in args.expect else 'ANOMALY')
        print('%s %s %s: %s (ops %s)' % (tag, a['kind'], a['key'], a['detail'], a['ops'][:8]))
    if len(anomalies) > 20:
        print('... %d more anomalies' % (len(anomalies) - 20))
    if anomalies:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, 'history-%s-%d.json' % (wl.name, args.seed))
        hist.save(path, anomalies)
        print('history kept for replay: %s (jepsen.py check %s)' % (path, path), flush=True)
    res.check('%s: no unexpected anomaly' % wl.name, not unexpected,
              sorted({a['kind'] for a in unexpected}))


def run_workload(args, cl, res, name):
    prefix = 'j%d-%s' % (args.seed, name)
    wl = workloads.make(name, prefix, args)
    hist = History({'workload': name, 'seed': args.seed, 'nodes': args.nodes, 'mode': args.mode,
                    'level': args.level, 'lease_ms': args.lease_ms, 'del_ratio': args.del_ratio, 'keys': args.keys,
                    'clients': args.clients, 'nemesis': args.kinds})
    rng = random.Random('%d-%s-nemesis' % (args.seed, name))
    nem = nemesis.Nemesis(cl, args.kinds, rng, hist, args.fault_secs, args.quiet_secs)
    clients = workloads.Clients(hist, cl.nodes, args.level, args.timeout, '%d-%s' % (args.seed, name))
    harness.log('%s: %d clients for %.0fs, faults %s' % (name, args.clients, args.time,
                                                         ','.join(nem.kinds) or 'none'))
    nem.start()
    try:
        stopped = workloads.run_processes(clients, wl, args.clients, args.time, args.max_ops,
                                             args.rate)
    finally:
        nem.finish()
    res.check('%s: every client process stopped in time' % name, stopped)
    ok, why = cl.wait_all_up(90)
    res.check('%s: after healing every node sees every member up' % name, ok, why)
    time.sleep(args.settle)
    final = workloads.Clients(hist, cl.nodes, args.level, 5.0, '%d-%s-final' % (args.seed, name))
    wl.final(final)
    hist.meta['nemesis_events'] = nem.events
    anomalies = wl.check(hist.ops, args.budget)
    summarize(name, nem.kinds, hist, anomalies)
    report(args, res, wl, hist, anomalies)


def run(args):
    name = 'jepsen'
    skip = harness.node_cluster_or_skip(args.binary, name)
    if skip is not None:
        return skip
    args.out = args.out or tempfile.mkdtemp(prefix='kvd-jepsen.')
    print('jepsen: seed %d, %d nodes (%s), level %s, workloads %s, faults %s' % (
        args.seed, args.nodes, args.mode, args.level, ','.join(args.workloads),
        ','.join(args.kinds) or 'none'), flush=True)

    def body(cl, res):
        for w in args.workloads:
            run_workload(args, cl, res, w)

    extra = {'cluster-request-timeout': 500}
    return harness.scenario(args.binary, name, body, n=args.nodes, mode=args.mode, extra=extra)


def replay(path, budget, expect):
    """Checks a saved history again; prints its summary and anomalies."""
    hist = History.load(path)
    meta = hist.meta
    args = argparse.Namespace(keys=meta.get('keys', 4), clients=meta.get('clients', 1),
                              lease_ms=meta.get('lease_ms', 3000), hold_ms=150, timeout=1.0,
                              del_ratio=0.1, ops_per_key=500)
    wl = workloads.make(meta['workload'], 'replay', args)
    anomalies = wl.check(hist.ops, budget)
    summarize(meta['workload'], meta.get('nemesis', []), hist, anomalies)
    for ev in meta.get('nemesis_events', []):
        print('  nemesis at %7.3fs: %s' % tuple(ev))
    for a in anomalies:
        print('%s %s %s: %s' % ('EXPECTED' if a['kind'] in expect else 'ANOMALY', a['kind'],
                                a['key'], a['detail']))
        shown = set(a['ops'][:16])
        for op in sorted((op for op in hist.ops if op.id in shown), key=lambda op: op.invoke):
            print('    %r %s' % (op, op.node))
    bad = [a for a in anomalies if a['kind'] not in expect | NOT_ANOMALIES]
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 2 and argv[0] == 'check':
        ap = argparse.ArgumentParser(prog='jepsen.py check')
        ap.add_argument('history')
        ap.add_argument('--budget', type=int, default=linear.DEFAULT_BUDGET)
        ap.add_argument('--expect-anomalies', default='')
        a = ap.parse_args(argv[1:])
        return replay(a.history, a.budget, set(a.expect_anomalies.split(',')) - {''})
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
