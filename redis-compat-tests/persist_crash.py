#!/usr/bin/python3
"""redis-compat-tests/persist_crash.py: SIGKILL the server mid-traffic with
`appendfsync always`; after the restart every acknowledged write is there.

Each round: several writer connections (threads), each owning its own key space
partition and database (so the order of writes to a key is known exactly), send
SET, SET EX, INCR, DEL, HSET and MULTI/EXEC, one at a time or pipelined, and
record every acknowledged reply. At a random moment the server gets SIGKILL; it
is started again on the same dir, -LOADING is waited out, and then for every key:
  - strings and hash fields hold the last acknowledged value, or the value of a
    write sent after it that was still unanswered at the kill (in flight);
  - an acknowledged DEL leaves the key absent (unless a later write was in flight);
  - a counter is >= its last acknowledged INCR reply, <= that plus the INCRs in
    flight, and == when none was in flight;
  - keys written with SET EX (far future) still have 0 < TTL <= EX; plain SET keys
    have no TTL;
  - the keys a MULTI/EXEC writes together are all there or all absent (equal);
  - no key exists that no writer ever sent (nothing garbled).
The state observed after a round is the baseline of the next round (the same dir
and keys, so earlier rounds' data must survive every later crash). At the end a
clean SHUTDOWN and restart must keep the exact state.

Usage: persist_crash.py --server BIN [--rounds 5] [--writers 4] [--keys 300]
                        [--seed S] [--max-traffic 2.5]
BIN may be a redis-server (run with --appendonly yes --appendfsync always), which
is how this test itself is checked. Ends with "N passed, M failed".
"""
import argparse
import random
import sys
import threading
import time

from persist_lib import PServer, Workdir
from respclient import Conn, Harness, encode

EX_SECONDS = 100000


class Model:
    """What one writer knows about its partition: acknowledged state and what was
    in flight (sent, unanswered) when the connection broke."""

    def __init__(self):
        self.acked = {}       # key or (key, field) -> bytes, or None (deleted)
        self.counters = {}    # counter key -> last acknowledged value
        self.pending = {}     # key or (key, field) -> [values sent after the ack]
        self.pending_incr = {}  # counter key -> INCRs in flight
        self.known = set()    # every key ever sent
        self.tx_slots = set()  # tx slot numbers ever sent

    def add_pending(self, op):
        kind, key, val = op
        self.known.add(key if not isinstance(key, tuple) else key[0])
        if kind == 'incr':
            self.pending_incr[key] = self.pending_incr.get(key, 0) + 1
        else:
            self.pending.setdefault(key, []).append(val)

    def ack(self, op, reply_int=None):
        kind, key, val = op
        if kind == 'incr':
            self.pending_incr[key] -= 1
            self.counters[key] = reply_int
        else:
            lst = self.pending[key]
            lst.remove(val)
            self.acked[key] = val


class Writer(threading.Thread):
    def __init__(self, wid, port, db, model, seed, nkeys, errors):
        super().__init__(daemon=True)
        self.wid = wid
        self.port = port
        self.db = db
        self.m = model
        self.r = random.Random(seed)
        self.nkeys = nkeys
        self.errors = errors    # shared list of unexpected replies (before the kill)
        self.acks = 0
        self.seq = 0
        self.stop_at_error = True

    def k(self, space, i):
        return 'p%d:%s:%d' % (self.wid, space, i)

    def value(self):
        self.seq += 1
        v = b'w%d-%d-' % (self.wid, self.seq)
        x = self.r.random()
        if x < 0.1:
            v += b'L' * self.r.randrange(1000, 5000)
        elif x < 0.6:
            v += b'v' * self.r.randrange(0, 60)
        return v

    def gen_op(self):
        """One command: (args, model-op, reply check)."""
        r = self.r
        x = r.random()
        i = r.randrange(self.nkeys)
        if x < 0.30:
            key, v = self.k('s', i), self.value()
            return ['SET', key, v], ('set', key, v)
        if x < 0.45:
            key, v = self.k('e', i), self.value()
            return ['SET', key, v, 'EX', str(EX_SECONDS)], ('set', key, v)
        if x < 0.65:
            key = self.k('c', i % 50)
            return ['INCR', key], ('incr', key, None)
        if x < 0.75:
            key = self.k(r.choice('se'), i)
            return ['DEL', key], ('set', key, None)
        key = self.k('h', i % 100)
        f = 'f%d' % r.randrange(8)
        v = self.value()
        return ['HSET', key, f, v], ('set', (key, f), v)

    def gen_tx(self):
        i = self.r.randrange(self.nkeys // 4 + 1)
        v = self.value()
        ops = [('set', self.k('ta', i), v), ('set', self.k('tb', i), v),
               ('incr', self.k('tc', i), None), ('set', (self.k('th', i), 'f'), v)]
        cmds = [['MULTI'], ['SET', self.k('ta', i), v], ['SET', self.k('tb', i), v],
                ['INCR', self.k('tc', i)], ['HSET', self.k('th', i), 'f', v], ['EXEC']]
        return cmds, ops, i

    def check_reply(self, args, op, rep):
        kind = op[0]
        if kind == 'incr':
            want = self.m.counters.get(op[1], 0) + 1
            if rep != ('int', want):
                self.errors.append('%s -> %r, want :%d' % (args, rep, want))
                return None
            return want
        if args[0] in ('SET',):
            ok = rep == ('simple', b'OK')
        else:  # DEL, HSET: an integer
            ok = rep[0] == 'int'
        if not ok:
            self.errors.append('%s -> %r' % ([a if len(str(a)) < 40 else '...' for a in args],
                                            rep))
            return None
        return 0

    def run(self):
        try:
            c = Conn(self.port, timeout=60)
            if c.call('SELECT', str(self.db)) != ('simple', b'OK'):
                self.errors.append('SELECT %d failed' % self.db)
                return
        except (OSError, EOFError) as e:
            self.errors.append('writer %d could not connect: %s' % (self.wid, e))
            return
        try:
            while True:
                x = self.r.random()
                if x < 0.2:
                    cmds, ops, slot = self.gen_tx()
                    self.m.tx_slots.add(slot)
                    for op in ops:
                        self.m.add_pending(op)
                    c.sock.sendall(b''.join(encode(a) for a in cmds))
                    reps = [c.read() for _ in cmds]
                    want_q = [('simple', b'OK')] + [('simple', b'QUEUED')] * 4
                    if reps[:5] != want_q or reps[5][0] != 'array' or len(reps[5][1]) != 4:
                        self.errors.append('MULTI/EXEC -> %r' % (reps,))
                        return
                    res = reps[5][1]
                    want_n = self.m.counters.get(ops[2][1], 0) + 1
                    if res[0] != ('simple', b'OK') or res[1] != ('simple', b'OK') or \
                            res[2] != ('int', want_n) or res[3][0] != 'int':
                        self.errors.append('EXEC -> %r' % (res,))
                        return
                    for op in ops:
                        self.m.ack(op, want_n)
                    self.acks += 1
                    continue
                n = 1 if x < 0.6 else self.r.randrange(2, 40)
                batch = [self.gen_op() for _ in range(n)]
                for _, op in batch:
                    self.m.add_pending(op)
                c.sock.sendall(b''.join(encode(a) for a, _ in batch))
                for args, op in batch:
                    rep = c.read()
                    n_ = self.check_reply(args, op, rep)
                    if n_ is None:
                        return
                    self.m.ack(op, n_)
                    self.acks += 1
        except (OSError, EOFError):
            return  # the kill: what is still pending stays in flight
        finally:
            c.close()


def pipeline_get(c, cmds, chunk=500):
    out = []
    for i in range(0, len(cmds), chunk):
        out += c.pipeline(cmds[i:i + chunk])
    return out


def verify(h, c, models, dbs, label, exact=False):
    """Checks every key of every writer against its model; returns the number of
    failures. Then makes the observed state the models' new baseline."""
    bad = 0
    for wid, m in enumerate(models):
        c.call('SELECT', str(dbs[wid]))
        str_keys = sorted(k for k in set(m.acked) | set(m.pending) if not isinstance(k, tuple))
        fld_keys = sorted(k for k in set(m.acked) | set(m.pending) if isinstance(k, tuple))
        cnt_keys = sorted(set(m.counters) | set(m.pending_incr))
        reps = pipeline_get(c, [['GET', k] for k in str_keys] +
                            [['HGET', k, f] for k, f in fld_keys] +
                            [['GET', k] for k in cnt_keys] +
                            [['TTL', k] for k in str_keys])
        n1, n2, n3 = len(str_keys), len(fld_keys), len(cnt_keys)
        got_str = reps[:n1]
        got_fld = reps[n1:n1 + n2]
        got_cnt = reps[n1 + n2:n1 + n2 + n3]
        got_ttl = reps[n1 + n2 + n3:]
        observed = {}
        for key, rep, ttl in list(zip(str_keys, got_str, got_ttl)) + \
                [(k, r, None) for k, r in zip(fld_keys, got_fld)]:
            val = rep[1] if rep[0] == 'bulk' else None if rep[0] == 'nullbulk' else rep
            allowed = []
            if key in m.acked:
                allowed.append(m.acked[key])
            else:
                allowed.append(None)  # never acknowledged: absent is allowed
            pend = m.pending.get(key, [])
            if not exact:
                allowed += pend
            if val not in allowed:
                bad += 1
                if bad <= 10:
                    h.check('%s: writer %d key %r' % (label, wid, key), False,
                            'got %r, want one of %r' % (short(val), [short(a) for a in allowed]))
            observed[key] = val
            if ttl is not None and val is not None and isinstance(val, bytes):
                space = key.split(':')[1]
                if space == 'e' and not (ttl[0] == 'int' and 0 < ttl[1] <= EX_SECONDS):
                    bad += 1
                    h.check('%s: TTL of %s' % (label, key), False,
                            'got %r, want 0 < TTL <= %d' % (ttl, EX_SECONDS))
                if space in ('s', 'ta', 'tb') and ttl != ('int', -1):
                    bad += 1
                    h.check('%s: TTL of %s' % (label, key), False, 'got %r, want -1' % (ttl,))
        for key, rep in zip(cnt_keys, got_cnt):
            n = m.counters.get(key, 0)
            inflight = 0 if exact else m.pending_incr.get(key, 0)
            if rep[0] == 'nullbulk':
                got = 0
            elif rep[0] == 'bulk' and rep[1].lstrip(b'-').isdigit():
                got = int(rep[1])
            else:
                got = None
            if got is None or not (n <= got <= n + inflight):
                bad += 1
                if bad <= 10:
                    h.check('%s: writer %d counter %s' % (label, wid, key), False,
                            'got %r, want %d..%d' % (rep, n, n + inflight))
            observed[key] = got
        # MULTI/EXEC all or nothing
        for slot in sorted(m.tx_slots):
            ka, kb = 'p%d:ta:%d' % (wid, slot), 'p%d:tb:%d' % (wid, slot)
            kh = ('p%d:th:%d' % (wid, slot), 'f')
            if not (observed.get(ka) == observed.get(kb) == observed.get(kh)):
                bad += 1
                h.check('%s: MULTI/EXEC slot %d of writer %d atomic' % (label, slot, wid), False,
                        'ta=%r tb=%r th=%r' % (short(observed.get(ka)), short(observed.get(kb)),
                                               short(observed.get(kh))))
        # nothing but what was sent
        keys = c.call('KEYS', 'p%d:*' % wid)
        present = set(x[1].decode() for x in keys[1]) if keys[0] == 'array' else set()
        unknown = present - m.known
        if unknown:
            bad += 1
            h.check('%s: writer %d no unknown keys' % (label, wid), False, sorted(unknown)[:5])
        # the new baseline
        m.acked = {k: v for k, v in observed.items() if k not in m.counters and
                   k not in m.pending_incr}
        m.counters = {k: observed[k] for k in cnt_keys}
        m.pending = {}
        m.pending_incr = {}
    h.check('%s: every acknowledged write is there' % label, bad == 0, '%d problems' % bad)
    return bad


def short(v):
    if isinstance(v, bytes) and len(v) > 40:
        return v[:30] + b'...(%d bytes)' % len(v)
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', required=True)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--writers', type=int, default=4)
    ap.add_argument('--keys', type=int, default=300)
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('--max-traffic', type=float, default=2.5,
                    help='most seconds of traffic before the kill')
    ap.add_argument('--fsync', default='always')
    ap.add_argument('--server-args', default='',
                    help='more server flags (checking the checker: "--appendonly no")')
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    print('persist_crash: seed %d (replay with --seed %d)' % (seed, seed), flush=True)
    rng = random.Random(seed)
    h = Harness('persist_crash')
    wd = Workdir('crash')
    srv = PServer(a.server, wd.sub('data'), fsync=a.fsync, name='crash',
                  extra=a.server_args.split())
    models = [Model() for _ in range(a.writers)]
    dbs = [w % 4 for w in range(a.writers)]
    t0 = time.time()
    try:
        srv.start()
        for rnd in range(a.rounds):
            errors = []
            writers = [Writer(w, srv.port, dbs[w], models[w], rng.randrange(1 << 30), a.keys,
                              errors) for w in range(a.writers)]
            for w in writers:
                w.start()
            time.sleep(0.2 + rng.random() * max(0.0, a.max_traffic - 0.2))
            acks_at_kill = sum(w.acks for w in writers)
            srv.kill9()
            for w in writers:
                w.join(30)
            h.check('round %d: no writer stuck after the kill' % rnd,
                    not any(w.is_alive() for w in writers))
            h.check('round %d: replies before the kill as expected' % rnd, not errors,
                    errors[:5])
            h.check('round %d: traffic was flowing at the kill' % rnd, acks_at_kill > 0,
                    'no acknowledged write')
            inflight = sum(len(v) for m in models for v in m.pending.values()) + \
                sum(n for m in models for n in m.pending_incr.values())
            ready = srv.start()
            print('round %d: %d acknowledged writes, %d in flight at the kill, ready %.2f s '
                  'after restart' % (rnd, acks_at_kill, inflight, ready), flush=True)
            c = srv.conn()
            verify(h, c, models, dbs, 'round %d' % rnd)
            c.close()
        # a clean stop keeps exactly what is there
        rc = srv.stop(how='shutdown')
        h.check('SHUTDOWN exits with status 0', rc == 0, 'status %r' % rc)
        srv.start()
        c = srv.conn()
        verify(h, c, models, dbs, 'after SHUTDOWN', exact=True)
        c.close()
        rc = srv.stop()
        h.check('SIGTERM exits with status 0', rc == 0, 'status %r' % rc)
        rep = srv.sanitizer_report()
        h.check('no sanitizer report', rep is None, rep)
    except Exception as e:  # noqa: BLE001 - a crash of the harness or server is a failure
        h.check('crash test ran to the end', False, '%s: %s' % (type(e).__name__, e))
    finally:
        srv.kill9()
        wd.close()
    print('persist_crash: %.1f s' % (time.time() - t0))
    return h.summary()


if __name__ == '__main__':
    sys.exit(main())
