#!/usr/bin/python3
"""redis-compat-tests/persist_loading.py: while a node replays a large log it answers
-LOADING and INFO says loading:1; then it serves everything. Prints the replay time.

Writes --keys small keys (1M; SET with 16-byte values, pipelined), SIGKILLs the
node so the log is not folded into tables by a clean shutdown, starts it again on
the same dir and at once, from the moment the port accepts connections, sends PING,
GET and INFO persistence in a loop:
  - some replies are `-LOADING Redis is loading the dataset in memory`;
  - INFO answered meanwhile says loading:1;
  - then PING answers PONG, INFO says loading:0, DBSIZE is --keys and sampled keys
    hold their values.
Prints: spawn to first accepted connection, to first PONG (the replay), and the
number of -LOADING replies seen.

Usage: persist_loading.py --server BIN [--keys 1000000] [--fsync everysec]
Ends with "N passed, M failed".
"""
import argparse
import random
import sys
import time

from persist_lib import PServer, Workdir, check_clean_stop, pipe_raw
from respclient import Conn, Harness

LOADING_MSG = b'LOADING Redis is loading the dataset in memory'


def load(c, n, batch=5000):
    bad = 0
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        payload = b''.join(b'*3\r\n$3\r\nSET\r\n$%d\r\nld:%d\r\n$16\r\n%016d\r\n'
                           % (len(b'ld:%d' % i), i, i) for i in range(lo, hi))
        b, _ = pipe_raw(c, payload, hi - lo)
        bad += b
    return bad


def probe(srv, timeout):
    """From spawn, connects as soon as possible and sends PING/GET/INFO until PONG.
    Returns a dict of what was seen."""
    seen = {'loading_replies': 0, 'other_errors': [], 'info_loading': [],
            't_connect': None, 't_ready': None}
    t0 = srv.spawned_at
    deadline = time.time() + timeout
    c = None
    while time.time() < deadline:
        if not srv.alive():
            raise RuntimeError('server exited while loading:\n%s' %
                               srv.tail().decode(errors='replace'))
        if c is None:
            try:
                c = Conn(srv.port, timeout=30)
                if seen['t_connect'] is None:
                    seen['t_connect'] = time.time() - t0
            except OSError:
                time.sleep(0.002)
                continue
        try:
            reps = c.pipeline([['PING'], ['GET', 'ld:0'], ['INFO', 'persistence']])
        except (OSError, EOFError):
            c.close()
            c = None
            continue
        ping = reps[0]
        for r in reps[:2]:
            if r[0] == 'error':
                if r[1].startswith(b'LOADING'):
                    seen['loading_replies'] += 1
                    seen['loading_msg'] = r[1]
                elif len(seen['other_errors']) < 5:
                    seen['other_errors'].append(r)
        if reps[2][0] == 'bulk':
            for line in reps[2][1].split(b'\r\n'):
                if line.startswith(b'loading:'):
                    seen['info_loading'].append(line[8:].decode())
        if ping == ('simple', b'PONG'):
            seen['t_ready'] = time.time() - t0
            seen['after_ready'] = reps
            break
    if c:
        c.close()
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', required=True)
    ap.add_argument('--keys', type=int, default=1000000)
    ap.add_argument('--fsync', default='everysec')
    a = ap.parse_args()
    h = Harness('persist_loading')
    wd = Workdir('loading')
    srv = PServer(a.server, wd.sub('data'), fsync=a.fsync, name='loading')
    t0 = time.time()
    try:
        srv.start()
        c = srv.conn(timeout=120)
        tl = time.time()
        bad = load(c, a.keys)
        tl = time.time() - tl
        h.check('%d SETs all +OK' % a.keys, bad == 0, '%d not OK' % bad)
        print('wrote %d keys in %.1f s (%.0f/s)' % (a.keys, tl, a.keys / tl), flush=True)
        c.close()
        time.sleep(1.2)  # everysec: the log is on disk, not only written
        srv.kill9()
        srv.spawn()
        seen = probe(srv, timeout=300)
        print('restart: first connection accepted %.3f s after spawn, ready (PONG) after '
              '%.3f s; %d -LOADING replies; INFO loading values seen: %s'
              % (seen['t_connect'] or -1, seen['t_ready'] or -1, seen['loading_replies'],
                 sorted(set(seen['info_loading']))), flush=True)
        if seen['t_ready'] is not None and seen['t_connect'] is not None:
            print('replay time: %.3f s for %d writes' % (seen['t_ready'] - seen['t_connect'] if
                                                         seen['loading_replies'] else
                                                         seen['t_ready'], a.keys))
        h.check('ready within 300 s', seen['t_ready'] is not None)
        h.check('some replies are -LOADING while the log replays', seen['loading_replies'] > 0,
                'none: first connection accepted %.3f s after spawn, PONG at %.3f s'
                % (seen['t_connect'] or -1, seen['t_ready'] or -1))
        if seen['loading_replies']:
            h.eq('the -LOADING message is Redis\'s', seen.get('loading_msg'), LOADING_MSG)
            h.check('INFO says loading:1 during the replay', '1' in seen['info_loading'],
                    seen['info_loading'][:5])
        h.check('no other error while loading', not seen['other_errors'], seen['other_errors'])
        c = srv.conn(timeout=60)
        reps = c.pipeline([['INFO', 'persistence'], ['DBSIZE']])
        h.check('INFO says loading:0 once ready', b'\r\nloading:0\r\n' in reps[0][1]
                if reps[0][0] == 'bulk' else False)
        h.eq('DBSIZE after the replay', reps[1], ('int', a.keys))
        rng = random.Random(5)
        ids = [0, a.keys - 1] + [rng.randrange(a.keys) for _ in range(2000)]
        got = c.pipeline([['GET', 'ld:%d' % i] for i in ids])
        wrong = [i for i, r in zip(ids, got) if r != ('bulk', b'%016d' % i)]
        h.check('2002 sampled keys after the replay', not wrong, '%d wrong' % len(wrong))
        c.close()
        check_clean_stop(h, srv)
    except Exception as e:  # noqa: BLE001
        h.check('loading test ran to the end', False, '%s: %s' % (type(e).__name__, e))
    finally:
        srv.kill9()
        wd.close()
    print('persist_loading: %.1f s' % (time.time() - t0))
    return h.summary()


if __name__ == '__main__':
    sys.exit(main())
