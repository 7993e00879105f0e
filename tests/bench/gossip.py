"""tests/bench/gossip.py KVD_BINARY: how fast 5 nodes' membership views agree (prints
numbers, asserts nothing about speed; `make bench-convergence` runs it).

Five persistent nodes (no data), node i given only node i-1 as its seed (node 1
itself), so a view reaches node 5 only by gossip from node to node. Measured, each
by polling every node's KVD NODES every 20 ms on an open connection:

  cold start  from starting all five until every node lists all five up (once);
  kill        from SIGKILL of node5 until nodes 1-4 all show it down (its links
              close: no waiting for phi);
  restart     from starting node5 again (same dir: same id and tokens, a new
              generation) until every node lists all five up;
  silence     from SIGSTOP of node5 until nodes 1-4 all show it down (its links
              stay open: phi accrual alone, phi-convict-threshold 8, heartbeats
              once a second);
  resume      from SIGCONT of node5 until every node lists all five up.

Each is repeated RUNS times (env GOSSIP_BENCH_RUNS, default 5):
the median, min and max are printed.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'cluster'))
import harness  # noqa: E402
import redis  # noqa: E402

RUNS = int(os.environ.get('GOSSIP_BENCH_RUNS', '5'))
POLL_S = 0.02
BOUND_S = 120.0


class Views:
    """One open connection per node; reconnects lazily after a restart."""

    def __init__(self, cl):
        self.cl = cl
        self.conns = {}

    def states(self, nd):
        """{addr: state} from nd's KVD NODES, or None when nd does not answer."""
        try:
            c = self.conns.get(nd.index)
            if c is None:
                c = nd.client(timeout=1.0, single_connection_client=True)
                self.conns[nd.index] = c
            view = harness.parse_nodes(c.execute_command('KVD', 'NODES'))
            return {v['addr']: v['state'] for v in view}
        except (redis.RedisError, OSError):
            self.conns.pop(nd.index, None)
            return None

    def close(self):
        for c in self.conns.values():
            c.close()


def wait_for(pred, t0):
    """Seconds from t0 until pred() holds, polled every POLL_S; None past BOUND_S."""
    while time.time() - t0 < BOUND_S:
        if pred():
            return time.time() - t0
        time.sleep(POLL_S)
    return None


def all_see(views, observers, targets, state):
    for o in observers:
        st = views.states(o)
        if st is None or any(st.get(t.addr) != state for t in targets):
            return False
    return True


def summary(label, xs):
    got = [x for x in xs if x is not None]
    if not got:
        return '%s: no run converged within %.0f s' % (label, BOUND_S)
    return ('%s: median %.3f s, min %.3f s, max %.3f s over %d runs%s'
            % (label, statistics.median(got), min(got), max(got), len(got),
               '' if len(got) == len(xs)
               else ' (%d runs past %.0f s)' % (len(xs) - len(got), BOUND_S)))


def main():
    cl = harness.Cluster(sys.argv[1], n=5, mode='persistent')
    for i, nd in enumerate(cl.nodes):
        nd.conf['cluster-seeds'] = cl.nodes[max(i - 1, 0)].addr
    views = Views(cl)
    try:
        t0 = time.time()
        for nd in cl.nodes:
            nd.start()
        cold = wait_for(lambda: all_see(views, cl.nodes, cl.nodes, 'up'), t0)
        print('gossip cold start of 5 nodes (chain of seeds): %s'
              % ('%.2f s' % cold if cold is not None else 'not within %.0f s' % BOUND_S),
              flush=True)
        n5, others = cl.nodes[4], cl.nodes[:4]
        names = ('kill', 'restart', 'silence', 'resume')
        got = {k: [] for k in names}
        everyone_up = lambda: all_see(views, cl.nodes, cl.nodes, 'up')  # noqa: E731
        n5_down = lambda: all_see(views, others, [n5], 'down')  # noqa: E731
        for run in range(RUNS):
            for name, fault, done in (('kill', n5.kill9, n5_down),
                                      ('restart', n5.start, everyone_up),
                                      ('silence', n5.sigstop, n5_down),
                                      ('resume', n5.sigcont, everyone_up)):
                time.sleep(2.0)  # a few heartbeats at the steady rate
                t0 = time.time()
                fault()
                got[name].append(wait_for(done, t0))
            print('run %d: %s' % (run + 1, ', '.join(
                '%s %s' % (k, '%.3f s' % got[k][-1] if got[k][-1] is not None else 'none')
                for k in names)), flush=True)
        for label, k in (('SIGKILL of node5 to down on nodes 1-4', 'kill'),
                         ('start of node5 to all five up on all five', 'restart'),
                         ('SIGSTOP of node5 to down on nodes 1-4 (phi)', 'silence'),
                         ('SIGCONT of node5 to all five up on all five', 'resume')):
            print(summary('gossip %s: %s' % (k, label), got[k]), flush=True)
        return 0
    finally:
        views.close()
        cl.stop()


if __name__ == '__main__':
    sys.exit(main())
