// redis-compat-tests/noderedis_test.js MODULE PORT AUTH_PORT AUTH_PASSWORD
//
// The server driven by node-redis. MODULE is "redis" (latest: RESP3 by default, sends
// HELLO 3 and CLIENT SETINFO on connect) or "redis4" (node-redis 4, RESP2: CLIENT
// SETNAME, SELECT, AUTH). Covers the handshake, every family, multi/exec, WATCH,
// scanIterator/hScanIterator, pipelined commands, errors and AUTH. The server is at
// COMPAT_HOST, each connection at the next member of COMPAT_POOL when set; commands
// in COMPAT_REFUSED are skipped (harness.js target).
'use strict';
const { Harness, target } = require('./harness');

const [modName, portArg, authPortArg, authPw] = process.argv.slice(2);
const port = Number(portArg);
const authPort = Number(authPortArg);
const redis = require(modName);
const version = require(`${modName}/package.json`).version;
const major = Number(version.split('.')[0]);
const H = new Harness(modName === 'redis' ? 'node-redis' : `node-${modName}`);

const clients = [];
let db = 0; // the database connect() selects: fresh() moves it when FLUSHALL is refused

// A client of the main server (the pool's next member), in db unless opts.database;
// with opts.port (the password server) one of run.sh's server on 127.0.0.1.
async function connect(opts = {}) {
  const at = opts.port ? { host: '127.0.0.1', port: opts.port } : target.nextAddr(port);
  const extra = !opts.port && db !== 0 && opts.database === undefined ? { database: db } : {};
  const c = redis.createClient({
    socket: { ...at, reconnectStrategy: false, connectTimeout: 5000 },
    ...extra,
    ...opts,
  });
  c.kvdPort = at.port;
  c.on('error', () => {});
  clients.push(c);
  await c.connect();
  return c;
}
// A connected client on an empty key space: FLUSHALL, or where the server refuses
// it (a multi-node cluster) a database no group used yet.
async function fresh() {
  if (target.refused('FLUSHALL')) {
    db = target.freshDb();
    return connect();
  }
  const c = await connect();
  await c.flushAll();
  return c;
}
async function close(c) {
  try {
    if (major >= 5 && c.close) await c.close();
    else await c.quit();
  } catch (e) {
    /* already closed */
  }
}
// scanIterator yields keys one by one in v4, arrays of keys in v5+
async function collect(iter) {
  const out = [];
  for await (const x of iter) {
    if (Array.isArray(x)) out.push(...x);
    else out.push(x);
  }
  return out;
}
const E_WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';

async function handshake() {
  const c = await connect({ name: 'nr-test', database: 4 });
  H.eq('ping', await c.ping(), 'PONG');
  H.eq('name set at connect', await c.clientGetName(), 'nr-test');
  const info = await c.sendCommand(['CLIENT', 'INFO']);
  H.check('database selected at connect', String(info).includes(' db=4 '), info);
  const wantResp = major >= 5 ? 3 : 2;
  H.check(`connection speaks RESP${wantResp}`, new RegExp(`\\bresp=${wantResp}\\b`).test(String(info)), info);
  if (process.env.COMPAT_TARGET === 'kvd' && major >= 5) {
    H.check('CLIENT SETINFO lib-name recorded', String(info).includes('lib-name=node-redis'), info);
  }
  await c.set('k', 'v');
  const c0 = await connect();
  H.eq('db isolation', await c0.get('k'), null);
  H.eq('echo', await c.echo('x y'), 'x y');
  await close(c);
  await close(c0);
}

async function strings() {
  const c = await fresh();
  H.eq('set', await c.set('s', 'v'), 'OK');
  H.eq('get', await c.get('s'), 'v');
  H.eq('get missing', await c.get('nosuch'), null);
  H.eq('set NX existing', await c.sendCommand(['SET', 's', 'x', 'NX']), null);
  H.eq('set GET', await c.sendCommand(['SET', 's', 'w', 'GET']), 'v');
  H.eq('set EX', await c.sendCommand(['SET', 'e', 'v', 'EX', '100']), 'OK');
  const ttl = await c.ttl('e');
  H.check('ttl', ttl >= 98 && ttl <= 100, ttl);
  H.eq('set syntax error', await c.sendCommand(['SET', 's', 'v', 'NX', 'XX']).catch((e) => e.message),
    'ERR syntax error');
  H.eq('mSet', await c.mSet({ m1: 'a', m2: 'b' }), 'OK');
  H.eq('mGet', await c.mGet(['m1', 'nosuch', 'm2']), ['a', null, 'b']);
  H.eq('mSetNX', await c.sendCommand(['MSETNX', 'm1', 'x', 'm9', 'y']), 0);
  H.eq('incr', await c.incr('n'), 1);
  H.eq('incrBy', await c.incrBy('n', 9), 10);
  H.eq('decrBy', await c.decrBy('n', 3), 7);
  H.eq('incrByFloat', String(await c.incrByFloat('fl', 1.25)), '1.25');
  H.eq('append', await c.append('ap', 'hello'), 5);
  H.eq('getRange', await c.getRange('ap', 1, 3), 'ell');
  H.eq('setRange', await c.setRange('ap', 0, 'J'), 5);
  H.eq('strLen', await c.strLen('ap'), 5);
  H.eq('getDel', await c.getDel('ap'), 'Jello');
  H.eq('getEx', await c.sendCommand(['GETEX', 'm1', 'EX', '50']), 'a');
  H.check('getEx set ttl', (await c.ttl('m1')) > 40);
  H.eq('getSet', await c.sendCommand(['GETSET', 'm1', 'z']), 'a');
  H.eq('setNX', await c.sendCommand(['SETNX', 'm1', 'q']), 0);
  H.eq('setEx', await c.sendCommand(['SETEX', 'se', '100', 'v']), 'OK');
  await H.rejects('incr on text', () => c.incr('s'), { message: 'ERR value is not an integer or out of range' });
  await c.hSet('h', 'f', 'v');
  await H.rejects('WRONGTYPE', () => c.get('h'), { message: E_WRONGTYPE });
  await H.rejects('arity', () => c.sendCommand(['GET']), {
    message: "ERR wrong number of arguments for 'get' command",
  });
  await H.rejects('unknown', () => c.sendCommand(['NOPE']), {
    message: "ERR unknown command 'NOPE', with args beginning with: ",
  });
  const big = 'x'.repeat(1 << 20);
  await c.set('big', big);
  H.check('1 MB value', (await c.get('big')) === big);
  const bin = Buffer.from([0, 13, 10, 255, 0, 1]);
  await c.set('bin', bin);
  const got = await c.sendCommand(['GET', 'bin'], major >= 5 ? undefined : { returnBuffers: true });
  if (major < 5) H.check('binary value round trip', Buffer.isBuffer(got) && got.equals(bin), got);
  H.eq('binary strlen', await c.strLen('bin'), 6);
  await close(c);
}

// node-redis 4 reads the SCAN cursor with Number(): a cursor above 2^53 loses its
// low bits and scanIterator skips keys. 10,000 keys: the iterator must see each,
// and every cursor (read raw, as a string) must stay below 2^53.
async function scanManyKeys(c) {
  const names = Array.from({ length: 10000 }, (_, i) => `many:${i}`);
  for (let i = 0; i < names.length; i += 1000) {
    const m = {};
    for (const k of names.slice(i, i + 1000)) m[k] = 'v';
    await c.mSet(m);
  }
  const seen = new Set(await collect(c.scanIterator({ MATCH: 'many:*', COUNT: 50 })));
  H.eq('scanIterator over 10,000 keys sees each', seen.size, 10000);
  let cursor = '0';
  let calls = 0;
  let big = [];
  do {
    const [next] = await c.sendCommand(['SCAN', cursor, 'COUNT', '100']);
    cursor = String(next);
    if (BigInt(cursor) >= 2n ** 53n) big.push(cursor);
    calls++;
  } while (cursor !== '0' && calls < 100000);
  H.check('SCAN cursors stay below 2^53', big.length === 0 && calls > 10, big.slice(0, 3));
  for (let i = 0; i < names.length; i += 1000) await c.del(names.slice(i, i + 1000));
}

async function keysAndExpiry() {
  const c = await fresh();
  const m = {};
  for (let i = 0; i < 300; i++) m[`key:${i}`] = String(i);
  await c.mSet(m);
  await c.hSet('hash:1', 'a', '1');
  const why = target.refused('DBSIZE', 'SCAN', 'KEYS', 'RANDOMKEY', 'FLUSHDB');
  if (why) {
    H.skip('dbSize, scanIterator, keys, randomKey, flushDb', why);
  } else {
    H.eq('dbSize', await c.dbSize(), 301);
    const keys = await collect(c.scanIterator({ MATCH: 'key:1*', COUNT: 20 }));
    const want = Object.keys(m).filter((k) => k.startsWith('key:1')).sort();
    H.eq('scanIterator MATCH', [...new Set(keys)].sort(), want);
    H.eq('scanIterator all', new Set(await collect(c.scanIterator({ COUNT: 7 }))).size, 301);
    H.eq('scanIterator TYPE', await collect(c.scanIterator({ TYPE: 'hash' })), ['hash:1']);
    H.eq('keys', (await c.keys('key:2?')).sort(), Array.from({ length: 10 }, (_, i) => `key:2${i}`).sort());
    await scanManyKeys(c);
  }
  H.eq('exists', await c.exists(['key:1', 'key:2', 'nosuch']), 2);
  H.eq('del', await c.del(['key:1', 'nosuch']), 1);
  H.eq('unlink', await c.unlink('key:2'), 1);
  H.eq('type', await c.type('hash:1'), 'hash');
  H.eq('rename', await c.rename('key:3', 'r3'), 'OK');
  H.eq('renameNX', await c.sendCommand(['RENAMENX', 'key:4', 'r3']), 0);
  H.eq('copy', await c.sendCommand(['COPY', 'r3', 'r4']), 1);
  H.eq('touch', await c.sendCommand(['TOUCH', 'r3', 'r4', 'nosuch']), 2);
  if (!why) H.check('randomKey', (await c.exists(await c.randomKey())) === 1);
  const ex = (...a) => c.sendCommand(['EXPIRE', ...a]);
  H.eq('expire NX', await ex('r3', '100', 'NX'), 1);
  H.eq('expire NX again', await ex('r3', '100', 'NX'), 0);
  H.eq('expire GT', await ex('r3', '200', 'GT'), 1);
  H.eq('expire LT larger', await ex('r3', '300', 'LT'), 0);
  H.eq('expire XX without ttl', await ex('r4', '300', 'XX'), 0);
  H.eq('pExpire', await c.pExpire('r4', 300000), major >= 5 ? 1 : true);
  const at = Math.floor(Date.now() / 1000) + 1000;
  await c.sendCommand(['EXPIREAT', 'r4', String(at)]);
  H.eq('expireTime', await c.sendCommand(['EXPIRETIME', 'r4']), at);
  H.eq('persist', await c.sendCommand(['PERSIST', 'r4']), 1);
  H.eq('ttl after persist', await c.ttl('r4'), -1);
  H.eq('ttl missing', await c.ttl('nosuch'), -2);
  if (!why) {
    H.eq('flushDb', await c.flushDb(), 'OK');
    H.eq('dbSize after flush', await c.dbSize(), 0);
  }
  await close(c);
}

async function hashes() {
  const c = await fresh();
  H.eq('hSet object', await c.hSet('h', { a: '1', b: '2', c: '3' }), 3);
  H.eq('hGet', await c.hGet('h', 'a'), '1');
  H.eq('hGet missing', await c.hGet('h', 'zz'), null);
  H.eq('hGetAll', { ...(await c.hGetAll('h')) }, { a: '1', b: '2', c: '3' });
  H.eq('hGetAll missing', { ...(await c.hGetAll('nosuch')) }, {});
  H.eq('hmGet', await c.hmGet('h', ['a', 'zz']), ['1', null]);
  H.eq('hKeys', (await c.hKeys('h')).sort(), ['a', 'b', 'c']);
  H.eq('hVals', (await c.hVals('h')).sort(), ['1', '2', '3']);
  H.eq('hLen', await c.hLen('h'), 3);
  H.eq('hExists', await c.hExists('h', 'a'), major >= 5 ? 1 : true);
  H.eq('hIncrBy', await c.hIncrBy('h', 'a', 10), 11);
  H.eq('hIncrByFloat', String(await c.hIncrByFloat('h', 'b', 0.5)), '2.5');
  H.eq('hStrLen', await c.sendCommand(['HSTRLEN', 'h', 'a']), 2);
  H.eq('hSetNX', await c.hSetNX('h', 'a', 'x'), major >= 5 ? 0 : false);
  H.eq('hDel', await c.hDel('h', 'c'), 1);
  const fields = {};
  for (let i = 0; i < 600; i++) fields[`f${i}`] = `v${i}`;
  await c.hSet('big', fields);
  const got = {};
  for await (const x of c.hScanIterator('big', { COUNT: 50 })) {
    for (const e of Array.isArray(x) ? x : [x]) got[e.field] = e.value;
  }
  H.eq('hScanIterator', got, fields);
  const rf = await c.hRandField('big');
  H.check('hRandField', rf in fields, rf);
  const rfc = await c.hRandFieldCount('big', 5);
  H.check('hRandFieldCount', rfc.length === 5 && new Set(rfc).size === 5 && rfc.every((f) => f in fields), rfc);
  await H.rejects('hIncrBy on text', () => c.hIncrBy('big', 'f1', 1), { message: 'ERR hash value is not an integer' });
  await close(c);
}

async function transactions() {
  const c = await fresh();
  const r = await c.multi().set('t', '1').incr('t').get('t').exec();
  H.eq('multi exec', r, ['OK', 2, '2']);
  const r2 = await c.multi().set('t2', 'x').incr('t2').set('t3', 'y').exec().catch((e) => e);
  // node-redis throws on an error inside EXEC in v4 (MultiErrorReply) and returns the
  // error object in place in v5+; either way the other commands ran.
  H.check('error inside EXEC reported', r2 instanceof Error || (Array.isArray(r2) && r2[1] instanceof Error), r2);
  H.eq('error inside EXEC: rest applied', await c.get('t3'), 'y');
  await H.rejects('EXECABORT', () => c.multi().set('a', 'b').addCommand(['GET']).exec());
  H.eq('EXECABORT applied nothing', await c.exists('a'), 0);
  const cluster = process.env.COMPAT_CLUSTER === '1' || target.refused('WATCH') !== null;
  const w = await connect();
  const other = await connect();
  if (cluster) {
    console.log('SKIP node-redis: WATCH (cluster mode refuses WATCH until EXEC can learn of ' +
      'writes made through other nodes)');
  } else {
    await w.set('wk', '1');
    await w.watch('wk');
    await other.set('wk', '2');
    await H.rejects('WATCH conflict', () => w.multi().set('wk', '3').exec(), { cls: 'WatchError' });
    H.eq('WATCH conflict kept the other write', await c.get('wk'), '2');
    await w.watch('wk');
    H.eq('WATCH without conflict', await w.multi().incr('wk').exec(), [3]);
  }
  // pipelined commands (v4: Promise.all auto-pipelines; v5+: also multi().execAsPipeline)
  const ps = [];
  for (let i = 0; i < 500; i++) ps.push(c.set(`p${i}`, String(i)), c.incr(`p${i}`));
  const res = await Promise.all(ps);
  H.check('pipelined 1000 in order', res.every((x, i) => (i % 2 === 0 ? x === 'OK' : x === (i - 1) / 2 + 1)));
  const pipe = await c.multi().get('p0').get('p499').execAsPipeline();
  H.eq('execAsPipeline', pipe, ['1', '500']);
  await close(w);
  await close(other);
  await close(c);
}

async function server() {
  const c = await connect();
  const info = await c.info('server');
  H.check('info server', info.includes(`tcp_port:${c.kvdPort}`), info.slice(0, 200));
  const cfg = await c.configGet('maxmemory');
  H.check('configGet', cfg && cfg.maxmemory !== undefined, cfg);
  H.eq('configSet', await c.configSet('slowlog-max-len', '150'), 'OK');
  const t = await c.time();
  H.check('time', t !== undefined);
  H.check('commandCount', (await c.commandCount()) > 50);
  H.eq('COMMAND GETKEYS', await c.sendCommand(['COMMAND', 'GETKEYS', 'SET', 'kk', 'v']), ['kk']);
  H.check('clientId', typeof (await c.clientId()) === 'number');
  H.eq('select', await c.sendCommand(['SELECT', '2']), 'OK');
  if (target.refused('DBSIZE')) H.skip('dbSize db2', target.refused('DBSIZE'));
  else H.eq('dbSize db2', await c.dbSize(), 0);
  await close(c);
}

async function auth() {
  await H.rejects('NOAUTH', async () => {
    const c = await connect({ port: authPort });
    await c.get('a');
  });
  let ok = false;
  try {
    const c = await connect({ port: authPort, password: authPw });
    ok = (await c.set('ak', 'v')) === 'OK';
    await close(c);
  } catch (e) {
    console.log(`  auth connect: ${e.message}`);
  }
  H.check('password at connect', ok);
  ok = false;
  try {
    const c = await connect({ port: authPort, username: 'default', password: authPw });
    ok = (await c.get('ak')) === 'v';
    await close(c);
  } catch (e) {
    console.log(`  auth connect: ${e.message}`);
  }
  H.check('username + password at connect', ok);
  await H.rejects('wrong password', async () => {
    const c = await connect({ port: authPort, password: 'wrong' });
    await c.get('ak');
  });
}

H.run([handshake, strings, keysAndExpiry, hashes, transactions, server, auth]).then(async (rc) => {
  for (const c of clients) {
    try {
      if (c.isOpen) await (c.destroy ? c.destroy() : c.disconnect());
    } catch (e) {
      /* ignore */
    }
  }
  console.log(`(${modName} ${version})`);
  process.exitCode = rc;
  setTimeout(() => process.exit(rc), 200).unref();
});
