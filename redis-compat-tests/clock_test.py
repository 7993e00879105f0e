#!/usr/bin/python3
"""redis-compat-tests/clock_test.py: the node's one clock and its identity, from
outside (kvd only: Redis has neither directive).

  offset   CONFIG SET debug-clock-offset-ms shifts TIME, and TTL arithmetic: a key
           set with EX 100 under a +1 h offset has its PTTL measured on the
           shifted clock (about 100 s), its absolute EXPIRETIME is an hour later
           than without the offset, and a key whose expire-at lies between the
           real and the shifted time is expired at once. Back to 0, TIME is real.
  startup  --debug-clock-offset-ms on the command line shifts TIME from the start.
  nodeid   INFO server shows node_id (32 hex digits); persistent mode keeps it in
           dir/node-id across a restart; cache mode takes a fresh one per start
           (and writes no file).
Both modes. Usage: clock_test.py --server BIN. Ends with "N passed, M failed".
"""
import argparse
import os
import re
import sys
import time

from persist_lib import PServer, Workdir, info
from respclient import Harness

H = Harness('clock')
HOUR_MS = 3600 * 1000


def time_ms(c):
    r = c.call('TIME')
    return int(r[1][0][1]) * 1000 + int(r[1][1][1]) // 1000


def t_offset(binary, mode):
    wd = Workdir('clock')
    s = PServer(binary, wd.sub('d'), fsync='everysec',
                extra=['--mode', mode], name='clock-' + mode)
    try:
        s.start()
        c = s.conn()
        real = int(time.time() * 1000)
        H.check('%s: TIME is the real clock' % mode, abs(time_ms(c) - real) < 5000)
        H.eq('%s: CONFIG SET offset' % mode,
             c.call('CONFIG', 'SET', 'debug-clock-offset-ms', str(HOUR_MS)), ('simple', b'OK'))
        H.eq('%s: CONFIG GET offset' % mode,
             c.call('CONFIG', 'GET', 'debug-clock-offset-ms'),
             ('array', [('bulk', b'debug-clock-offset-ms'), ('bulk', str(HOUR_MS).encode())]))
        real = int(time.time() * 1000)
        t = time_ms(c)
        H.check('%s: TIME is an hour ahead' % mode, abs(t - real - HOUR_MS) < 5000, t - real)
        c.call('SET', 'k', 'v', 'EX', '100')
        et = c.call('PEXPIRETIME', 'k')
        H.check('%s: EX 100 counts from the shifted clock' % mode,
                et[0] == 'int' and abs(et[1] - (real + HOUR_MS + 100000)) < 5000, et)
        pttl = c.call('PTTL', 'k')
        H.check('%s: PTTL on the shifted clock' % mode,
                pttl[0] == 'int' and 90000 < pttl[1] <= 100000, pttl)
        # expire-at 30 minutes from now in real time: already past on the shifted clock
        H.eq('%s: SET z' % mode, c.call('SET', 'z', 'v'), ('simple', b'OK'))
        c.call('PEXPIREAT', 'z', str(real + HOUR_MS // 2))
        H.eq('%s: a past expire-at on the shifted clock deletes' % mode,
             c.call('EXISTS', 'z'), ('int', 0))
        c.call('SET', 'y', 'v', 'PXAT', str(real + HOUR_MS + 60000))
        H.eq('%s: y lives on the shifted clock' % mode, c.call('EXISTS', 'y'), ('int', 1))
        H.eq('%s: CONFIG SET offset back' % mode,
             c.call('CONFIG', 'SET', 'debug-clock-offset-ms', '-' + str(HOUR_MS)),
             ('simple', b'OK'))
        real = int(time.time() * 1000)
        t = time_ms(c)
        H.check('%s: TIME is an hour behind' % mode, abs(real - t - HOUR_MS) < 5000, real - t)
        pttl = c.call('PTTL', 'k')
        H.check('%s: PTTL grows by two hours going back' % mode,
                pttl[0] == 'int' and 2 * HOUR_MS + 90000 < pttl[1] <= 2 * HOUR_MS + 100000, pttl)
        # writes keep working, and reading back gives the last one
        for i in range(50):
            c.call('SET', 'w', str(i))
        H.eq('%s: the last write wins after going back' % mode, c.call('GET', 'w'),
             ('bulk', b'49'))
        H.check('%s: out-of-range offset refused' % mode,
                c.call('CONFIG', 'SET', 'debug-clock-offset-ms', '1' + '0' * 15)[0] == 'error')
        c.call('CONFIG', 'SET', 'debug-clock-offset-ms', '0')
        H.check('%s: TIME is real again' % mode,
                abs(time_ms(c) - int(time.time() * 1000)) < 5000)
        c.close()
        H.eq('%s: clean stop' % mode, s.stop(), 0)
    finally:
        s.kill9()
        wd.close()


def t_startup(binary):
    wd = Workdir('clock')
    s = PServer(binary, wd.sub('d'), fsync='everysec',
                extra=['--mode', 'cache', '--debug-clock-offset-ms', str(-HOUR_MS)],
                name='clock-startup')
    try:
        s.start()
        c = s.conn()
        d = int(time.time() * 1000) - time_ms(c)
        H.check('startup flag: TIME an hour behind', abs(d - HOUR_MS) < 5000, d)
        c.close()
        s.stop()
    finally:
        s.kill9()
        wd.close()


def t_nodeid(binary):
    wd = Workdir('clock')
    d = wd.sub('p')
    s = PServer(binary, d, fsync='everysec', name='nodeid')
    try:
        s.start()
        c = s.conn()
        nid = info(c, 'server').get('node_id', '')
        c.close()
        H.check('persistent: node_id is 32 hex digits', re.fullmatch('[0-9a-f]{32}', nid), nid)
        with open(os.path.join(d, 'node-id')) as f:
            H.eq('persistent: dir/node-id holds it', f.read().strip(), nid)
        s.stop()
        s.start()
        c = s.conn()
        H.eq('persistent: node_id survives a restart', info(c, 'server').get('node_id'), nid)
        c.close()
        s.stop()
        dc = wd.sub('c')
        ids = []
        for _ in range(2):
            s2 = PServer(binary, dc, fsync='everysec', extra=['--mode', 'cache'], name='nodeid-c')
            try:
                s2.start()
                c = s2.conn()
                ids.append(info(c, 'server').get('node_id', ''))
                c.close()
                s2.stop()
            finally:
                s2.kill9()
        H.check('cache: node_id is 32 hex digits', re.fullmatch('[0-9a-f]{32}', ids[0]), ids)
        H.check('cache: a fresh node_id per start', ids[0] != ids[1], ids)
        H.check('cache: no node-id file written', not os.path.exists(os.path.join(dc, 'node-id')))
    finally:
        s.kill9()
        wd.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', required=True)
    a = ap.parse_args()
    if 'redis-server' in os.path.basename(a.server):
        print('0 passed, 0 failed (kvd only)')
        return 0
    for mode in ('cache', 'persistent'):
        H.case(t_offset, a.server, mode)
    H.case(t_startup, a.server)
    H.case(t_nodeid, a.server)
    return H.summary()


if __name__ == '__main__':
    sys.exit(main())
