#!/usr/bin/python3
"""tests/cluster/compat3.py KVD_BINARY [--mode cache|persistent] [--asan]: the
`compat-cluster3` suite of tests/run-all.sh.

Every real-client suite of redis-compat-tests/run.sh (redis-cli, hiredis, redis-py,
ioredis, node-redis, node-redis 4) against a 3-node kvd cluster (N=3 W=2 R=2,
harness.Cluster on 127.0.0.2-.4):
  1. single: every connection to node 1 (COMPAT_SERVER);
  2. pool:   each new connection to the next node in turn (COMPAT_POOL of the three);
  3. differential: differential.py through node 1 (--kvd-addr) beside a fresh
     redis-server, on a second cluster started with the default `databases` (the
     sequence compares CONFIG GET databases).
run.sh probes what the cluster refuses (keyless commands, WATCH: README "Cluster
mode") and the suites skip those checks with the reason; a fresh key space is then a
database of its own (COMPAT_DB_BASE: the client cluster runs with `databases 256`)
instead of FLUSHALL. After each part every node must still run; at the end every
node must exit 0 on SIGTERM with no sanitizer report. Ends with "N passed, M failed";
SKIPs (0 counted) while the binary has no cluster.
"""
import argparse
import os
import subprocess
import sys

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
COMPAT = os.path.join(ROOT, 'redis-compat-tests')
CLIENT_SUITES = 'redis-cli hiredis redis-py ioredis node-redis node-redis4'
PROBES = [['FLUSHALL'], ['FLUSHDB'], ['DBSIZE'], ['KEYS', '*'], ['SCAN', '0'], ['RANDOMKEY'],
          ['WATCH', 'probe-key']]


def refused_by(node):
    """The probe commands node refuses ("ERR X is not supported ..."), asked on its
    empty key space, as COMPAT_REFUSED's words (run.sh asks the same)."""
    out = []
    for args in PROBES:
        c = node.client(timeout=5.0, single_connection_client=True)
        try:
            c.execute_command(*args)
        except harness.redis.ResponseError as e:
            if 'not supported' in str(e):
                out.append(args[0])
        finally:
            c.close()
    return ' '.join(out)


def run_clients(cl, binary, res, part, env_extra, limit):
    env = dict(os.environ, KVD_ARGS='', COMPAT_SUITES=CLIENT_SUITES,
               COMPAT_SERVER=cl.nodes[0].addr, **env_extra)
    env.pop('COMPAT_REFUSED', None)  # run.sh probes the cluster itself
    env.pop('COMPAT_CLUSTER', None)
    harness.run_counted(res, part, ['bash', os.path.join(COMPAT, 'run.sh'), binary],
                        env=env, timeout=limit)
    harness.check_no_crash(cl, res)


def cluster_conf(asan):
    """Directives beside the harness's defaults: under ASan (~3x slower, a 1 MB
    value shipped to two replicas on a loaded machine) a peer may take longer than
    the default 500 ms before it counts as missing (NOQUORUM)."""
    return {'cluster-request-timeout': 3000} if asan else {}


def clients_part(binary, mode, res, limit, asan):
    cl = harness.Cluster(binary, n=3, mode=mode, extra=dict(cluster_conf(asan), databases=256))
    try:
        cl.start()
        harness.log('clients through node 1 (%s)' % cl.nodes[0].addr)
        run_clients(cl, binary, res, 'single', {'COMPAT_DB_BASE': '16'}, limit)
        pool = ','.join(nd.addr for nd in cl.nodes)
        harness.log('clients over a pool of the three nodes (%s)' % pool)
        # COMPAT_WATCH_OPTIMISTIC: concurrent WATCH/EXEC through different nodes may
        # both commit (README "Cluster mode"); the suites skip that one check
        run_clients(cl, binary, res, 'pool', {'COMPAT_DB_BASE': '128', 'COMPAT_POOL': pool,
                                              'COMPAT_WATCH_OPTIMISTIC': '1'}, limit)
    except Exception as e:  # noqa: BLE001 - a harness failure is one failed case
        res.check('client suites ran without exception', False, repr(e))
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)


def differential_part(binary, mode, res, asan, limit):
    cl = harness.Cluster(binary, n=3, mode=mode, extra=cluster_conf(asan))
    try:
        cl.start()
        refused = refused_by(cl.nodes[0])
        harness.log('differential through node 1 (%s); refused: %s' % (cl.nodes[0].addr, refused))
        steps, seeds = ('2000', '2') if asan else ('5000', '4')
        env = dict(os.environ, COMPAT_REFUSED=refused)
        env.pop('COMPAT_CLUSTER', None)
        harness.run_counted(res, 'differential',
                            ['/usr/bin/python3', os.path.join(COMPAT, 'differential.py'), '--kvd',
                             binary, '--kvd-addr', cl.nodes[0].addr, '--seeds', seeds,
                             '--steps', steps], env=env, timeout=limit, cwd=COMPAT)
        harness.check_no_crash(cl, res)
    except Exception as e:  # noqa: BLE001
        res.check('differential ran without exception', False, repr(e))
    finally:
        harness.check_clean_exit(cl.stop(), res, cl)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('binary')
    ap.add_argument('--mode', default='cache', choices=['cache', 'persistent'])
    ap.add_argument('--asan', action='store_true')
    ap.add_argument('--parts', default='clients,differential')
    o = ap.parse_args()
    binary = os.path.abspath(o.binary)
    name = 'compat-cluster3'
    skip = harness.node_cluster_or_skip(binary, name)
    if skip is not None:
        return skip
    res = harness.Results(name)
    limit = 900 if o.asan else 400
    parts = o.parts.split(',')
    if 'clients' in parts:
        clients_part(binary, o.mode, res, limit, o.asan)
    if 'differential' in parts:
        differential_part(binary, o.mode, res, o.asan, limit)
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
