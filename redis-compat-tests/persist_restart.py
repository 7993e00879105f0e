#!/usr/bin/python3
"""redis-compat-tests/persist_restart.py: a restart keeps every key, type, value and
TTL, in all 16 databases, compared with a redis-server that never restarts.

A seeded random workload (strings with EX/PX/EXAT/PXAT/KEEPTTL/NX/XX/GET, MSET,
APPEND, SETRANGE, INCRBY, hashes, EXPIRE/PEXPIREAT/PERSIST, GETEX, GETDEL, DEL,
UNLINK, RENAME, RENAMENX, COPY across databases, FLUSHDB now and then, large
values, short-lived keys that expire around the restarts) runs pipelined on the
server under test (persistent, `appendfsync always`) and on a reference
redis-server (in memory); their replies are compared as it runs. Between phases
the server under test is restarted, then both are dumped (every key of every
database: TYPE, value, PTTL) and compared, PTTL within a tolerance:
  phase 1, SHUTDOWN, start;  phase 2, SIGKILL, start;  phase 3, SIGTERM, start;
  then a second SIGKILL right after a restart (recovering a recovered dir).
Also the INFO persistence fields tools read (aof_enabled:1,
aof_last_write_status:ok, rdb_changes_since_last_save, loading:0) and, on kvd, an
"# Engine" section.

Usage: persist_restart.py --server BIN [--redis redis-server] [--steps 3000]
                          [--seed S]
Ends with "N passed, M failed".
"""
import argparse
import random
import sys
import time

from persist_lib import PServer, Workdir, info, info_sections
from respclient import Harness, plain

NDB = 16
PTTL_TOLERANCE_MS = 3000


class Gen:
    def __init__(self, rng):
        self.r = rng
        self.now_ms = int(time.time() * 1000)
        self.db = 0
        self.gt_seconds = 4 * 86400  # EXPIRE ... GT: beyond every other TTL, rising

    def key(self):
        r = self.r.random()
        if r < 0.6:
            return 'k%d' % self.r.randrange(30)
        if r < 0.8:
            return 'h%d' % self.r.randrange(10)
        if r < 0.84:
            return 'bh%d' % self.r.randrange(3)
        return 'n%d' % self.r.randrange(5)

    def skey(self):
        return 'k%d' % self.r.randrange(30)

    def hkey(self):
        if self.r.random() < 0.25:
            return 'bh%d' % self.r.randrange(3)  # big: past 512 fields, field records
        return 'h%d' % self.r.randrange(10)

    def hfield(self, key):
        if key.startswith('bh'):
            return 'g%d' % self.r.randrange(700)
        return 'f%d' % self.r.randrange(12)

    def val(self):
        x = self.r.random()
        if x < 0.02:
            return 'B' * self.r.randrange(10000, 120000)
        if x < 0.1:
            return 'm' * self.r.randrange(100, 3000)
        return self.r.choice(['', 'v', 'hello', '0', '42', '-7', 'x' * 30, 'y' * 70,
                              '\x00bin\r\n\xff', 'val%d' % self.r.randrange(1000)])

    def long_ex(self):
        return str(self.r.choice([100, 1000, 86400, 3 * 86400]))

    def long_px(self):
        return str(self.r.choice([200000, 5000000]))

    def cmd(self):
        r = self.r
        x = r.randrange(100)
        k, v = self.skey(), self.val()
        if x < 3:
            self.db = r.choice([0, 0, 1, 2, 3, r.randrange(NDB)])
            return ['SELECT', str(self.db)]
        if x < 20:
            opts = []
            o = r.randrange(9)
            if o == 0:
                opts = ['EX', self.long_ex()]
            elif o == 1:
                opts = ['PX', self.long_px()]
            elif o == 2:
                opts = ['EXAT', str(self.now_ms // 1000 + 7200)]
            elif o == 3:
                opts = ['PXAT', str(self.now_ms + 3600000 + r.randrange(1000))]
            elif o == 4:
                opts = ['KEEPTTL']
            if r.random() < 0.15:
                opts.append(r.choice(['NX', 'XX']))
            if r.random() < 0.15:
                opts.append('GET')
            return ['SET', k, v] + opts
        if x < 23:
            return ['SETEX', k, self.long_ex(), v]
        if x < 25:
            return ['PSETEX', k, self.long_px(), v]
        if x < 29:
            args = ['MSET']
            for _ in range(r.randrange(1, 5)):
                args += [self.skey(), self.val()]
            return args
        if x < 32:
            return ['APPEND', k, r.choice(['a', 'bc', 'x' * 200])]
        if x < 34:
            return ['SETRANGE', k, str(r.randrange(0, 50)), r.choice(['Z', 'zz', 'q' * 20])]
        if x < 39:
            return ['INCRBY', 'n%d' % r.randrange(5), str(r.randrange(-100, 1000))]
        if x < 50:
            hk = self.hkey()
            args = ['HSET', hk]
            big = hk.startswith('bh')
            for _ in range(r.randrange(80, 250) if big else r.randrange(1, 4)):
                args += [self.hfield(hk), 'val%d' % r.randrange(1000) if big else self.val()]
            return args
        if x < 53:
            hk = self.hkey()
            return ['HDEL', hk] + [self.hfield(hk) for _ in range(r.randrange(1, 3))]
        if x < 56:
            return ['HINCRBY', self.hkey(), 'cnt%d' % r.randrange(3), str(r.randrange(-5, 50))]
        if x < 58:
            hk = self.hkey()
            return ['HSETNX', hk, self.hfield(hk), self.val()]
        if x < 62:
            opt = r.choice([[], [], ['NX'], ['GT']])
            if opt == ['GT']:
                # A GT time equal to the key's TTL would be judged by the milliseconds
                # between two commands, differently on each server: every GT time is
                # a second past any TTL this workload sets.
                self.gt_seconds += 1
                return ['EXPIRE', self.key(), str(self.gt_seconds), 'GT']
            return ['EXPIRE', self.key(), self.long_ex()] + opt
        if x < 64:
            return ['PEXPIREAT', self.key(), str(self.now_ms + 9000000 + r.randrange(1000))]
        if x < 66:
            return ['PERSIST', self.key()]
        if x < 68:
            return ['GETEX', k] + r.choice([['EX', self.long_ex()], ['PERSIST'], []])
        if x < 70:
            return ['GETDEL', k]
        if x < 74:
            return [r.choice(['DEL', 'UNLINK'])] + [self.key() for _ in range(r.randrange(1, 4))]
        if x < 77:
            return ['RENAME', self.key(), self.key()]
        if x < 79:
            return ['RENAMENX', self.key(), self.key()]
        if x < 83:
            args = ['COPY', self.key(), self.key()]
            if r.random() < 0.6:
                args += ['DB', str(r.randrange(NDB))]
            if r.random() < 0.5:
                args.append('REPLACE')
            return args
        if x < 84 and r.random() < 0.2:
            return ['FLUSHDB']
        if x < 90:
            # short-lived: expires around the restarts; never read by the workload
            return ['SET', 'tmp:%d' % r.randrange(50), v, 'PX', str(r.randrange(50, 800))]
        if x < 95:
            return ['GET', k]
        if x < 97:
            return ['HGETALL', self.hkey()]
        return ['EXISTS'] + [self.key() for _ in range(r.randrange(1, 4))]


def norm(cmd, rep):
    p = plain(rep)
    if cmd[0] == 'HGETALL' and isinstance(p, list):
        return sorted(zip(p[0::2], p[1::2]))
    return p


def run_workload(h, sut, ref, gen, steps, label, batch=25):
    """Sends `steps` commands, pipelined, to both; compares the replies."""
    bad = 0
    done = 0
    while done < steps:
        cmds = [gen.cmd() for _ in range(min(batch, steps - done))]
        a = sut.pipeline(cmds)
        b = ref.pipeline(cmds)
        for c, x, y in zip(cmds, a, b):
            if norm(c, x) != norm(c, y):
                bad += 1
                if bad <= 5:
                    print('MISMATCH %s: %s\n  server: %r\n  redis:  %r'
                          % (label, ' '.join(s if len(s) < 40 else s[:20] + '...' for s in c),
                             x if len(repr(x)) < 200 else repr(x)[:200],
                             y if len(repr(y)) < 200 else repr(y)[:200]))
        done += len(cmds)
    h.check('%s: %d replies equal to redis-server\'s' % (label, steps), bad == 0,
            '%d differ' % bad)
    # leave both on db 0
    sut.call('SELECT', '0')
    ref.call('SELECT', '0')
    gen.db = 0


def dump(c):
    """{(db, key): (type, value, pttl)} of every database."""
    out = {}
    for db in range(NDB):
        c.call('SELECT', str(db))
        keys = c.call('KEYS', '*')
        names = sorted(k[1] for k in keys[1])
        cmds = []
        for k in names:
            cmds += [['TYPE', k], ['PTTL', k]]
        reps = c.pipeline(cmds) if cmds else []
        vcmds = []
        for i, k in enumerate(names):
            t = reps[2 * i][1]
            vcmds.append(['HGETALL', k] if t == b'hash' else ['GET', k])
        vals = c.pipeline(vcmds) if vcmds else []
        for i, k in enumerate(names):
            t = reps[2 * i][1]
            v = plain(vals[i])
            if t == b'hash':
                v = sorted(zip(v[0::2], v[1::2]))
            out[(db, k)] = (t, v, reps[2 * i + 1][1])
    c.call('SELECT', '0')
    return out


def compare(h, sut, ref, label):
    a = dump(sut)
    b = dump(ref)
    bad = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x is None or y is None:
            bad.append('%s: %s on the server, %s on redis' % (
                key, 'present' if x else 'absent', 'present' if y else 'absent'))
            continue
        if x[0] != y[0] or x[1] != y[1]:
            bad.append('%s: type/value %r vs %r' % (key, short(x[:2]), short(y[:2])))
            continue
        tx, ty = x[2], y[2]
        if (tx < 0 or ty < 0) and tx != ty or (tx > 0 and ty > 0 and
                                                 abs(tx - ty) > PTTL_TOLERANCE_MS):
            bad.append('%s: PTTL %d vs %d' % (key, tx, ty))
    h.check('%s: %d keys in %d databases equal to redis-server\'s (type, value, PTTL)'
            % (label, len(b), NDB), not bad, '%d differ: %s' % (len(bad), bad[:8]))
    return len(b)


def short(x):
    s = repr(x)
    return s if len(s) < 120 else s[:120] + '...'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', required=True)
    ap.add_argument('--redis', default='redis-server')
    ap.add_argument('--steps', type=int, default=3000)
    ap.add_argument('--seed', type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    print('persist_restart: seed %d (replay with --seed %d)' % (seed, seed), flush=True)
    h = Harness('persist_restart')
    wd = Workdir('restart')
    import shutil
    redis_bin = shutil.which(a.redis) or a.redis
    sut = PServer(a.server, wd.sub('sut'), fsync='always', name='sut')
    # the reference: redis-server in memory (appendonly off overrides)
    ref = PServer(redis_bin, wd.sub('ref'), fsync='no', name='ref',
                  extra=['--appendonly', 'no'])
    gen = Gen(random.Random(seed))
    t0 = time.time()
    try:
        sut.start()
        ref.start()
        cs, cr = sut.conn(), ref.conn()
        inf = info(cs, 'persistence')
        h.eq('INFO aof_enabled', inf.get('aof_enabled'), '1')
        h.eq('INFO aof_last_write_status', inf.get('aof_last_write_status'), 'ok')
        h.check('INFO rdb_changes_since_last_save', 'rdb_changes_since_last_save' in inf)
        h.eq('INFO loading', inf.get('loading'), '0')
        if not sut.redis:
            h.check('INFO has an # Engine section', 'Engine' in info_sections(cs),
                    info_sections(cs))
        # a big hash (past hash-max-listpack-entries: one record per field on
        # disk) in every phase's data, whatever the random workload does to it
        big = ['HSET', 'bh0'] + [x for i in range(600) for x in ('g%d' % i, 'v%d' % i)]
        h.eq('big hash built', plain(cs.call(*big)), plain(cr.call(*big)))
        h.eq('big hash size', plain(cs.call('HLEN', 'bh0')), 600)
        run_workload(h, cs, cr, gen, a.steps, 'phase 1')
        time.sleep(1.0)  # let the short-lived keys expire on both
        compare(h, cs, cr, 'before any restart')
        for phase, how in ((2, 'shutdown'), (3, 'sigkill'), (4, 'sigterm')):
            cs.close()
            if how == 'sigkill':
                sut.kill9()
            else:
                rc = sut.stop(how=how)
                h.check('%s exits with status 0' % how.upper(), rc == 0, 'status %r' % rc)
            ready = sut.start()
            print('restart after %s: ready in %.2f s' % (how, ready), flush=True)
            cs = sut.conn()
            time.sleep(1.0)
            compare(h, cs, cr, 'after %s' % how.upper())
            if phase < 4:
                run_workload(h, cs, cr, gen, a.steps, 'phase %d' % phase)
        # a crash right after a recovery, with a few writes in between
        run_workload(h, cs, cr, gen, 200, 'phase 5')
        cs.close()
        sut.kill9()
        sut.start()
        cs = sut.conn()
        time.sleep(1.0)
        n = compare(h, cs, cr, 'after a second SIGKILL')
        inf = info(cs, 'persistence')
        h.eq('INFO loading after recovery', inf.get('loading'), '0')
        print('persist_restart: %d keys at the end' % n)
        cs.close()
        cr.close()
        rc = sut.stop()
        h.check('SIGTERM exits with status 0', rc == 0, 'status %r' % rc)
        rep = sut.sanitizer_report()
        h.check('no sanitizer report', rep is None, rep)
    except Exception as e:  # noqa: BLE001
        h.check('restart test ran to the end', False, '%s: %s' % (type(e).__name__, e))
    finally:
        sut.kill9()
        ref.kill9()
        wd.close()
    print('persist_restart: %.1f s' % (time.time() - t0))
    return h.summary()


if __name__ == '__main__':
    sys.exit(main())
