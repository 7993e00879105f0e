#!/usr/bin/python3
"""redis-compat-tests/redispy_test.py: the server driven by redis-py (Debian's
python3-redis; run with /usr/bin/python3).

Usage: redispy_test.py PORT AUTH_PORT AUTH_PASSWORD (the main server at COMPAT_HOST,
its connections spread over COMPAT_POOL when set: respclient.py). Covers the connect handshake
(client_name, db, password), every family through redis-py's own methods, pipelines
(transactional and not), r.transaction() with WATCH, scan_iter/hscan_iter,
decode_responses, and that errors map to redis-py's exception classes. RESP3 runs
only when this redis-py supports protocol=3 (5.0 and later); 4.x speaks RESP2.
Ends with "N passed, M failed".
"""
import os
import sys
import threading
import time

import redis

from respclient import CLUSTER, CLUSTER_WATCH, POOL, Harness, fresh_db, next_addr, refused

PORT = int(sys.argv[1])
AUTH_PORT = int(sys.argv[2])
AUTH_PW = sys.argv[3]
H = Harness('redis-py')
VERSION = tuple(int(x) for x in redis.__version__.split('.')[:2])


DB = [0]  # the database client() selects: fresh() moves it when FLUSHALL is refused


def client(**kw):
    """A client of the main server (the pool's next node), in DB unless db= is given;
    with port=AUTH_PORT one of run.sh's password server on 127.0.0.1."""
    port = kw.pop('port', None)
    if port is None:
        host, port = next_addr(PORT)
        kw.setdefault('db', DB[0])
    else:
        host = '127.0.0.1'
    return redis.Redis(host=host, port=port, socket_timeout=10, **kw)


def fresh():
    """A client on an empty key space: FLUSHALL, or where the server refuses it (a
    multi-node cluster) a database no test used yet."""
    if refused('FLUSHALL'):
        DB[0] = fresh_db()
        return client()
    r = client()
    r.flushall()
    return r


def port_of(r):
    return r.connection_pool.connection_kwargs['port']


def raises(what, exc, fn, *args, text=None, **kw):
    try:
        fn(*args, **kw)
    except exc as e:
        if text is not None:
            return H.eq(what + ' message', str(e), text)
        return H.check(what, True)
    except Exception as e:  # noqa: BLE001
        return H.check(what, False, 'raised %s: %s, want %s' % (type(e).__name__, e, exc.__name__))
    return H.check(what, False, 'no exception, want %s' % exc.__name__)


def t_handshake():
    r = client(client_name='pytest-1', db=3)
    H.eq('client_name via CLIENT SETNAME', r.client_getname(), 'pytest-1')
    H.check('ping', r.ping() is True)
    r.set('dbkey', 'x')
    H.eq('db=3 selected at connect', client(db=0).exists('dbkey'), 0)
    H.eq('db=3 sees the key', r.get('dbkey'), b'x')
    H.eq('client_info db', r.client_info().get('db'), 3)
    H.check('client_id is an int', isinstance(r.client_id(), int))
    lst = r.client_list()
    H.check('client_list parsed', any(c.get('name') == 'pytest-1' for c in lst), lst)
    H.eq('echo', r.echo('hey'), b'hey')
    fresh()
    s = client(decode_responses=True)
    s.set('d', 'text é')
    H.eq('decode_responses', s.get('d'), 'text é')
    H.eq('decode_responses hgetall', (s.hset('dh', mapping={'a': '1'}), s.hgetall('dh'))[1], {'a': '1'})


def t_strings():
    r = fresh()
    H.check('set', r.set('a', 'v') is True)
    H.eq('set nx existing', r.set('a', 'w', nx=True), None)
    H.check('set xx', r.set('a', 'w', xx=True) is True)
    H.eq('set get', r.set('a', 'z', get=True), b'w')
    r.set('e', 'v', ex=100)
    H.check('ttl after ex', 98 <= r.ttl('e') <= 100)
    r.set('e', 'v', px=50000)
    H.check('pttl after px', 48000 <= r.pttl('e') <= 50000)
    r.set('e', 'v2', keepttl=True)
    H.check('keepttl', r.ttl('e') > 0)
    r.set('e', 'v', exat=int(time.time()) + 500)
    H.check('exat', 498 <= r.ttl('e') <= 500)
    H.check('setnx', r.setnx('n', '1') is True and r.setnx('n', '2') is False)
    H.check('setex', r.setex('x', 100, 'v') is True and 98 <= r.ttl('x') <= 100)
    H.check('psetex', r.psetex('x', 100000, 'v') is True and r.pttl('x') > 90000)
    H.eq('getset', r.getset('a', 'q'), b'z')
    H.eq('getdel', r.getdel('a'), b'q')
    r.set('g', 'v')
    H.eq('getex ex', r.getex('g', ex=100), b'v')
    H.check('getex set ttl', r.ttl('g') > 90)
    H.eq('getex persist', (r.getex('g', persist=True), r.ttl('g'))[1], -1)
    H.check('mset', r.mset({'m1': 'a', 'm2': 'b'}) is True)
    H.eq('mget', r.mget('m1', 'none', 'm2'), [b'a', None, b'b'])
    H.eq('msetnx', r.msetnx({'m1': 'x', 'm3': 'y'}), False)
    H.eq('append', r.append('ap', 'abc'), 3)
    H.eq('strlen', r.strlen('ap'), 3)
    H.eq('getrange', r.getrange('ap', 1, -1), b'bc')
    H.eq('substr', r.substr('ap', 0, 0), b'a')
    H.eq('setrange', r.setrange('ap', 1, 'ZZ'), 3)
    H.eq('incr', r.incr('c'), 1)
    H.eq('incrby', r.incrby('c', 41), 42)
    H.eq('decr', r.decr('c'), 41)
    H.eq('decrby', r.decrby('c', 40), 1)
    H.eq('incrbyfloat', r.incrbyfloat('f', 2.5), 2.5)
    raises('incr on text -> ResponseError', redis.ResponseError, r.incr, 'ap',
           text='value is not an integer or out of range')
    raises('wrong arity -> ResponseError', redis.ResponseError, r.execute_command, 'GET',
           text="wrong number of arguments for 'get' command")
    raises('unknown command -> ResponseError', redis.ResponseError, r.execute_command, 'NOPE')
    raises('set a dict -> DataError', redis.DataError, r.set, 'k', {'a': 1})
    r.hset('h', 'f', 'v')
    raises('WRONGTYPE -> ResponseError', redis.ResponseError, r.get, 'h',
           text='WRONGTYPE Operation against a key holding the wrong kind of value')
    H.eq('object encoding', (r.set('i', 123), r.object('encoding', 'i'))[1], b'int')
    H.check('memory usage', r.memory_usage('ap') > 0)
    big = b'\x00\r\n' * 350000
    r.set('big', big)
    H.eq('1 MB binary value', r.get('big'), big)


def t_keys_expire():
    r = fresh()
    r.mset({'u:%d' % i: i for i in range(500)})
    r.hset('hh', mapping={'f%d' % i: i for i in range(700)})
    why = refused('DBSIZE', 'SCAN', 'KEYS', 'RANDOMKEY', 'FLUSHDB')
    if why:
        H.skip('dbsize, scan_iter, keys, randomkey, flushdb', why)
    else:
        H.eq('dbsize', r.dbsize(), 501)
        H.eq('scan_iter match', sorted(r.scan_iter(match='u:1??', count=50)),
             sorted(('u:%d' % i).encode() for i in range(100, 200)))
        H.eq('scan_iter all', len(set(r.scan_iter(count=10))), 501)
        H.eq('scan_iter _type', list(r.scan_iter(_type='hash')), [b'hh'])
    H.eq('hscan_iter', dict(r.hscan_iter('hh', count=20)),
         {('f%d' % i).encode(): str(i).encode() for i in range(700)})
    H.eq('hscan_iter match', sorted(k for k, _ in r.hscan_iter('hh', match='f69?')),
         sorted(('f69%d' % i).encode() for i in range(10)))
    if not why:
        H.eq('keys', sorted(r.keys('u:4?')), sorted(('u:4%d' % i).encode() for i in range(10)))
    H.eq('exists', r.exists('u:1', 'u:2', 'none'), 2)
    H.eq('delete', r.delete('u:1', 'none'), 1)
    H.eq('unlink', r.unlink('u:2'), 1)
    H.eq('type', r.type('hh'), b'hash')
    H.check('rename', r.rename('u:3', 'r3') is True)
    H.check('renamenx', r.renamenx('u:4', 'r3') is False)
    raises('rename missing -> ResponseError', redis.ResponseError, r.rename, 'none', 'x',
           text='no such key')
    H.check('copy', r.copy('r3', 'r4') is True and r.get('r4') == b'3')
    H.check('copy replace', r.copy('u:5', 'r4', replace=True) is True and r.get('r4') == b'5')
    other_db = fresh_db() if refused('FLUSHALL') else 1
    H.check('copy to db', r.copy('u:5', 'u:5', destination_db=other_db) is True)
    H.eq('touch', r.touch('r3', 'r4', 'none'), 2)
    if not why:
        H.check('randomkey', r.exists(r.randomkey()) == 1)
    H.check('expire nx', r.expire('r3', 100, nx=True) is True)
    H.check('expire nx again', r.expire('r3', 100, nx=True) is False)
    H.check('expire gt', r.expire('r3', 200, gt=True) is True)
    H.check('expire lt', r.expire('r3', 300, lt=True) is False)
    H.check('expire xx', r.expire('r4', 300, xx=True) is False)
    H.check('pexpire', r.pexpire('r4', 300000) is True and r.pttl('r4') > 290000)
    at = int(time.time()) + 1000
    H.check('expireat', r.expireat('r4', at) is True)
    H.eq('expiretime', r.expiretime('r4'), at)
    H.check('pexpireat', r.pexpireat('r4', at * 1000 + 5) is True)
    H.eq('pexpiretime', r.execute_command('PEXPIRETIME', 'r4'), at * 1000 + 5)
    H.check('persist', r.persist('r4') is True and r.ttl('r4') == -1)
    if not why:
        H.check('flushdb', r.flushdb() is True and r.dbsize() == 0)


def t_hashes():
    r = fresh()
    H.eq('hset mapping', r.hset('h', mapping={'a': 1, 'b': 2}), 2)
    H.eq('hset field', r.hset('h', 'c', 3), 1)
    H.eq('hsetnx', r.hsetnx('h', 'a', 9), False)
    H.check('hmset', r.execute_command('HMSET', 'h', 'd', 4) is True)
    H.eq('hget', r.hget('h', 'a'), b'1')
    H.eq('hmget', r.hmget('h', ['a', 'zz', 'd']), [b'1', None, b'4'])
    H.eq('hgetall', r.hgetall('h'), {b'a': b'1', b'b': b'2', b'c': b'3', b'd': b'4'})
    H.eq('hkeys', sorted(r.hkeys('h')), [b'a', b'b', b'c', b'd'])
    H.eq('hvals', sorted(r.hvals('h')), [b'1', b'2', b'3', b'4'])
    H.eq('hlen', r.hlen('h'), 4)
    H.eq('hstrlen', r.hstrlen('h', 'a'), 1)
    H.check('hexists', r.hexists('h', 'a') is True and r.hexists('h', 'z') is False)
    H.eq('hincrby', r.hincrby('h', 'a', 5), 6)
    H.eq('hincrbyfloat', r.hincrbyfloat('h', 'b', 0.5), 2.5)
    H.eq('hdel', r.hdel('h', 'c', 'zz'), 1)
    H.check('hrandfield', r.hrandfield('h') in (b'a', b'b', b'd'))
    H.eq('hrandfield count', sorted(r.hrandfield('h', 5)), [b'a', b'b', b'd'])
    pairs = r.hrandfield('h', 2, withvalues=True)
    H.check('hrandfield withvalues', len(pairs) == 4 and
            all(r.hget('h', k) == v for k, v in zip(pairs[0::2], pairs[1::2])), pairs)
    raises('hincrby on float -> ResponseError', redis.ResponseError, r.hincrby, 'h', 'b', 1,
           text='hash value is not an integer')


def t_pipelines():
    r = fresh()
    p = r.pipeline(transaction=False)
    for i in range(1000):
        p.set('p%d' % i, i)
        p.incr('p%d' % i)
    res = p.execute()
    H.eq('pipeline results', res, [x for i in range(1000) for x in (True, i + 1)])
    p = r.pipeline(transaction=False)
    p.set('s', 'text')
    p.incr('s')
    p.get('s')
    res = p.execute(raise_on_error=False)
    H.check('pipeline keeps errors in place', res[0] is True and isinstance(res[1], redis.ResponseError)
            and res[2] == b'text', res)
    p = r.pipeline(transaction=True)
    p.set('t', 1).incr('t').get('t')
    H.eq('transactional pipeline', p.execute(), [True, 2, b'2'])
    p = r.pipeline(transaction=True)
    p.set('t', 1)
    p.execute_command('SET', 't')  # arity error: queued -> EXECABORT
    raises('EXECABORT -> ResponseError', redis.ResponseError, p.execute)
    H.eq('EXECABORT applied nothing', r.get('t'), b'2')
    p = r.pipeline(transaction=True)
    p.set('t', 5).hset('t', 'f', 'v').get('t')
    try:
        p.execute()
        H.check('error inside EXEC raises', False)
    except redis.ResponseError as e:
        H.check('error inside EXEC raises WRONGTYPE', 'WRONGTYPE' in str(e), e)
    H.eq('error inside EXEC applied the rest', r.get('t'), b'5')

    if CLUSTER:
        H.skip('transaction() and WATCH conflicts', CLUSTER_WATCH)
        return

    def incr_twice(pipe):
        v = int(pipe.get('ctr') or 0)
        pipe.multi()
        pipe.set('ctr', v + 2)
    H.eq('transaction()', r.transaction(incr_twice, 'ctr'), [True])
    H.eq('transaction() value', r.get('ctr'), b'2')
    # a WATCH conflict: another client writes between WATCH and EXEC
    other = client()
    attempts = []

    def conflicting(pipe):
        attempts.append(1)
        v = int(pipe.get('ctr'))
        if len(attempts) == 1:
            other.set('ctr', 100)
        pipe.multi()
        pipe.set('ctr', v + 1)
    r.transaction(conflicting, 'ctr')
    H.eq('transaction() retried after a conflict', len(attempts), 2)
    H.eq('transaction() result after retry', r.get('ctr'), b'101')
    with r.pipeline() as pipe:
        pipe.watch('ctr')
        other.set('ctr', 7)
        pipe.multi()
        pipe.set('ctr', 8)
        raises('WatchError', redis.WatchError, pipe.execute)
    H.eq('WatchError left the other write', r.get('ctr'), b'7')
    if POOL and os.environ.get('COMPAT_WATCH_OPTIMISTIC') == '1':
        # the threads' connections are on different nodes of a cluster
        H.skip('WATCH-based increments from 4 threads through different nodes',
               'a kvd cluster\'s WATCH is optimistic across nodes: an EXEC through another '
               'node may commit between the check and the write (README "Cluster mode")')
        return
    # concurrent increments through WATCH from threads: none lost
    def worker():
        c = client()
        for _ in range(50):
            c.transaction(lambda p: (lambda v: (p.multi(), p.set('cc', v + 1)))(int(p.get('cc') or 0)),
                          'cc')
    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    H.eq('WATCH-based increments from 4 threads', r.get('cc'), b'200')


def t_server():
    r = client()
    info = r.info()
    H.check('info parsed', 'redis_version' in info and info.get('tcp_port') == port_of(r),
            info.get('tcp_port'))
    H.check('info section', 'used_memory' in r.info('memory'))
    r.set('a', 1)
    if refused('DBSIZE'):
        H.skip('info keyspace against dbsize', refused('DBSIZE'))
    else:
        db = 'db%d' % DB[0]
        H.eq('info keyspace', r.info('keyspace').get(db, {}).get('keys'), r.dbsize())
    cfg = r.config_get('maxmemory*')
    H.check('config_get', 'maxmemory' in cfg and 'maxmemory-policy' in cfg, cfg)
    H.check('config_set', r.config_set('slowlog-max-len', 200) is True and
            r.config_get('slowlog-max-len') == {'slowlog-max-len': '200'})
    raises('config_set unknown -> ResponseError', redis.ResponseError, r.config_set, 'nosuch', 1)
    t = r.time()
    H.check('time', abs(t[0] - time.time()) < 5)
    H.check('command_count', r.command_count() > 50)
    H.eq('command_getkeys', r.command_getkeys('MSET', 'a', '1', 'b', '2'), ['a', 'b'])
    H.check('command info', 'get' in r.command())
    H.check('slowlog_reset', r.slowlog_reset() is True and r.slowlog_len() == 0)
    r.config_set('slowlog-log-slower-than', 0)
    r.set('slow', 'x')
    r.config_set('slowlog-log-slower-than', 10000)
    log = r.slowlog_get(10)
    H.check('slowlog_get parsed', any(e['command'] == b'SET slow x' for e in log), log)
    H.check('lastsave', r.lastsave() is not None)


def t_auth():
    raises('no password -> AuthenticationError', redis.AuthenticationError,
           client(port=AUTH_PORT).get, 'a')
    # redis-py 4.x leaves WRONGPASS unmapped (a ResponseError with the code kept);
    # 5.x maps it to AuthenticationError
    raises('wrong password', redis.AuthenticationError if VERSION >= (5, 0) else redis.ResponseError,
           client(port=AUTH_PORT, password='wrong').get, 'a',
           text=None if VERSION >= (5, 0) else
           'WRONGPASS invalid username-password pair or user is disabled.')
    H.check('password', client(port=AUTH_PORT, password=AUTH_PW).ping() is True)
    H.check('username + password', client(port=AUTH_PORT, username='default', password=AUTH_PW).ping())
    if VERSION >= (5, 0):
        r = client(port=AUTH_PORT, password=AUTH_PW, protocol=3)
        H.check('RESP3 with AUTH', r.ping() is True)


def t_resp3():
    if VERSION < (5, 0):
        return  # redis-py 4.x has no RESP3
    r = fresh()
    r = client(protocol=3)
    r.hset('h', mapping={'a': '1'})
    H.eq('RESP3 hgetall', r.hgetall('h'), {b'a': b'1'})
    H.eq('RESP3 get missing', r.get('none'), None)
    H.check('RESP3 config_get', 'maxmemory' in r.config_get('maxmemory'))


def main():
    print('redis-py %s' % redis.__version__)
    for t in (t_handshake, t_strings, t_keys_expire, t_hashes, t_pipelines, t_server, t_auth, t_resp3):
        H.case(t)
    return H.summary()


if __name__ == '__main__':
    sys.exit(main())
