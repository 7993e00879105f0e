#!/usr/bin/python3
"""redis-compat-tests/persist_disk.py: a full disk or a failing write/fsync makes
writes fail loudly, keeps reads working, loses nothing acknowledged, and the
server recovers when space returns.

Two ways to run out of disk:
  tmpfs  (needs root) a 32 MB tmpfs mounted inside the test's temp dir holds the
         data dir; 8 KiB random (incompressible) values are written until writes
         fail; then `mount -o remount,size=256m` gives space back. Falls back to
         "skipped" when the mount is refused.
  fault  kvd's engine fault layer: DEBUG ENGINE-FAULT nospace | fail-write |
         fail-sync, then DEBUG ENGINE-FAULT off (skipped against redis-server).
For each:
  - a write that is not stored gets an error (MISCONF, or an OOM-like error), never
    +OK; INFO persistence shows aof_last_write_status:err;
  - GET of acknowledged keys, DBSIZE and PING keep working meanwhile;
  - the server replies to a failed write; it never just closes the connection;
  - after space returns (nospace: by itself, no restart, no DEBUG ENGINE-REOPEN) a
    write succeeds again and aof_last_write_status is ok; after fail-write and
    fail-sync DEBUG ENGINE-REOPEN or a restart may be what clears the error (the
    engine's errors are sticky); which one did is printed;
  - after SIGKILL and a restart every acknowledged value is there, byte for byte;
    a key whose write failed is absent or holds exactly what was sent.
kvd runs with appendfsync always. redis-server (checking this test) runs with
everysec, since with `always` Redis exits on an AOF write error by design.

Usage: persist_disk.py --server BIN [--only tmpfs,fault] [--asan]
Ends with "N passed, M failed" (a line "K skipped" before it when cases are left out).
"""
import argparse
import os
import random
import subprocess
import sys
import time

from persist_lib import PServer, Workdir, finish, info
from respclient import Harness

VLEN = 8192
ERR_PREFIXES = (b'MISCONF', b'OOM', b'IOERR', b'ERR disk', b'ERR no space')


def is_write_error(rep):
    return rep[0] == 'error' and rep[1].startswith(ERR_PREFIXES)


class Tracker:
    """Every value sent: acknowledged ones, and ones whose write failed. Holds the
    connection (self.c); a connection the server closes instead of replying is
    counted (self.closed), its unanswered writes count as failed, and a new one is
    opened."""

    def __init__(self, prefix, rng, srv):
        self.prefix = prefix
        self.r = rng
        self.srv = srv
        self.c = None
        self.acked = {}
        self.failed = {}
        self.n = 0
        self.ok_after_error = 0
        self.errors = []
        self.closed = 0

    def connect(self):
        if self.c:
            self.c.close()
        self.c = self.srv.conn()
        return self.c

    def write(self, count, batch=4):
        """Writes `count` keys in pipelined batches; returns (ok, err) counts."""
        ok = err = 0
        done = 0
        while done < count:
            cmds = []
            for _ in range(min(batch, count - done)):
                k = b'%s:%d' % (self.prefix, self.n)
                self.n += 1
                v = os.urandom(VLEN)
                cmds.append(['SET', k, v])
            try:
                reps = self.c.pipeline(cmds)
            except (OSError, EOFError):
                self.closed += 1
                reps = None
                self.connect()
            for i, cmd in enumerate(cmds):
                rep = reps[i] if reps else ('closed',)
                if rep == ('simple', b'OK'):
                    self.acked[cmd[1]] = cmd[2]
                    ok += 1
                else:
                    self.failed[cmd[1]] = cmd[2]
                    self.errors.append(rep)
                    err += 1
            done += len(cmds)
        return ok, err

    def fill_until_errors(self, max_keys, need_errors=20):
        """Writes until need_errors writes in a row failed (or max_keys)."""
        in_row = 0
        while self.n < max_keys and in_row < need_errors:
            ok, err = self.write(4)
            in_row = 0 if ok else in_row + err
            if ok and self.failed:
                self.ok_after_error += ok
        return in_row >= need_errors

    def check_reads(self, h, label, sample=200):
        c = self.c
        keys = self.r.sample(sorted(self.acked), min(sample, len(self.acked)))
        reps = c.pipeline([['GET', k] for k in keys]) if keys else []
        wrong = [k for k, r in zip(keys, reps) if r != ('bulk', self.acked[k])]
        h.check('%s: %d acknowledged keys read back' % (label, len(keys)), not wrong,
                '%d wrong, first %r -> %r' % (len(wrong), wrong[:1],
                                              reps[keys.index(wrong[0])][:1] if wrong else ''))

    def verify_all(self, h, label):
        c = self.c
        keys = sorted(self.acked)
        bad = []
        for i in range(0, len(keys), 200):
            part = keys[i:i + 200]
            for k, r in zip(part, c.pipeline([['GET', k] for k in part])):
                if r != ('bulk', self.acked[k]):
                    bad.append(k)
        h.check('%s: all %d acknowledged values intact' % (label, len(keys)), not bad,
                '%d lost or wrong, e.g. %r' % (len(bad), bad[:3]))
        fk = sorted(self.failed)
        garbled = []
        present = 0
        for i in range(0, len(fk), 200):
            part = fk[i:i + 200]
            for k, r in zip(part, c.pipeline([['GET', k] for k in part])):
                if r[0] == 'bulk':
                    present += 1
                    if r[1] != self.failed[k]:
                        garbled.append(k)
                elif r[0] != 'nullbulk':
                    garbled.append(k)
        h.check('%s: %d keys whose write failed are absent or exact (%d present)'
                % (label, len(fk), present), not garbled, garbled[:3])
        return present


def wait_write_ok(c, timeout):
    """Retries a small SET until +OK; returns seconds taken or None."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = c.call('SET', 'probe', 'p')
        if r == ('simple', b'OK'):
            return time.time() - t0
        time.sleep(0.2)
    return None


def write_status(c):
    return info(c, 'persistence').get('aof_last_write_status')


def write_error_checks(h, t, label, first_err_index):
    """The replies of the writes that failed since first_err_index."""
    errs = t.errors[first_err_index:]
    h.check('%s: the server replies to a failed write (never closes the connection)' % label,
            t.closed == 0, '%d connections closed instead of a reply' % t.closed)
    wrong = [e for e in errs if e != ('closed',) and not is_write_error(e)]
    h.check('%s: every failed write answers MISCONF or an OOM-like error' % label, not wrong,
            wrong[:3])
    replied = [e for e in errs if e != ('closed',)]
    if replied:
        print('%s: %r' % (label, replied[0]), flush=True)


def recover(h, t, label, kvd, must_without_restart):
    """After space returns: waits for writes to succeed; on kvd then tries DEBUG
    ENGINE-REOPEN, then a restart. Returns how it recovered, or None."""
    took = wait_write_ok(t.c, 10 if must_without_restart else 3)
    if must_without_restart:
        h.check('%s: writes succeed again without a restart or reopen once space returns'
                % label, took is not None,
                'still %r after 10 s' % (t.c.call('SET', 'probe', 'p'),) if took is None else '')
    if took is not None:
        print('%s: writes recovered by themselves %.1f s after space returned' % (label, took),
              flush=True)
        return 'by itself'
    if kvd:
        r = t.c.call('DEBUG', 'ENGINE-REOPEN')
        took = wait_write_ok(t.c, 5)
        print('%s: DEBUG ENGINE-REOPEN -> %r; writes %s' %
              (label, r, 'recovered' if took is not None else 'still fail'), flush=True)
        if took is not None:
            return 'DEBUG ENGINE-REOPEN'
    t.srv.kill9()
    t.srv.start()
    t.connect()
    took = wait_write_ok(t.c, 10)
    h.check('%s: writes succeed after a restart' % label, took is not None)
    print('%s: writes recovered after a restart' % label, flush=True)
    return 'restart' if took is not None else None


def case_tmpfs(h, a, wd, skipped):
    mnt = wd.sub('disk')
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mnt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        skipped.append('tmpfs: mount refused (%s)' % r.stdout.decode(errors='replace').strip())
        return
    wd.mounts.append(mnt)
    datadir = os.path.join(mnt, 'data')
    os.makedirs(datadir)
    redis = 'redis-server' in a.server
    srv = PServer(a.server, datadir, fsync='everysec' if redis else 'always', name='tmpfs')
    srv.logpath = os.path.join(wd.path, 'tmpfs.log')  # the log must not fill the disk
    t = Tracker(b'full', random.Random(2), srv)
    try:
        srv.start()
        c = t.connect()
        full = t.fill_until_errors(max_keys=16000)
        h.check('tmpfs: writes fail once the 32 MB disk is full', full,
                '%d keys written, no run of errors' % t.n)
        if not full:
            return
        print('tmpfs: %d acknowledged, %d failed, %d OK after the first error'
              % (len(t.acked), len(t.failed), t.ok_after_error), flush=True)
        write_error_checks(h, t, 'tmpfs', 0)
        c = t.c
        h.eq('tmpfs: aof_last_write_status while full', write_status(c), 'err')
        # Redis answers PING with MISCONF too (it counts as a write on a master)
        r = c.call('PING')
        h.check('tmpfs: PING while full answers PONG or MISCONF',
                r == ('simple', b'PONG') or is_write_error(r), r)
        t.check_reads(h, 'tmpfs: while full')
        h.check('tmpfs: DBSIZE while full', c.call('DBSIZE')[0] == 'int')
        # space comes back
        r = subprocess.run(['mount', '-o', 'remount,size=256m', mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        h.check('tmpfs: remount to 256 MB', r.returncode == 0, r.stdout)
        how = recover(h, t, 'tmpfs', not redis, must_without_restart=True)
        if how is not None:
            h.eq('tmpfs: aof_last_write_status after recovery', write_status(t.c), 'ok')
            ok, err = t.write(300)
            h.check('tmpfs: 300 more writes after recovery', err == 0, '%d failed' % err)
        srv.kill9()
        srv.start()
        c = t.connect()
        present = t.verify_all(h, 'tmpfs: after SIGKILL and restart')
        h.eq('tmpfs: DBSIZE after restart', c.call('DBSIZE'),
             ('int', len(t.acked) + present + (1 if how is not None else 0)))
        c.close()
        rc = srv.stop()
        h.check('tmpfs: SIGTERM exits with status 0', rc == 0, 'status %r' % rc)
        rep = srv.sanitizer_report()
        h.check('tmpfs: no sanitizer report', rep is None, rep)
    finally:
        srv.kill9()


def case_fault(h, a, wd, skipped):
    if 'redis-server' in a.server:
        skipped.append('fault: DEBUG ENGINE-FAULT is kvd\'s (no such fault layer in Redis)')
        return
    srv = PServer(a.server, wd.sub('fault'), fsync='always', name='fault')
    t = Tracker(b'flt', random.Random(3), srv)
    try:
        srv.start()
        t.connect()
        ok, err = t.write(500)
        h.check('fault: 500 writes before any fault', err == 0, '%d failed' % err)
        for fault in ('nospace', 'fail-write', 'fail-sync'):
            r = t.c.call('DEBUG', 'ENGINE-FAULT', fault)
            if not h.eq('fault: DEBUG ENGINE-FAULT %s' % fault, r, ('simple', b'OK')):
                continue
            t.closed = 0
            first = len(t.errors)
            ok, err = t.write(20, batch=1)
            h.check('fault %s: writes are refused, never +OK' % fault, ok == 0 and err == 20,
                    '%d +OK, %d errors' % (ok, err))
            write_error_checks(h, t, 'fault %s' % fault, first)
            h.eq('fault %s: aof_last_write_status' % fault, write_status(t.c), 'err')
            t.check_reads(h, 'fault %s' % fault)
            r = t.c.call('PING')
            h.check('fault %s: PING answers PONG or MISCONF' % fault,
                    r == ('simple', b'PONG') or is_write_error(r), r)
            h.eq('fault %s: DEBUG ENGINE-FAULT off' % fault,
                 t.c.call('DEBUG', 'ENGINE-FAULT', 'off'), ('simple', b'OK'))
            how = recover(h, t, 'fault %s' % fault, True,
                          must_without_restart=fault == 'nospace')
            if how is None:
                continue
            h.eq('fault %s: aof_last_write_status after recovery' % fault,
                 write_status(t.c), 'ok')
            ok, err = t.write(100)
            h.check('fault %s: 100 writes after recovery' % fault, err == 0, '%d failed' % err)
        srv.kill9()
        srv.start()
        t.connect()
        t.verify_all(h, 'fault: after SIGKILL and restart')
        t.c.close()
        rc = srv.stop()
        h.check('fault: SIGTERM exits with status 0', rc == 0, 'status %r' % rc)
        rep = srv.sanitizer_report()
        h.check('fault: no sanitizer report', rep is None, rep)
    finally:
        srv.kill9()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', required=True)
    ap.add_argument('--only', default='tmpfs,fault')
    ap.add_argument('--asan', action='store_true')
    a = ap.parse_args()
    h = Harness('persist_disk')
    skipped = []
    t0 = time.time()
    for name, fn in (('tmpfs', case_tmpfs), ('fault', case_fault)):
        if name not in a.only.split(','):
            continue
        wd = Workdir('disk-' + name)
        try:
            fn(h, a, wd, skipped)
        except Exception as e:  # noqa: BLE001
            h.check('%s case ran to the end' % name, False, '%s: %s' % (type(e).__name__, e))
        finally:
            wd.close()
    print('persist_disk: %.1f s' % (time.time() - t0))
    return finish(h, len(skipped), skipped)


if __name__ == '__main__':
    sys.exit(main())
