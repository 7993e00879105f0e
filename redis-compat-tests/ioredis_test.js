// redis-compat-tests/ioredis_test.js PORT AUTH_PORT AUTH_PASSWORD
//
// The server driven by ioredis (at COMPAT_HOST, each connection at the next member of
// COMPAT_POOL when set; commands in COMPAT_REFUSED skipped: harness.js target). ioredis 6 connects with HELLO 3 (falling back to
// RESP2 when the server refuses), then CLIENT SETNAME, SELECT, CLIENT SETINFO and an
// INFO ready check. Every group runs twice: protocol 3 and protocol 2. Covers every
// family, pipeline(), multi()/exec, WATCH, scanStream/hscanStream, errors and AUTH.
'use strict';
const Redis = require('ioredis');
const { Harness, target } = require('./harness');

const [port, authPort] = process.argv.slice(2, 4).map(Number);
const authPw = process.argv[4];
const H = new Harness('ioredis');
const version = require('ioredis/package.json').version;
const all = [];

let db = 0; // the database client() selects: fresh() moves it when FLUSHALL is refused

// A client of the main server (the pool's next member), in db unless opts.db; with
// opts.port (the password server) one of run.sh's server on 127.0.0.1.
function client(opts = {}) {
  const at = opts.port ? { host: '127.0.0.1', port: opts.port } : { ...target.nextAddr(port), db };
  const c = new Redis({
    ...at,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: true,
    connectTimeout: 5000,
    ...opts,
  });
  c.on('error', () => {});
  all.push(c);
  return c;
}
async function open(opts) {
  const c = client(opts);
  await c.connect();
  return c;
}
// A connected client on an empty key space: FLUSHALL, or where the server refuses
// it (a multi-node cluster) a database no group used yet.
async function fresh(opts) {
  if (target.refused('FLUSHALL')) {
    db = target.freshDb();
    return open(opts);
  }
  const c = await open(opts);
  await c.flushall();
  return c;
}
function streamAll(stream) {
  return new Promise((resolve, reject) => {
    const out = [];
    stream.on('data', (batch) => out.push(...batch));
    stream.on('end', () => resolve(out));
    stream.on('error', reject);
  });
}
const E_WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';

function suite(proto) {
  const P = (s) => `[resp${proto}] ${s}`;
  const opts = { protocol: proto };

  async function handshake() {
    const c = await open({ ...opts, connectionName: 'io-test', db: 6 });
    H.eq(P('status ready'), c.status, 'ready');
    H.eq(P('ping'), await c.ping(), 'PONG');
    H.eq(P('connectionName'), await c.client('GETNAME'), 'io-test');
    const info = await c.client('INFO');
    H.check(P('db selected at connect'), info.includes(' db=6 '), info);
    H.check(P(`speaks RESP${proto}`), new RegExp(`\\bresp=${proto}\\b`).test(info), info);
    if (process.env.COMPAT_TARGET === 'kvd') {
      H.check(P('CLIENT SETINFO lib-name recorded'), info.includes('lib-name=ioredis'), info);
    }
    await c.set('dbk', 'v');
    const c0 = await open(opts);
    H.eq(P('db isolation'), await c0.get('dbk'), null);
    if (!target.refused('FLUSHDB')) await c.flushdb();
    c.disconnect();
    c0.disconnect();
  }

  async function strings() {
    const c = await fresh(opts);
    H.eq(P('set'), await c.set('s', 'v'), 'OK');
    H.eq(P('get'), await c.get('s'), 'v');
    H.eq(P('get missing'), await c.get('nosuch'), null);
    H.eq(P('set NX'), await c.set('s', 'x', 'NX'), null);
    H.eq(P('set XX GET'), await c.set('s', 'w', 'XX', 'GET'), 'v');
    H.eq(P('set EX'), await c.set('e', 'v', 'EX', 100), 'OK');
    const ttl = await c.ttl('e');
    H.check(P('ttl'), ttl >= 98 && ttl <= 100, ttl);
    H.eq(P('set PX KEEPTTL'), await c.set('e', 'v2', 'KEEPTTL'), 'OK');
    H.check(P('ttl kept'), (await c.ttl('e')) > 90);
    H.eq(P('mset'), await c.mset({ a: '1', b: '2' }), 'OK');
    H.eq(P('mget'), await c.mget('a', 'nosuch', 'b'), ['1', null, '2']);
    H.eq(P('msetnx'), await c.msetnx('a', 'x', 'zz', 'y'), 0);
    H.eq(P('incr'), await c.incr('n'), 1);
    H.eq(P('incrby'), await c.incrby('n', 5), 6);
    H.eq(P('decr'), await c.decr('n'), 5);
    H.eq(P('decrby'), await c.decrby('n', 10), -5);
    H.eq(P('incrbyfloat'), await c.incrbyfloat('f', '3.5'), '3.5');
    H.eq(P('append'), await c.append('ap', 'abc'), 3);
    H.eq(P('getrange'), await c.getrange('ap', 0, 1), 'ab');
    H.eq(P('setrange'), await c.setrange('ap', 1, 'X'), 3);
    H.eq(P('strlen'), await c.strlen('ap'), 3);
    H.eq(P('getdel'), await c.getdel('ap'), 'aXc');
    H.eq(P('getex'), await c.getex('a', 'EX', 50), '1');
    H.eq(P('getset'), await c.getset('a', '9'), '1');
    H.eq(P('setnx'), await c.setnx('a', 'q'), 0);
    H.eq(P('setex'), await c.setex('se', 100, 'v'), 'OK');
    H.eq(P('psetex'), await c.psetex('pse', 100000, 'v'), 'OK');
    await H.rejects(P('incr on text'), () => c.incr('s'), {
      cls: 'ReplyError',
      message: 'ERR value is not an integer or out of range',
    });
    await c.hset('h', 'f', 'v');
    await H.rejects(P('WRONGTYPE'), () => c.get('h'), { cls: 'ReplyError', message: E_WRONGTYPE });
    await H.rejects(P('arity'), () => c.call('GET'), {
      message: "ERR wrong number of arguments for 'get' command",
    });
    await H.rejects(P('syntax'), () => c.set('s', 'v', 'NX', 'XX'), { message: 'ERR syntax error' });
    const bin = Buffer.from([0, 13, 10, 0, 255, 10]);
    await c.set(Buffer.from('b\0k'), bin);
    const got = await c.getBuffer(Buffer.from('b\0k'));
    H.check(P('binary round trip'), Buffer.isBuffer(got) && got.equals(bin), got);
    const big = Buffer.alloc(1 << 20, 7);
    await c.set('big', big);
    H.check(P('1 MB value'), (await c.getBuffer('big')).equals(big));
    c.disconnect();
  }

  async function keys() {
    const c = await fresh(opts);
    const m = {};
    for (let i = 0; i < 400; i++) m[`k:${i}`] = String(i);
    await c.mset(m);
    await c.hset('hh', 'a', '1');
    const why = target.refused('DBSIZE', 'SCAN', 'KEYS', 'RANDOMKEY', 'FLUSHDB');
    if (why) {
      H.skip(P('dbsize, scanStream, keys, randomkey, flushdb'), why);
    } else {
      H.eq(P('dbsize'), await c.dbsize(), 401);
      const got = await streamAll(c.scanStream({ match: 'k:3*', count: 25 }));
      H.eq(P('scanStream match'), [...new Set(got)].sort(), Object.keys(m).filter((k) => k.startsWith('k:3')).sort());
      H.eq(P('scanStream all'), new Set(await streamAll(c.scanStream({ count: 9 }))).size, 401);
      H.eq(P('scanStream type'), await streamAll(c.scanStream({ type: 'hash' })), ['hh']);
      H.eq(P('keys'), (await c.keys('k:1?')).sort(), Array.from({ length: 10 }, (_, i) => `k:1${i}`).sort());
    }
    H.eq(P('exists'), await c.exists('k:1', 'k:2', 'no'), 2);
    H.eq(P('del'), await c.del('k:1', 'no'), 1);
    H.eq(P('unlink'), await c.unlink('k:2'), 1);
    H.eq(P('type'), await c.type('hh'), 'hash');
    H.eq(P('rename'), await c.rename('k:3', 'r'), 'OK');
    H.eq(P('renamenx'), await c.renamenx('k:4', 'r'), 0);
    H.eq(P('copy'), await c.copy('r', 'r2'), 1);
    H.eq(P('copy replace'), await c.copy('k:5', 'r2', 'REPLACE'), 1);
    H.eq(P('touch'), await c.touch('r', 'r2', 'no'), 2);
    if (!why) H.check(P('randomkey'), (await c.exists(await c.randomkey())) === 1);
    H.eq(P('expire NX'), await c.expire('r', 100, 'NX'), 1);
    H.eq(P('expire NX again'), await c.expire('r', 100, 'NX'), 0);
    H.eq(P('expire GT'), await c.expire('r', 200, 'GT'), 1);
    H.eq(P('expire LT'), await c.expire('r', 300, 'LT'), 0);
    H.eq(P('expire XX'), await c.expire('r2', 300, 'XX'), 0);
    H.eq(P('pexpire'), await c.pexpire('r2', 300000), 1);
    const pttl = await c.pttl('r2');
    H.check(P('pttl'), pttl > 290000 && pttl <= 300000, pttl);
    const at = Math.floor(Date.now() / 1000) + 1000;
    H.eq(P('expireat'), await c.expireat('r2', at), 1);
    H.eq(P('expiretime'), await c.expiretime('r2'), at);
    H.eq(P('pexpiretime'), await c.pexpiretime('r2'), at * 1000);
    H.eq(P('persist'), await c.persist('r2'), 1);
    H.eq(P('ttl -1'), await c.ttl('r2'), -1);
    H.eq(P('ttl -2'), await c.ttl('no'), -2);
    H.eq(P('object encoding'), await c.object('ENCODING', 'k:6'), 'int');
    H.check(P('memory usage'), (await c.memory('USAGE', 'k:6')) > 0);
    if (!why) H.eq(P('flushdb'), await c.flushdb(), 'OK');
    c.disconnect();
  }

  async function hashes() {
    const c = await fresh(opts);
    H.eq(P('hset object'), await c.hset('h', { a: '1', b: '2' }), 2);
    H.eq(P('hset pairs'), await c.hset('h', 'c', '3', 'a', '9'), 1);
    H.eq(P('hgetall'), await c.hgetall('h'), { a: '9', b: '2', c: '3' });
    H.eq(P('hgetall missing'), await c.hgetall('none'), {});
    H.eq(P('hget'), await c.hget('h', 'a'), '9');
    H.eq(P('hmget'), await c.hmget('h', 'a', 'zz'), ['9', null]);
    H.eq(P('hmset'), await c.hmset('h', { d: '4' }), 'OK');
    H.eq(P('hsetnx'), await c.hsetnx('h', 'd', 'x'), 0);
    H.eq(P('hlen'), await c.hlen('h'), 4);
    H.eq(P('hexists'), await c.hexists('h', 'a'), 1);
    H.eq(P('hstrlen'), await c.hstrlen('h', 'a'), 1);
    H.eq(P('hkeys'), (await c.hkeys('h')).sort(), ['a', 'b', 'c', 'd']);
    H.eq(P('hvals'), (await c.hvals('h')).sort(), ['2', '3', '4', '9']);
    H.eq(P('hincrby'), await c.hincrby('h', 'a', 1), 10);
    H.eq(P('hincrbyfloat'), await c.hincrbyfloat('h', 'b', '0.5'), '2.5');
    H.eq(P('hdel'), await c.hdel('h', 'c', 'zz'), 1);
    const fields = {};
    for (let i = 0; i < 700; i++) fields[`f${i}`] = `v${i}`;
    await c.hset('big', fields);
    const flat = await streamAll(c.hscanStream('big', { count: 40 }));
    const got = {};
    for (let i = 0; i < flat.length; i += 2) got[flat[i]] = flat[i + 1];
    H.eq(P('hscanStream'), got, fields);
    const rf = await c.hrandfield('big', 3, 'WITHVALUES');
    const pairs = Array.isArray(rf[0]) ? rf : [[rf[0], rf[1]], [rf[2], rf[3]], [rf[4], rf[5]]];
    H.check(P('hrandfield WITHVALUES'), pairs.length === 3 && pairs.every(([f, v]) => fields[f] === v), rf);
    await H.rejects(P('hincrby on text'), () => c.hincrby('big', 'f1', 1), {
      message: 'ERR hash value is not an integer',
    });
    c.disconnect();
  }

  async function pipelines() {
    const c = await fresh(opts);
    const p = c.pipeline();
    for (let i = 0; i < 1000; i++) p.set(`p${i}`, i).incr(`p${i}`);
    const res = await p.exec();
    H.check(P('pipeline 2000'), res.length === 2000 &&
      res.every(([err, v], i) => !err && (i % 2 === 0 ? v === 'OK' : v === (i - 1) / 2 + 1)));
    const r2 = await c.pipeline().set('s', 'x').incr('s').get('s').exec();
    H.check(P('pipeline keeps the error in place'), r2[1][0] && r2[1][0].message ===
      'ERR value is not an integer or out of range' && r2[2][1] === 'x', r2);
    H.eq(P('multi exec'), await c.multi().set('t', '1').incr('t').exec(), [[null, 'OK'], [null, 2]]);
    const r3 = await c.multi().set('t', 'a').incr('t').set('t2', 'b').exec();
    H.check(P('error inside EXEC'), r3[1][0] && r3[1][0].message === 'ERR value is not an integer or out of range' &&
      r3[2][1] === 'OK', r3);
    await H.rejects(P('EXECABORT'), () => c.multi().set('x1', '1').call('GET').exec(), {
      message: 'EXECABORT Transaction discarded because of previous errors.',
    });
    H.eq(P('EXECABORT applied nothing'), await c.exists('x1'), 0);
    if (process.env.COMPAT_CLUSTER === '1' || target.refused('WATCH')) {
      console.log(`SKIP ioredis: ${P('WATCH')} (cluster mode refuses WATCH until EXEC can learn of ` +
        'writes made through other nodes)');
      c.disconnect();
      return;
    }
    const w = await open(opts);
    const o = await open(opts);
    await w.set('wk', '1');
    await w.watch('wk');
    await o.set('wk', '2');
    H.eq(P('WATCH conflict: exec is null'), await w.multi().set('wk', '3').exec(), null);
    H.eq(P('WATCH conflict: other write kept'), await c.get('wk'), '2');
    await w.watch('wk');
    H.eq(P('WATCH no conflict'), await w.multi().incr('wk').exec(), [[null, 3]]);
    await w.watch('wk');
    H.eq(P('unwatch'), await w.unwatch(), 'OK');
    await o.set('wk', '7');
    H.eq(P('after unwatch'), await w.multi().incr('wk').exec(), [[null, 8]]);
    w.disconnect();
    o.disconnect();
    c.disconnect();
  }

  async function server() {
    const c = await open(opts);
    const info = await c.info('keyspace');
    H.check(P('info keyspace'), info.includes('# Keyspace'), info);
    H.check(P('info server port'), (await c.info('server')).includes(`tcp_port:${c.options.port}`));
    const cfg = await c.config('GET', 'maxmemory-policy');
    const flat = Array.isArray(cfg) ? cfg : Object.entries(cfg).flat();
    H.eq(P('config get'), flat[0], 'maxmemory-policy');
    H.eq(P('config set'), await c.config('SET', 'slowlog-max-len', '160'), 'OK');
    if (target.refused('DBSIZE')) H.skip(P('dbsize'), target.refused('DBSIZE'));
    else H.eq(P('dbsize'), typeof (await c.dbsize()), 'number');
    const t = await c.time();
    H.check(P('time'), Math.abs(Number(t[0]) - Date.now() / 1000) < 5, t);
    H.check(P('command count'), (await c.command('COUNT')) > 50);
    H.eq(P('command getkeys'), await c.command('GETKEYS', 'MSET', 'a', '1', 'b', '2'), ['a', 'b']);
    H.eq(P('slowlog reset'), await c.slowlog('RESET'), 'OK');
    H.eq(P('slowlog len'), await c.slowlog('LEN'), 0);
    H.eq(P('echo'), await c.echo('e'), 'e');
    c.disconnect();
  }

  async function auth() {
    const c = await open({ ...opts, port: authPort, password: authPw });
    H.eq(P('password at connect'), await c.set('a', 'b'), 'OK');
    c.disconnect();
    const u = await open({ ...opts, port: authPort, username: 'default', password: authPw });
    H.eq(P('username + password'), await u.get('a'), 'b');
    u.disconnect();
    await H.rejects(P('NOAUTH'), async () => {
      const n = await open({ ...opts, port: authPort, enableReadyCheck: false });
      await n.get('a');
    });
    await H.rejects(P('wrong password'), async () => {
      const n = await open({ ...opts, port: authPort, password: 'wrong' });
      await n.get('a');
    });
  }

  return [handshake, strings, keys, hashes, pipelines, server, auth];
}

H.run([...suite(3), ...suite(2)]).then((rc) => {
  for (const c of all) c.disconnect();
  console.log(`(ioredis ${version})`);
  process.exitCode = rc;
  setTimeout(() => process.exit(rc), 200).unref();
});
