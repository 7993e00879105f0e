"""tests/cluster/resume_test.py KVD_BINARY [--asan]: a join resumed after the joiner
is killed mid-stream (persistent mode).

Three nodes (N=3, W=2, R=2) hold a preload large enough that a fourth node,
joining with stream-throughput-mb-per-sec 1, streams for several seconds, while
QUORUM writers run throughout. Once the joiner has streamed some of its ranges
(INFO stream_percent 20..69) it is SIGKILLed. Then:
its dir holds node-join (the tokens and the ranges done) and no node-tokens (it
is not a member yet); restarted on a corrupted copy of node-join it refuses to
start and says why; restarted on the real file it becomes normal at the SAME
tokens (KVD RING on another node lists exactly the file's tokens for it), INFO
stream_ranges_resumed > 0, node-join is gone and node-tokens holds those tokens.
Every acknowledged write and every preloaded key reads back at QUORUM from every
node. Prints the bytes streamed before the kill and after the restart (numbers,
no timed assertion). Ends with "N passed, M failed"; SKIPs while the binary has no
cluster.
"""
import os
import shutil
import subprocess
import sys
import time

import redis

import harness
from harness import info_fields, self_line
from join_test import wait_status

PRELOAD = 40000
VALUE = 'x' * 200


def value(k):
    return 'v%d-' % k + VALUE


def preload(node, res):
    harness.preload_keys(node, PRELOAD, value)
    res.check('preloaded %d keys at QUORUM' % PRELOAD, True)


def check_preload(nodes, res):
    for nd in nodes:
        bad = harness.bad_preloaded(nd, PRELOAD, value)
        res.check('all %d preloaded keys read back from %s at QUORUM' % (PRELOAD, nd.addr),
                  not bad, bad[:5])


def join_file_tokens(path):
    """The tokens of a node-join file (its format: cluster/join.h)."""
    with open(path) as f:
        lines = f.read().split('\n')
    n = int(lines[2].split()[1])
    return [int(x) for x in lines[3:3 + n]]


def wait_mid_stream(nd, timeout):
    """Until nd streamed some ranges but not most of them; its INFO then."""
    deadline = time.time() + timeout
    inf = {}
    while time.time() < deadline:
        try:
            inf = info_fields(nd)
        except (redis.RedisError, OSError):
            inf = {}
        # a fifth of the ranges at least: the restart has something to resume
        if inf.get('join_state') == 'joining' and int(inf.get('stream_percent', '0')) >= 20:
            return int(inf.get('stream_percent', '100')) < 70, inf
        time.sleep(0.05)
    return False, inf


def check_corrupt_refused(nd, res):
    """A corrupted node-join: the node refuses to start and names the file."""
    path = os.path.join(nd.dir, 'node-join')
    shutil.copyfile(path, path + '.good')
    with open(path, 'r+b') as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 1]))
    nd.write_conf()
    with open(nd.log_path, 'ab') as logf:
        p = subprocess.Popen([nd.binary, nd.conf_path], cwd=nd.dir, stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
        rc = None
    res.check('restarted on a corrupted node-join it refuses to start (exit %s)' % rc,
              rc not in (0, None), nd.tail(5))
    res.check('it says the join file is corrupt', 'node-join' in nd.tail(10) and
              'corrupt' in nd.tail(10), nd.tail(5))
    os.replace(path + '.good', path)


def run(cl, res):
    first, nd = cl.nodes[:3], cl.nodes[3]
    seeds = ','.join(x.addr for x in first)
    for x in cl.nodes:
        x.conf['cluster-seeds'] = seeds
    nd.conf['cluster-join'] = 'yes'
    nd.conf['stream-throughput-mb-per-sec'] = 1
    for x in first:
        x.start()
    for x in first:
        res.check('node%d answers' % (x.index + 1), x.wait_ping(30))
    ok, why = cl.wait_all_up(60, members=first)
    res.check('3 nodes up', ok, why)
    preload(first[0], res)
    pool = harness.WriterPool(cl, threads=3, level='QUORUM', prefix='r', nodes=first).start()
    time.sleep(2)

    nd.start()
    res.check('node4 answers', nd.wait_ping(30))
    ok, line = wait_status(nd, 'joining', 30)
    res.check('node4 gossips status joining', ok, line)
    node_id = line.split()[0] if line else ''
    ok, inf = wait_mid_stream(nd, 60)
    res.check('node4 streamed some of its ranges, not most (%s of %s, %s%%)'
              % (inf.get('stream_ranges_done'), inf.get('stream_ranges'),
                 inf.get('stream_percent')), ok, inf)
    bytes_before = int(inf.get('stream_bytes', '0'))
    nd.kill9()
    join_path = os.path.join(nd.dir, 'node-join')
    res.check('node4 killed mid-stream keeps dir/node-join', os.path.exists(join_path))
    res.check('node4 has no dir/node-tokens yet (not a member)',
              not os.path.exists(os.path.join(nd.dir, 'node-tokens')))
    tokens = sorted(join_file_tokens(join_path)) if os.path.exists(join_path) else []
    res.check('node-join holds node4\'s tokens (%d)' % len(tokens), len(tokens) > 0)
    time.sleep(2)  # writes go on while it is down: the re-check must bring them

    check_corrupt_refused(nd, res)
    nd.start()
    res.check('node4 restarted answers', nd.wait_ping(30))
    ok, line = wait_status(nd, 'normal', 180)
    res.check('node4 becomes normal after the restart', ok, line + '\n' + nd.tail(10))
    inf = info_fields(nd)
    resumed = int(inf.get('stream_ranges_resumed', '0'))
    res.check('INFO stream_ranges_resumed > 0 (%d of %s ranges)'
              % (resumed, inf.get('stream_ranges')), resumed > 0, inf)
    deadline = time.time() + 20  # node1 hears of it by gossip
    got = harness.ring_tokens(first[0]).get(node_id, [])
    while got != tokens and time.time() < deadline:
        time.sleep(0.2)
        got = harness.ring_tokens(first[0]).get(node_id, [])
    res.check('node4 kept its tokens across the restart (KVD RING on node1: %d tokens)'
              % len(got), got == tokens and got, (got[:3], tokens[:3]))
    res.check('node-join is gone once node4 is normal', not os.path.exists(join_path))
    with open(os.path.join(nd.dir, 'node-tokens')) as f:
        kept = sorted(int(x) for x in f.read().split('\n')[1:] if x)
    res.check('node-tokens holds the same tokens', kept == tokens, kept[:3])
    print('MEASURED resume: %d bytes streamed before the kill; after the restart %s bytes, '
          '%s records, %s ranges of %s done before it (re-checked)'
          % (bytes_before, inf.get('stream_bytes'), inf.get('stream_records'), resumed,
             inf.get('stream_ranges')))
    ok, why = cl.wait_all_up(30)
    res.check('4 nodes up and listed everywhere', ok, why)
    res.check('writers stop', pool.stop())
    harness.check_acked(cl, pool, res)
    check_preload(cl.nodes, res)


def main():
    return harness.scenario(sys.argv[1], 'resume', run, n=4, start=False)


if __name__ == '__main__':
    sys.exit(main())
