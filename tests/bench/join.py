"""tests/bench/join.py KVD_BINARY: a node joining a loaded 3-node cluster: streaming
throughput and a QUORUM client's p99 before and during the join (prints numbers,
asserts nothing about speed; `make bench-convergence`).

Three persistent nodes (N=3, W=2, R=2) hold KEYS keys (env JOIN_BENCH_KEYS,
default 500,000) of VALUE bytes (REPAIR_BENCH_VALUE, 100), written at QUORUM.
A prober SETs through node1 at QUORUM, one request at a time (with 5 ms pauses),
and records each latency. After 5 s node4 starts with cluster-join yes and
streams its ranges (paced by repair-throughput-mb-per-sec: the default, 16 MB/s,
unless JOIN_BENCH_PACE says otherwise; 0 unpaced) until it gossips status=normal.
Printed: the joiner's INFO stream_* (bytes, records, ms: MB/s and keys/s), the
bytes streamed against the data set it was handed (its KVD NODES share of the
keys and values), how many keys it holds locally, and the prober's p99 in the
5 s before the start of node4 and between that start and status=normal.
The small version with assertions is tests/cluster/join_test.py.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'cluster'))
import harness  # noqa: E402
import join_test  # noqa: E402  (tests/cluster: Prober, wait_status)
import repair  # noqa: E402  (tests/bench/repair.py: write, VALUE)

KEYS = int(os.environ.get('JOIN_BENCH_KEYS', '500000'))
PACE = os.environ.get('JOIN_BENCH_PACE')


def main():
    extra = {'cluster-request-timeout': 5000}
    if PACE is not None:
        extra['repair-throughput-mb-per-sec'] = int(PACE)
    cl = harness.Cluster(sys.argv[1], n=4, mode='persistent', extra=extra)
    first, joiner = cl.nodes[:3], cl.nodes[3]
    for nd in cl.nodes:
        nd.conf['cluster-seeds'] = ','.join(o.addr for o in first)
    joiner.conf['cluster-join'] = 'yes'
    try:
        for nd in first:
            nd.start()
        ok, why = cl.wait_all_up(60, members=first)
        if not ok:
            print('3 nodes not up: %s' % why)
            return 1
        t0 = time.time()
        again = repair.write(first[0], list(range(KEYS)), 'a')
        data = sum(len('key:%d' % i) for i in range(KEYS)) + KEYS * repair.VALUE
        print('preloaded %d keys of %d bytes (%d bytes of keys and values) in %.1f s (%d writes '
              'sent again after an error)' % (KEYS, repair.VALUE, data, time.time() - t0, again),
              flush=True)
        prober = join_test.Prober(first[0]).start()
        time.sleep(5.0)
        t_start = time.time()
        joiner.start()
        ok, line = join_test.wait_status(joiner, 'normal', 1800)
        t_normal = time.time()
        time.sleep(1.0)
        prober.stop()
        if not ok:
            print('node4 did not become normal: %s\n%s' % (line, joiner.tail(10)))
            return 1
        inf = harness.info_fields(joiner)
        ms = max(1, int(inf.get('stream_ms', '0')))
        mb = int(inf.get('stream_bytes', '0')) / 1048576.0
        recs = int(inf.get('stream_records', '0'))
        share = float([v for v in cl.nodes_view(joiner) if v['addr'] == joiner.addr][0]
                      ['share'].rstrip('%')) / 100.0
        print('join of node4 (pace %s): %s ranges (%s retried), %.2f MB and %d records '
              'streamed in %.2f s: %.2f MB/s, %.0f keys/s; start to status=normal %.2f s'
              % ('unpaced' if PACE == '0' else '%s MB/s' % (PACE or '16 (default)'),
                 inf.get('stream_ranges'), inf.get('stream_retries'), mb, recs, ms / 1000.0,
                 mb * 1000.0 / ms, recs * 1000.0 / ms, t_normal - t_start), flush=True)
        print('node4 holds %d keys locally; share %.3f of the ring: %.0f keys and %.0f bytes '
              'of keys and values expected; bytes streamed / that = %.2f'
              % (harness.local_keys(joiner), share, share * KEYS, share * data,
                 mb * 1048576.0 / max(1.0, share * data)), flush=True)
        before, nb = prober.p99_ms(t_start - 5, t_start)
        during, nd = prober.p99_ms(t_start, t_normal)
        print('QUORUM SET p99 through node1: %.2f ms before (%d ops), %.2f ms during the join '
              '(%d ops): x%.2f' % (before, nb, during, nd, during / before if before else 0),
              flush=True)
        return 0
    finally:
        cl.stop()


if __name__ == '__main__':
    sys.exit(main())
