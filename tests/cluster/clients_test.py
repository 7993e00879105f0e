"""tests/cluster/clients_test.py KVD_BINARY [--asan]: real clients through every node.

A 3-node persistent cluster (N=3 W=2 R=2); redis-cli, redis-py, hiredis
(hiredis_cluster.c), ioredis, node-redis and node-redis 4 (clients.js) each SET, GET,
INCR, DEL and HSET through each node and read the results back through another node;
a redis-py pool with one connection per node takes turns on one counter and a
MULTI/EXEC through each node; the cluster also answers as one standalone Redis
(redis_mode:standalone, cluster_enabled:0, no MOVED). Ends with "N passed, M failed";
SKIPs (0 counted) while the binary has no cluster.
"""
import os
import subprocess
import sys
import tempfile

import redis

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NODE_MODULES = os.path.join(ROOT, 'redis-compat-tests', 'node_modules')


def redis_cli(node, *args):
    r = subprocess.run(['redis-cli', '-h', node.ip, '-p', str(node.port)] + list(args),
                       capture_output=True, text=True, timeout=20)
    return r.stdout.strip()


def test_redis_cli(cl, res):
    n = len(cl.nodes)
    for i, nd in enumerate(cl.nodes):
        nxt = cl.nodes[(i + 1) % n]
        k = 'cli:%d' % i
        res.eq('redis-cli SET via %s' % nd.addr, redis_cli(nd, 'SET', k + ':s', 'v%d' % i), 'OK')
        res.eq('redis-cli GET via %s' % nd.addr, redis_cli(nd, 'GET', k + ':s'), 'v%d' % i)
        res.eq('redis-cli GET via next node %s' % nxt.addr, redis_cli(nxt, 'GET', k + ':s'), 'v%d' % i)
        res.eq('redis-cli INCR', redis_cli(nd, 'INCR', k + ':n'), '1')
        res.eq('redis-cli INCR via next node', redis_cli(nxt, 'INCR', k + ':n'), '2')
        res.eq('redis-cli HSET', redis_cli(nd, 'HSET', k + ':h', 'f', 'x', 'g', 'y'), '2')
        res.eq('redis-cli HGETALL via next node', redis_cli(nxt, 'HGETALL', k + ':h'), 'f\nx\ng\ny')
        res.eq('redis-cli DEL', redis_cli(nd, 'DEL', k + ':s', k + ':n', k + ':h'), '3')
        res.eq('redis-cli EXISTS via next node', redis_cli(nxt, 'EXISTS', k + ':s', k + ':n', k + ':h'), '0')
    info = redis_cli(cl.nodes[0], 'INFO', 'server')
    res.check('INFO says redis_mode:standalone', 'redis_mode:standalone' in info, info[:200])
    cinfo = redis_cli(cl.nodes[0], 'INFO', 'cluster')
    res.check('INFO cluster says cluster_enabled:0', 'cluster_enabled:0' in cinfo, cinfo[:200])


def test_redis_py(cl, res):
    conns = [nd.client() for nd in cl.nodes]
    n = len(conns)
    try:
        for i, c in enumerate(conns):
            nxt = conns[(i + 1) % n]
            k = 'py:%d' % i
            res.eq('redis-py SET via node%d' % (i + 1), c.set(k + ':s', b'v\x00%d' % i), True)
            res.eq('redis-py GET binary via node%d' % (i + 1), c.get(k + ':s'), b'v\x00%d' % i)
            res.eq('redis-py GET via next node', nxt.get(k + ':s'), b'v\x00%d' % i)
            res.eq('redis-py INCR', c.incr(k + ':n'), 1)
            res.eq('redis-py INCRBY via next node', nxt.incrby(k + ':n', 5), 6)
            res.eq('redis-py HSET', c.hset(k + ':h', mapping={'a': '1', 'b': '2'}), 2)
            res.eq('redis-py HGETALL via next node', nxt.hgetall(k + ':h'), {b'a': b'1', b'b': b'2'})
            res.eq('redis-py DEL', c.delete(k + ':s', k + ':n', k + ':h'), 3)
            res.eq('redis-py EXISTS via next node', nxt.exists(k + ':s', k + ':n', k + ':h'), 0)
            # MULTI/EXEC through this node
            p = c.pipeline(transaction=True)
            p.set(k + ':t', 'a').incr(k + ':tn').get(k + ':t')
            res.eq('redis-py MULTI/EXEC via node%d' % (i + 1), p.execute(), [True, 1, b'a'])
        # a pool whose connections go to different nodes, taking turns
        rounds = 60
        for j in range(rounds):
            conns[j % n].incr('py:pool')
            if j % 3 == 0:
                conns[(j + 1) % n].hincrby('py:poolh', 'f', 1)
        for i, c in enumerate(conns):
            res.eq('pool counter read via node%d' % (i + 1), c.get('py:pool'), str(rounds).encode())
            res.eq('pool hash field via node%d' % (i + 1), c.hget('py:poolh', 'f'), b'20')
        # MGET/MSET split over replica sets and merged
        kv = {'py:m:%d' % j: 'v%d' % j for j in range(40)}
        res.eq('MSET of 40 keys via node1', conns[0].mset(kv), True)
        got = conns[-1].mget(list(kv))
        res.eq('MGET of them via the last node, in order', got, [v.encode() for v in kv.values()])
        try:
            conns[1].get('no-moved-%d' % 12345)
            res.check('a GET of any key never answers MOVED', True)
        except redis.ResponseError as e:
            res.check('a GET of any key never answers MOVED', False, str(e))
    finally:
        for c in conns:
            c.close()


def test_hiredis(cl, res, work):
    exe = os.path.join(work, 'hiredis_cluster')
    r = subprocess.run(['gcc', '-std=c11', '-D_GNU_SOURCE', '-O1', '-g', '-Wall', '-Wextra', '-Werror',
                        os.path.join(HERE, 'hiredis_cluster.c'), '-lhiredis', '-o', exe],
                       capture_output=True, text=True, timeout=120)
    if not res.check('hiredis_cluster.c compiles', r.returncode == 0, r.stderr[-500:]):
        return
    harness.run_counted(res, 'hiredis', [exe, 'hi'] + [nd.addr for nd in cl.nodes])


def run(cl, res):
    test_redis_cli(cl, res)
    test_redis_py(cl, res)
    with tempfile.TemporaryDirectory(prefix='kvd-cl-clients.') as work:
        test_hiredis(cl, res, work)
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    for lib in ('ioredis', 'redis', 'redis4'):
        harness.run_counted(res, lib, ['node', os.path.join(HERE, 'clients.js'), lib, 'js-' + lib]
                            + [nd.addr for nd in cl.nodes], env=env)


def main():
    return harness.scenario(sys.argv[1], 'clients', run, n=3, mode='persistent')


if __name__ == '__main__':
    sys.exit(main())
