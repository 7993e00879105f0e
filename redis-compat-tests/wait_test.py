#!/usr/bin/python3
"""redis-compat-tests/wait_test.py: a command can wait (server/cmd/pipeline.c).

kvd's DEBUG SET-COMMAND-DELAY <ms> [probability] [client-id] makes commands wait
before they run (the step where the cluster will fetch keys). This suite starts kvd
(three ways: --mode cache; --mode persistent; --mode persistent --appendfsync
always, where the output holding also runs through the client layer) and one
redis-server, each on a free loopback port with its own dir, stopped by PID, and
checks for each kvd:
  - pipelines: several clients at once each send 1,000 random commands in one
    pipeline (strings, hashes, MULTI/EXEC/DISCARD, WATCH, CLIENT REPLY OFF/ON/SKIP,
    errors) on their own keys; kvd's clients wait at random (a per-client delay
    and probability), one client never waits. Every client's replies must equal,
    in order, redis-server's for the same input;
  - a client without a delay is answered while another client's command waits;
  - MULTI: queued commands answer +QUEUED at once; EXEC waits as a whole; a key
    written by another client while EXEC waits fails the WATCH;
  - CLIENT REPLY SKIP applies to the waiting command; QUIT answers +OK after the
    earlier replies, then closes (compared with redis-server);
  - MONITOR shows a command when it runs, not when it arrives; the slow log
    measures the run, not the wait;
  - CLIENT KILL of a waiting client, a disconnect while waiting, and the
    output-buffer limit: the connection is closed, the command never runs (killed,
    disconnected), the server keeps answering; `timeout` spares a waiting client
    (as Redis spares blocked ones; CLIENT LIST flag b) and closes it once it is
    idle after its reply;
  - appendfsync always with DEBUG ENGINE-FAULT fail-sync / fail-write: every
    write of a pipeline with waits answers -MISCONF (held, then rewritten),
    every other reply keeps its place;
  - SHUTDOWN while a command waits: the server exits with status 0.
With --asan the pipelines are shorter and the server logs are checked for
sanitizer reports. Ends with "N passed, M failed".

Usage: wait_test.py --kvd BIN [--redis redis-server] [--asan]
"""
import argparse
import os
import random
import select
import socket
import sys
import threading
import time

from respclient import Conn, Harness, encode
from serverctl import Server

SENTINEL = b'wait-test-end'


def gen_commands(rng, prefix, n):
    """n random commands (MULTI blocks count as several) on keys of prefix; every
    reply depends only on this client's own commands."""
    ks = [prefix + s for s in ('a', 'b', 'n', 'h')]
    vals = ['', 'v', '1', '42', 'abc', '-7', 'x' * 40, '3.5']
    out = []

    def simple():
        k = rng.choice(ks)
        v = rng.choice(vals)
        f = rng.choice(['f1', 'f2', 'f3'])
        return rng.choice([
            ['SET', k, v], ['SET', k, v, 'NX'], ['SET', k, v, 'XX'], ['SET', k, v, 'GET'],
            ['GET', k], ['INCR', ks[2]], ['INCRBY', ks[2], rng.choice(['5', '-3', 'x'])],
            ['DECR', k], ['APPEND', k, v], ['DEL', k], ['EXISTS', ks[0], ks[1]],
            ['HSET', ks[3], f, v], ['HGET', ks[3], f], ['HDEL', ks[3], f], ['HLEN', ks[3]],
            ['HINCRBY', ks[3], f, '2'], ['STRLEN', k], ['GETDEL', k], ['TYPE', k],
            ['MSET', ks[0], v, ks[1], rng.choice(vals)], ['MGET', ks[0], ks[1], ks[2]],
            ['EXPIRE', k, '100000'], ['PERSIST', k], ['PING'], ['ECHO', v],
            ['GETRANGE', k, '0', '3'], ['SETRANGE', k, '2', v], ['HGET', k, f],
            ['GET'], ['NOSUCHCOMMAND', k], ['INCRBYFLOAT', ks[2], '1.5'],
        ])

    while len(out) < n:
        r = rng.random()
        if r < 0.07:
            out.append(['MULTI'])
            for _ in range(rng.randint(0, 4)):
                out.append(simple())
            out.append(['EXEC'] if rng.random() < 0.85 else ['DISCARD'])
        elif r < 0.10:
            out.append(['WATCH', rng.choice(ks)])
            if rng.random() < 0.5:
                out.append(['UNWATCH'])
        elif r < 0.13:
            out.append(['CLIENT', 'REPLY', 'SKIP'])
            out.append(simple())
        elif r < 0.15:
            out.append(['CLIENT', 'REPLY', 'OFF'])
            for _ in range(rng.randint(1, 3)):
                out.append(simple())
            out.append(['CLIENT', 'REPLY', 'ON'])
        else:
            out.append(simple())
    return out


def run_pipeline(port, cmds, setup=None, result=None, idx=0):
    """Sends cmds in one pipeline plus ECHO SENTINEL; returns every reply before the
    sentinel's. setup(conn) runs first (its replies read)."""
    c = Conn(port, timeout=60)
    try:
        if setup:
            setup(c)
        c.send_raw(b''.join(encode(x) for x in cmds) + encode(['ECHO', SENTINEL]))
        replies = []
        while True:
            r = c.read()
            if r == ('bulk', SENTINEL):
                break
            replies.append(r)
            if len(replies) > len(cmds) + 1:
                break
    finally:
        c.close()
    if result is not None:
        result[idx] = replies
    return replies


def client_id(port_conn):
    return port_conn.call('CLIENT', 'ID')[1]


def case_pipelines(h, label, kvd, redis, nclients, ncmds, seed, per_client=True):
    rng = random.Random(seed)
    sets = [gen_commands(rng, 'p%d:%d:' % (seed, i), ncmds) for i in range(nclients)]
    delays = [(rng.randint(1, 4), rng.choice([0.1, 0.3, 0.6, 1.0])) for _ in range(nclients)]
    delays[-1] = (0, 1.0)  # the last client never waits
    if not per_client:
        delays = [(-1, 1.0)] * nclients  # the server's setting
    def kvd_setup(i):
        def setup(c):
            cid = client_id(c)
            ms, p = delays[i]
            ctl = Conn(kvd.port)
            r = ctl.call('DEBUG', 'SET-COMMAND-DELAY', ms, repr(p), cid)
            ctl.close()
            assert r == ('simple', b'OK'), r
        return setup

    want = [None] * nclients
    got = [None] * nclients
    for i in range(nclients):
        run_pipeline(redis.port, sets[i], None, want, i)
    t0 = time.time()
    threads = [threading.Thread(target=run_pipeline,
                                args=(kvd.port, sets[i], kvd_setup(i) if per_client else None,
                                      got, i))
               for i in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    took = time.time() - t0
    for i in range(nclients):
        ok = got[i] == want[i]
        detail = ''
        if not ok and got[i] is not None and want[i] is not None:
            k = next((j for j in range(min(len(got[i]), len(want[i]))) if got[i][j] != want[i][j]),
                     min(len(got[i]), len(want[i])))
            detail = 'reply %d: kvd %r redis %r (%d vs %d replies)' % (
                k, got[i][k] if k < len(got[i]) else None,
                want[i][k] if k < len(want[i]) else None, len(got[i]), len(want[i]))
        h.check('%s: client %d (delay %d ms p %.1f): %d commands pipelined, replies as '
                'redis-server\'s' % (label, i, delays[i][0], delays[i][1], len(sets[i])),
                ok, detail)
    print('%s: %d clients x %d commands with waits in %.2f s' % (label, nclients, ncmds, took),
          flush=True)


def readable(conn, wait):
    if conn.buf:
        return True
    r, _, _ = select.select([conn.sock], [], [], wait)
    return bool(r)


def set_delay(port, ms, p=1.0, cid=None):
    c = Conn(port)
    args = ['DEBUG', 'SET-COMMAND-DELAY', ms, repr(p)] + ([cid] if cid is not None else [])
    r = c.call(*args)
    c.close()
    return r


def case_others_served(h, label, kvd):
    a, b = Conn(kvd.port), Conn(kvd.port)
    h.eq('%s: per-client delay set' % label, set_delay(kvd.port, 400, 1.0, client_id(a)),
         ('simple', b'OK'))
    t0 = time.time()
    a.send('SET', 'served:k', 'v')
    time.sleep(0.05)
    tb = time.time()
    rb = b.call('PING')
    b_took = time.time() - tb
    h.eq('%s: the other client is answered' % label, rb, ('simple', b'PONG'))
    h.check('%s: ... within 200 ms while the command waits 400 ms' % label, b_took < 0.2,
            '%.3f s' % b_took)
    h.check('%s: the waiting command has not answered yet' % label, not readable(a, 0))
    h.eq('%s: its key is not written yet' % label, b.call('GET', 'served:k'), ('nullbulk',))
    ra = a.read()
    a_took = time.time() - t0
    h.eq('%s: the waiting command answers' % label, ra, ('simple', b'OK'))
    h.check('%s: ... after its delay' % label, 0.35 <= a_took < 5, '%.3f s' % a_took)
    # probability 0: never waits; ms 0: off
    set_delay(kvd.port, 400, 0.0, client_id(a))
    t0 = time.time()
    h.eq('%s: probability 0 never waits' % label, a.call('PING'), ('simple', b'PONG'))
    h.check('%s: ... answered at once' % label, time.time() - t0 < 0.2)
    h.eq('%s: bad probability' % label, b.call('DEBUG', 'SET-COMMAND-DELAY', '5', '1.5')[0],
         'error')
    h.eq('%s: unknown client' % label,
         b.call('DEBUG', 'SET-COMMAND-DELAY', '5', '1', '999999'),
         ('error', b'ERR No such client'))
    h.eq('%s: negative delay for the server' % label,
         b.call('DEBUG', 'SET-COMMAND-DELAY', '-1')[0], 'error')
    a.close()
    b.close()


def case_multi(h, label, kvd, redis):
    a, b = Conn(kvd.port), Conn(kvd.port)
    set_delay(kvd.port, 300, 1.0, client_id(a))
    b.call('SET', 'mw', '0')
    h.eq('%s: WATCH (waits)' % label, a.call('WATCH', 'mw'), ('simple', b'OK'))
    h.eq('%s: MULTI (waits)' % label, a.call('MULTI'), ('simple', b'OK'))
    t0 = time.time()
    h.eq('%s: a queued command' % label, a.call('SET', 'mw', 'a'), ('simple', b'QUEUED'))
    h.check('%s: ... answers +QUEUED at once (no wait)' % label, time.time() - t0 < 0.2,
            '%.3f s' % (time.time() - t0))
    a.send('EXEC')
    time.sleep(0.1)
    h.check('%s: EXEC waits as a whole' % label, not readable(a, 0))
    b.call('SET', 'mw', 'b')  # while EXEC waits: the WATCH fails
    h.eq('%s: EXEC after a watched key changed meanwhile' % label, a.read(), ('nullarray',))
    h.eq('%s: the transaction did not run' % label, b.call('GET', 'mw'), ('bulk', b'b'))
    # the same without interference: EXEC runs its commands back to back
    r = a.pipeline([['MULTI'], ['INCR', 'mc'], ['INCR', 'mc'], ['EXEC']])
    h.eq('%s: MULTI/EXEC with waits' % label, r,
         [('simple', b'OK'), ('simple', b'QUEUED'), ('simple', b'QUEUED'),
          ('array', [('int', 1), ('int', 2)])])
    # CLIENT REPLY SKIP: applies to the command that waits
    cmds = [['CLIENT', 'REPLY', 'SKIP'], ['SET', 'sk', '1'], ['GET', 'sk'],
            ['CLIENT', 'REPLY', 'OFF'], ['SET', 'sk', '2'], ['CLIENT', 'REPLY', 'ON'], ['GET', 'sk']]
    want = run_pipeline(redis.port, cmds)
    got = run_pipeline(kvd.port, cmds, lambda c: set_delay(kvd.port, 30, 1.0, client_id(c)))
    h.eq('%s: CLIENT REPLY SKIP/OFF with waits, as redis-server' % label, got, want)
    a.close()
    b.close()


def read_until_closed(conn, limit=5.0):
    """Replies until the server closes the connection; ('closed',) ends the list."""
    out = []
    conn.sock.settimeout(limit)
    try:
        while True:
            out.append(conn.read())
    except EOFError:
        out.append(('closed',))
    except OSError as e:
        out.append(('oserror', str(e)))
    return out


def case_quit(h, label, kvd, redis):
    cmds = [['SET', 'q', '1'], ['GET', 'q'], ['QUIT'], ['GET', 'q']]
    res = []
    for srv, delayed in ((redis, False), (kvd, True)):
        c = Conn(srv.port)
        if delayed:
            set_delay(srv.port, 50, 1.0, client_id(c))
        c.send_raw(b''.join(encode(x) for x in cmds))
        res.append(read_until_closed(c))
        c.close()
    h.eq('%s: QUIT after waiting commands: +OK after the earlier replies, then closed' % label,
         res[1], res[0])


def case_monitor_slowlog(h, label, kvd):
    m, a, b = Conn(kvd.port), Conn(kvd.port), Conn(kvd.port)
    h.eq('%s: MONITOR' % label, m.call('MONITOR'), ('simple', b'OK'))
    set_delay(kvd.port, 300, 1.0, client_id(a))
    b.call('CONFIG', 'SET', 'slowlog-log-slower-than', '100000')
    b.call('SLOWLOG', 'RESET')
    a.send('SET', 'monkey', 'v')
    # lines of the DEBUG/CONFIG calls above may come first: skip them
    seen = None
    deadline = time.time() + 0.15
    while time.time() < deadline and readable(m, max(0.0, deadline - time.time())):
        line = m.read()
        if b'monkey' in line[1]:
            seen = line
    h.check('%s: MONITOR does not show the command while it waits' % label, seen is None, seen)
    h.eq('%s: the command runs' % label, a.read(), ('simple', b'OK'))
    deadline = time.time() + 3
    while seen is None and time.time() < deadline and readable(m, 1):
        line = m.read()
        if b'monkey' in line[1]:
            seen = line
    h.check('%s: MONITOR shows it when it runs' % label,
            seen is not None and b'"set" "monkey" "v"' in seen[1].lower(), seen)
    h.eq('%s: the slow log measures the run, not the 300 ms wait' % label,
         b.call('SLOWLOG', 'LEN'), ('int', 0))
    b.call('CONFIG', 'SET', 'slowlog-log-slower-than', '10000')
    m.close()
    a.close()
    b.close()


def alive(h, label, kvd, what):
    c = Conn(kvd.port)
    h.eq('%s: the server answers after %s' % (label, what), c.call('PING'), ('simple', b'PONG'))
    c.close()


def case_closing(h, label, kvd, redis):
    # CLIENT KILL of a waiting client: closed, its command never runs
    a, b = Conn(kvd.port), Conn(kvd.port)
    aid = client_id(a)
    set_delay(kvd.port, 400, 1.0, aid)
    a.send('SET', 'killed', '1')
    time.sleep(0.05)
    h.eq('%s: CLIENT KILL ID of a waiting client' % label, b.call('CLIENT', 'KILL', 'ID', aid),
         ('int', 1))
    h.check('%s: ... its connection is closed' % label, a.closed_by_peer(3))
    time.sleep(0.5)
    h.eq('%s: ... its command never ran' % label, b.call('GET', 'killed'), ('nullbulk',))
    a.close()
    alive(h, label, kvd, 'CLIENT KILL')
    # a disconnect while waiting (the ready list and the timer forget it)
    for i in range(20):
        a = Conn(kvd.port)
        set_delay(kvd.port, 100 if i % 2 else 1, 1.0, client_id(a))
        a.send_raw(b''.join(encode(['SET', 'gone', str(i)]) for _ in range(5)))
        if i % 3 == 0:
            time.sleep(0.002)
        a.close()
    time.sleep(0.4)
    alive(h, label, kvd, 'clients disconnected while waiting')
    # `timeout` spares a waiting client, as Redis spares blocked ones; the idle time
    # starts again when its command has run
    b.call('CONFIG', 'SET', 'timeout', '1')
    a = Conn(kvd.port)
    set_delay(kvd.port, 2500, 1.0, client_id(a))
    a.send('SET', 'timedout', '1')
    time.sleep(0.3)
    b = Conn(kvd.port)
    listing = b.call('CLIENT', 'LIST')
    h.check('%s: CLIENT LIST shows a waiting client with flag b' % label,
            listing[0] == 'bulk' and b'flags=b ' in listing[1], listing)
    a.sock.settimeout(6)
    try:
        got = a.read()
    except (OSError, EOFError) as e:  # closed, or no reply in time: the failure below
        got = ('no reply', str(e))
    h.eq('%s: `timeout` 1 s does not close a client whose command waits 2.5 s' % label, got,
         ('simple', b'OK'))
    h.check('%s: ... and closes it once it is idle after the reply' % label,
            a.closed_by_peer(4))
    b.close()  # idle as well meanwhile: maybe closed by the timeout too
    b = Conn(kvd.port)
    b.call('CONFIG', 'SET', 'timeout', '0')
    h.eq('%s: ... its command ran' % label, b.call('GET', 'timedout'), ('bulk', b'1'))
    a.close()
    b.close()
    # the output-buffer limit, compared with redis-server: closed on both
    res = []
    for srv, delayed in ((redis, False), (kvd, True)):
        c = Conn(srv.port)
        c.call('SET', 'big', 'x' * 300000)
        c.call('CONFIG', 'SET', 'client-output-buffer-limit', 'normal 100kb 0 0')
        if delayed:
            set_delay(srv.port, 20, 1.0, client_id(c))
        c.send_raw(b''.join(encode(['GET', 'big']) for _ in range(3)))
        closed = c.closed_by_peer(5)
        c.close()
        c = Conn(srv.port)
        c.call('CONFIG', 'SET', 'client-output-buffer-limit', 'normal 0 0 0')
        c.close()
        res.append(closed)
    h.eq('%s: output-buffer limit with waits closes the client as redis-server does' % label,
         res[1], res[0])
    alive(h, label, kvd, 'the output-buffer limit')


def case_write_fault(h, label, kvd):
    """appendfsync always: replies held for the sync, rewritten to -MISCONF when it
    fails, with waits in the pipeline: every write answers an error, never +OK,
    and every other reply keeps its place."""
    a, b = Conn(kvd.port), Conn(kvd.port)
    set_delay(kvd.port, 3, 0.5, client_id(a))
    for fault in ('fail-sync', 'fail-write'):
        h.eq('%s: DEBUG ENGINE-FAULT %s' % (label, fault), b.call('DEBUG', 'ENGINE-FAULT', fault),
             ('simple', b'OK'))
        cmds = []
        for i in range(60):
            cmds.append(['SET', 'fault:%d' % (i % 7), 'v%d' % i] if i % 3 else ['ECHO', 'e%d' % i])
        got = run_pipeline(kvd.port, cmds, lambda c: set_delay(kvd.port, 3, 0.5, client_id(c)))
        h.eq('%s %s: one reply per command' % (label, fault), len(got), len(cmds))
        bad = [(i, cmds[i], r) for i, r in enumerate(got)
               if (cmds[i][0] == 'SET' and not (r[0] == 'error' and r[1].startswith(b'MISCONF')))
               or (cmds[i][0] == 'ECHO' and r != ('bulk', cmds[i][1].encode()))]
        h.check('%s %s: every write answers -MISCONF, every ECHO its text, in order' %
                (label, fault), not bad, bad[:3])
        b.call('DEBUG', 'ENGINE-FAULT', 'off')
        h.eq('%s %s: DEBUG ENGINE-REOPEN' % (label, fault), b.call('DEBUG', 'ENGINE-REOPEN'),
             ('simple', b'OK'))
        r = a.pipeline([['SET', 'fault:ok', '1'], ['GET', 'fault:ok']])
        h.eq('%s %s: writes work again, with waits' % (label, fault), r,
             [('simple', b'OK'), ('bulk', b'1')])
    a.close()
    b.close()


def case_shutdown(h, label, kvd):
    a, b = Conn(kvd.port), Conn(kvd.port)
    set_delay(kvd.port, 3000, 1.0, client_id(a))
    a.send('SET', 'sd', '1')
    time.sleep(0.05)
    t0 = time.time()
    b.send('SHUTDOWN', 'NOSAVE')
    try:
        rc = kvd.proc.wait(10)
    except Exception:  # noqa: BLE001 - a timeout is the failure reported below
        rc = None
    h.eq('%s: SHUTDOWN while a command waits: exit status 0' % label, rc, 0)
    h.check('%s: ... at once (not after the wait)' % label, time.time() - t0 < 2.5,
            '%.2f s' % (time.time() - t0))
    a.close()
    b.close()


def sanitizer_clean(h, label, srv):
    try:
        with open(os.path.join(srv.dir, 'server.log'), 'rb') as f:
            text = f.read()
    except OSError:
        text = b''
    bad = [m for m in (b'ERROR: AddressSanitizer', b'ERROR: LeakSanitizer', b'runtime error:')
           if m in text]
    h.check('%s: no sanitizer report in the server log' % label, not bad,
            text[text.find(bad[0]):][:2000].decode(errors='replace') if bad else '')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--kvd', required=True)
    ap.add_argument('--redis', default='/usr/bin/redis-server')
    ap.add_argument('--asan', action='store_true')
    args = ap.parse_args()
    h = Harness('wait')
    ncmds = 300 if args.asan else 1000
    modes = [
        ('cache', ['--mode', 'cache']),
        ('persistent', ['--mode', 'persistent', '--appendfsync', 'everysec']),
        ('persistent-always', ['--mode', 'persistent', '--appendfsync', 'always']),
    ]
    redis = Server(args.redis, name='redis')
    try:
        for i, (label, extra) in enumerate(modes):
            kvd = Server(args.kvd, extra + ['--enable-debug-command', 'yes'], name='kvd-' + label)
            try:
                Conn(redis.port).call('FLUSHALL')
                h.case(case_pipelines, h, label, kvd, redis, 4, ncmds, 1000 + i)
                h.case(case_others_served, h, label, kvd)
                h.case(case_multi, h, label, kvd, redis)
                h.case(case_quit, h, label, kvd, redis)
                h.case(case_monitor_slowlog, h, label, kvd)
                h.case(case_closing, h, label, kvd, redis)
                # a server-wide delay with a probability: every client waits at random
                r = set_delay(kvd.port, 2, 0.5)
                h.eq('%s: server-wide delay' % label, r, ('simple', b'OK'))
                h.case(case_pipelines, h, label + ' server-wide', kvd, redis, 3, ncmds // 2,
                       2000 + i, False)
                if label == 'persistent-always':
                    h.case(case_write_fault, h, label, kvd)
                h.case(case_shutdown, h, label, kvd)
                if args.asan:
                    kvd.stop()
                    sanitizer_clean(h, label, kvd)
            finally:
                kvd.stop()
                kvd.cleanup()
    finally:
        redis.stop()
        redis.cleanup()
    return h.summary()


if __name__ == '__main__':
    sys.exit(main())
