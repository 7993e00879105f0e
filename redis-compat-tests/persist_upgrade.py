#!/usr/bin/python3
"""redis-compat-tests/persist_upgrade.py: a data dir written by an earlier kvd opens.

tests/fixtures/persist-48efe24/ was written by kvd 48efe24, before every value
carried a version (writer node id in the engine's entries, tombstones with
versions, big-hash fields under the key's token). Its README lists the contents.
This test copies it to a temp dir, starts the kvd under test on it, and checks:
  - every key, type, value and TTL of the fixture, in db 0 and db 3; deleted and
    expired keys absent; DBSIZE exact;
  - writes after the upgrade (a new value, a big-hash field changed and deleted,
    a delete) and a SHUTDOWN then a SIGKILL restart keep old and new data;
  - the node id is created (INFO server node_id) and kept across restarts.
Usage: persist_upgrade.py --server BIN. Ends with "N passed, M failed".
"""
import argparse
import os
import shutil
import sys

from persist_lib import PServer, Workdir, info
from respclient import Harness

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures',
                       'persist-48efe24', 'data')


def fixture_state():
    """db -> {key: (type, value)}: what the fixture holds (see its README)."""
    db0 = {'str1': ('string', b'hello'), 'int1': ('string', b'12345'),
           'big1': ('string', b'x' * 5000), 'ttl1': ('string', b'v'),
           'small': ('hash', {b'f1': b'v1', b'f2': b'v2'})}
    big = {b'f%d' % i: b'v%d' % i for i in range(1, 600)}
    big[b'f1'] = b'changed'
    db0['bighash'] = ('hash', big)
    for i in range(51, 201):
        db0['k%d' % i] = ('string', b'val%d' % i)
    db0['k60'] = ('string', b'newval')
    db3 = {'db3key': ('string', b'v3'), 'counter': ('string', b'42')}
    return {0: db0, 3: db3}


def check_state(h, srv, state, when):
    c = srv.conn()
    for db, keys in state.items():
        c.call('SELECT', str(db))
        h.eq('%s: db %d DBSIZE' % (when, db), c.call('DBSIZE'), ('int', len(keys)))
        bad = []
        for k, (typ, val) in keys.items():
            t = c.call('TYPE', k)
            if t != ('simple', typ.encode()):
                bad.append((k, 'type', t))
                continue
            if typ == 'string':
                got = c.call('GET', k)
                if got != ('bulk', val):
                    bad.append((k, got[:1], len(got[1]) if len(got) > 1 else None))
            else:
                got = c.call('HGETALL', k)
                flat = got[1] if got[0] == 'array' else []
                pairs = {flat[i][1]: flat[i + 1][1] for i in range(0, len(flat), 2)}
                if pairs != val:
                    bad.append((k, 'hash of %d fields' % len(pairs)))
        h.check('%s: db %d every key, type and value as written' % (when, db), not bad, bad[:5])
    c.call('SELECT', '0')
    for k in ('gone1', 'past1', 'k1', 'k50'):
        h.eq('%s: %s absent' % (when, k), c.call('EXISTS', k), ('int', 0))
    h.eq('%s: ttl1 keeps its EXPIREAT' % when, c.call('EXPIRETIME', 'ttl1'),
         ('int', 4102444800))
    h.eq('%s: str1 has no TTL' % when, c.call('TTL', 'str1'), ('int', -1))
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--server', required=True)
    o = ap.parse_args()
    h = Harness('persist_upgrade')
    wd = Workdir('upgrade')
    data = os.path.join(wd.sub('node'), 'data')
    shutil.copytree(FIXTURE, data)
    srv = PServer(o.server, os.path.dirname(data), name='upgrade')
    try:
        srv.start()
        state = fixture_state()
        check_state(h, srv, state, 'opened')
        node_id = info(srv.conn(), 'server').get('node_id')
        h.check('a node id is created on the upgraded dir', node_id and len(node_id) == 32,
                node_id)
        c = srv.conn()
        c.call('SET', 'str1', 'after')
        c.call('HSET', 'bighash', 'f2', 'new2', 'f700', 'v700')
        c.call('HDEL', 'bighash', 'f3')
        c.call('DEL', 'k100')
        c.close()
        db0 = state[0]
        db0['str1'] = ('string', b'after')
        big = db0['bighash'][1]
        big[b'f2'] = b'new2'
        big[b'f700'] = b'v700'
        del big[b'f3']
        del db0['k100']
        check_state(h, srv, state, 'written')
        srv.stop(how='shutdown')
        srv.start()
        check_state(h, srv, state, 'after SHUTDOWN')
        srv.kill9()
        srv.start()
        check_state(h, srv, state, 'after SIGKILL')
        h.eq('the node id is kept across restarts', info(srv.conn(), 'server').get('node_id'),
             node_id)
    except Exception as e:  # noqa: BLE001 - a crash of the test is one failure
        h.check('the upgrade test ran to the end', False, '%s: %s' % (type(e).__name__, e))
    finally:
        srv.stop()
        wd.close()
    return h.summary()


if __name__ == '__main__':
    sys.exit(main())
