#!/usr/bin/python3
"""redis-compat-tests/proto_fuzz.py: mutated request bytes, kvd against redis-server.

Usage: proto_fuzz.py --kvd BIN [--redis redis-server] [--cases N] [--seed S] [--wait SEC]
Starts both servers (free loopback ports, own dirs, stopped by PID). Each case is a
small pipeline of valid requests (multibulk and inline; SET/GET/INCR/APPEND/HSET/
HGET/MGET/DEL/EXISTS/ECHO/PING/STRLEN on keys of its own) mutated at random: bytes
flipped, dropped, inserted or duplicated, lengths and counts rewritten (negative,
huge, non-numeric), CRLFs cut, the whole cut short. Every case opens its own
connection to each server, all cases at once; after --wait seconds each side's
reply bytes and whether it closed the connection are compared exactly. Then the
server must still answer PING. A mismatch prints the case's input and both
outputs. Ends with "N passed, M failed".

A request cut short leaves both servers waiting for the rest: that is part of the
comparison (no reply, connection open), not a timeout.

What must hold, per case (a failure otherwise):
  - kvd's bytes are whole RESP replies;
  - kvd closes the connection exactly when its last reply is "-ERR Protocol error";
  - the requests both servers read alike get the same replies: with a trailing
    protocol error set aside, one side's replies are a prefix of the other's.
Where both agree byte for byte the case is plain. Where the damage itself is judged
differently (Redis, for one, reads a bulk's payload without checking the CRLF after
it, and looks for a lone CR as a line end; kvd may refuse such frames sooner or with
another protocol error text), the case is listed as DIFF with both outputs and still
passes: malformed input owes only one error and a close, not Redis's wording.
"""
import argparse
import os
import random
import select
import socket
import sys
import time

from respclient import Conn, encode
from serverctl import Server

DATABASES = 1000  # one per case (up to this many cases)
COMMANDS = [
    lambda k, r: ['SET', k, r.choice(['v', '12', 'hello world', '\x00\r\n'])],
    lambda k, r: ['GET', k],
    lambda k, r: ['INCR', k],
    lambda k, r: ['APPEND', k, 'xy'],
    lambda k, r: ['HSET', k + 'h', 'f', 'v'],
    lambda k, r: ['HGET', k + 'h', 'f'],
    lambda k, r: ['MGET', k, k + 'h', k + 'x'],
    lambda k, r: ['DEL', k],
    lambda k, r: ['EXISTS', k, k + 'h'],
    lambda k, r: ['ECHO', 'e' * r.choice([0, 1, 10, 100])],
    lambda k, r: ['PING'],
    lambda k, r: ['STRLEN', k],
]


def inline(args):
    return (' '.join(a if a and ' ' not in a and '\x00' not in a and '\r' not in a and '"' not in a
                     else '"%s"' % a.replace('\\', '\\\\').replace('\r', '\\r').replace('\n', '\\n')
                     .replace('\x00', '\\x00').replace('"', '\\"') for a in args) + '\r\n').encode()


def make_case(r, i):
    key = 'pf:%d:k' % i
    reqs = []
    for _ in range(r.randrange(1, 5)):
        args = r.choice(COMMANDS)(key, r)
        reqs.append(inline(args) if r.random() < 0.25 else encode(args))
    data = bytearray(b''.join(reqs))
    for _ in range(r.randrange(1, 4)):
        mutate(r, data)
    return bytes(data)


def mutate(r, d):
    if not d:
        return
    m = r.randrange(9)
    pos = r.randrange(len(d))
    if m == 0:  # flip a bit
        d[pos] ^= 1 << r.randrange(8)
    elif m == 1:  # drop bytes
        del d[pos:pos + r.randrange(1, 4)]
    elif m == 2:  # insert junk
        d[pos:pos] = bytes(r.choice(b'*$:+-\r\n0123456789aZ \x00"\\') for _ in range(r.randrange(1, 4)))
    elif m == 3:  # rewrite a length or a count
        idx = [j for j in range(len(d)) if d[j] in b'*$']
        if idx:
            j = r.choice(idx) + 1
            end = d.find(b'\r\n', j)
            if end > 0:
                d[j:end] = r.choice([b'-1', b'-2', b'0', b'1', b'3', b'999', b'2147483648', b'-',
                                     b'abc', b'', b'99999999999999999999', b'1 ', b'+1', b'513'])
    elif m == 4:  # cut a CRLF
        j = d.find(b'\r\n', pos)
        if j >= 0:
            del d[j + r.randrange(2)]
    elif m == 5:  # cut short
        del d[pos:]
    elif m == 6:  # duplicate a piece
        n = r.randrange(1, 20)
        d[pos:pos] = d[pos:pos + n]
    elif m == 7:  # a lone LF instead of CRLF
        j = d.find(b'\r\n', pos)
        if j >= 0:
            d[j:j + 2] = b'\n'
    else:  # an unbalanced quote in an inline line
        d[pos:pos] = b'"'


def parse_replies(data):
    """Splits reply bytes into whole RESP2 replies; returns (replies, rest) where
    rest is bytes that do not form a whole reply."""
    out = []
    pos = 0
    while pos < len(data):
        end = one_reply(data, pos)
        if end is None:
            break
        out.append(data[pos:end])
        pos = end
    return out, data[pos:]


def one_reply(d, pos):
    """The end of the reply starting at pos, or None when it is not whole/valid."""
    nl = d.find(b'\r\n', pos)
    if nl < 0 or nl == pos:
        return None
    t, body = d[pos:pos + 1], d[pos + 1:nl]
    if t in (b'+', b'-'):
        return nl + 2
    if t == b':':
        return nl + 2 if body.lstrip(b'-').isdigit() else None
    if t == b'$':
        if not body.lstrip(b'-').isdigit():
            return None
        n = int(body)
        if n < 0:
            return nl + 2
        end = nl + 2 + n
        return end + 2 if d[end:end + 2] == b'\r\n' else None
    if t == b'*':
        if not body.lstrip(b'-').isdigit():
            return None
        p = nl + 2
        for _ in range(max(int(body), 0)):
            p = one_reply(d, p)
            if p is None:
                return None
        return p
    return None


def judge(x, y):
    """'same', 'diff' (both sound, damage judged differently) or a failure text."""
    if x == y:
        return 'same'
    (xa, xclosed), (ya, _) = x, y
    rk, rest = parse_replies(xa)
    if rest:
        return 'kvd sent bytes that are not whole RESP replies'
    perr = bool(rk) and rk[-1].startswith(b'-ERR Protocol error')
    if perr and not xclosed:
        return 'kvd sent a protocol error and kept the connection open'
    if xclosed and not perr:
        return 'kvd closed the connection without a protocol error reply'
    rr, _ = parse_replies(ya)
    a = rk[:-1] if perr else rk
    b = rr[:-1] if rr and rr[-1].startswith(b'-ERR Protocol error') else rr
    n = min(len(a), len(b))
    if a[:n] != b[:n]:
        return 'a request both servers read alike got different replies'
    return 'diff'


def run_cases(port, cases, wait):
    """Sends every case on its own connection at once; returns per case
    (reply bytes, closed)."""
    socks = []
    for data in cases:
        s = socket.create_connection(('127.0.0.1', port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    for i, (s, data) in enumerate(zip(socks, cases)):
        try:
            s.sendall(data)
        except OSError:
            pass
    out = [bytearray() for _ in cases]
    closed = [False] * len(cases)
    deadline = time.time() + wait
    live = {s.fileno(): i for i, s in enumerate(socks)}
    while live and time.time() < deadline:
        ready, _, _ = select.select([socks[i] for i in live.values()], [], [], max(0.0, deadline - time.time()))
        for s in ready:
            i = live[s.fileno()]
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b''
            if chunk:
                out[i] += chunk
            else:
                closed[i] = True
                del live[s.fileno()]
    for s in socks:
        s.close()
    return [(bytes(o), c) for o, c in zip(out, closed)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--kvd', required=True)
    ap.add_argument('--redis', default='/usr/bin/redis-server')
    ap.add_argument('--cases', type=int, default=400)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--wait', type=float, default=1.5)
    ap.add_argument('--kvd-arg', action='append', default=[], help='an extra option for kvd')
    ap.add_argument('--show-diffs', type=int, default=10, help='DIFF cases to print')
    o = ap.parse_args()
    r = random.Random(o.seed)
    passed = failed = same = diffs = 0
    a = b = None
    try:
        a = Server(o.kvd, ['--databases', str(DATABASES)] + o.kvd_arg, name='kvd')
        b = Server(o.redis, ['--databases', str(DATABASES)], name='redis')
        batch = 100
        for start in range(0, o.cases, batch):
            # each case in a database of its own (the SELECT is not mutated), so a
            # key mangled into another case's key cannot reach it
            cases = [encode(['SELECT', i % DATABASES]) + make_case(r, i)
                     for i in range(start, min(o.cases, start + batch))]
            ra = run_cases(a.port, cases, o.wait)
            rb = run_cases(b.port, cases, o.wait)
            for i, (data, x, y) in enumerate(zip(cases, ra, rb)):
                verdict = judge(x, y)
                if verdict in ('same', 'diff'):
                    passed += 1
                    same += verdict == 'same'
                    diffs += verdict == 'diff'
                else:
                    failed += 1
                if verdict != 'same' and (verdict != 'diff' or diffs <= o.show_diffs):
                    print('%s case %d (seed %d): %s\n  input %r\n  kvd:   %r closed=%s\n  redis: %r closed=%s'
                          % ('DIFF' if verdict == 'diff' else 'FAIL proto-fuzz:', start + i, o.seed,
                             verdict, data, x[0][:300], x[1], y[0][:300], y[1]), flush=True)
            c = Conn(a.port)
            ok = c.call('PING') == ('simple', b'PONG')
            c.close()
            if ok:
                passed += 1
            else:
                failed += 1
                print('FAIL proto-fuzz: kvd not answering PING after cases %d..%d' % (start, start + batch))
    except Exception as e:  # noqa: BLE001 - a crash or a refused connection is a failure
        failed += 1
        print('FAIL proto-fuzz: %s: %s' % (type(e).__name__, e))
        if a is not None and a.proc.poll() is not None:
            print('FAIL proto-fuzz: kvd exited with status %s; log tail:\n%s' % (a.proc.returncode, a._tail()))
    finally:
        for s in (a, b):
            if s is not None:
                rc = s.stop()
                if s is a and rc not in (0, None):
                    failed += 1
                    print('FAIL proto-fuzz: kvd exit status %s after SIGTERM' % rc)
                s.cleanup()
    print('proto-fuzz: %d cases byte-identical to redis-server, %d judged differently (DIFF)'
          % (same, diffs))
    print('proto-fuzz: %d passed, %d failed' % (passed, failed))
    print('%d passed, %d failed' % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
