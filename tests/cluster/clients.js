// tests/cluster/clients.js LIB PREFIX HOST:PORT...
//
// One Node client library (LIB: ioredis, redis = node-redis latest, redis4 =
// node-redis 4) against every node of a running kvd cluster: SET/GET/INCR/DEL/HSET
// through each node, each value read back through the next node, then a pool of one
// connection per node taking turns on one counter. Keys start with PREFIX. Prints
// "NAME: N passed, M failed". Run by clients_test.py with NODE_PATH set to
// redis-compat-tests/node_modules; leaves the cluster to it.
'use strict';
const path = require('node:path');
const { Harness } = require(path.join(__dirname, '../../redis-compat-tests/harness'));

const [lib, prefix, ...addrs] = process.argv.slice(2);
const H = new Harness(`cluster-${lib}`);
const nodes = addrs.map((a) => {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
});

async function connect(n) {
  if (lib === 'ioredis') {
    const Redis = require('ioredis');
    const c = new Redis({ host: n.host, port: n.port, lazyConnect: true, maxRetriesPerRequest: 0,
      retryStrategy: () => null, connectTimeout: 5000 });
    c.on('error', () => {});
    await c.connect();
    return {
      c,
      call: (...args) => c.call(...args),
      close: () => c.quit().catch(() => {}),
    };
  }
  const redis = require(lib);
  const c = redis.createClient({ socket: { host: n.host, port: n.port, reconnectStrategy: false,
    connectTimeout: 5000 } });
  c.on('error', () => {});
  await c.connect();
  return {
    c,
    call: (...args) => c.sendCommand(args.map(String)),
    close: async () => { try { if (c.close) await c.close(); else await c.quit(); } catch (e) { /* closed */ } },
  };
}

const str = (x) => (x === null || x === undefined ? x : String(x));

async function main() {
  const conns = [];
  for (const n of nodes) conns.push(await connect(n));
  for (let i = 0; i < conns.length; i++) {
    const c = conns[i];
    const next = conns[(i + 1) % conns.length];
    const at = `${nodes[i].host}:${nodes[i].port}`;
    const k = `${prefix}:${i}`;
    H.eq(`SET via ${at}`, str(await c.call('SET', `${k}:s`, 'v' + i)), 'OK');
    H.eq(`GET via ${at}`, str(await c.call('GET', `${k}:s`)), 'v' + i);
    H.eq(`GET of it via the next node`, str(await next.call('GET', `${k}:s`)), 'v' + i);
    H.eq(`INCR via ${at}`, Number(await c.call('INCR', `${k}:n`)), 1);
    H.eq(`INCR again via the next node`, Number(await next.call('INCR', `${k}:n`)), 2);
    H.eq(`HSET via ${at}`, Number(await c.call('HSET', `${k}:h`, 'f1', 'a', 'f2', 'b')), 2);
    H.eq(`HGET via the next node`, str(await next.call('HGET', `${k}:h`, 'f2')), 'b');
    H.eq(`DEL via ${at}`, Number(await c.call('DEL', `${k}:s`, `${k}:n`, `${k}:h`)), 3);
    H.eq(`EXISTS via the next node after DEL`, Number(await next.call('EXISTS', `${k}:s`, `${k}:n`, `${k}:h`)), 0);
  }
  // a pool whose connections go to different nodes, taking turns on one counter
  const rounds = 30;
  for (let j = 0; j < rounds; j++) {
    await conns[j % conns.length].call('INCR', `${prefix}:pool`);
  }
  for (let i = 0; i < conns.length; i++) {
    H.eq(`pool counter read via node ${i + 1}`, str(await conns[i].call('GET', `${prefix}:pool`)), String(rounds));
  }
  for (const c of conns) await c.close();
}

main().catch((e) => { H.check('no exception', false, e && e.stack); })
  .finally(() => {
    console.log(`${H.name}: ${H.passed} passed, ${H.failed} failed`);
    console.log(`${H.passed} passed, ${H.failed} failed`);
    process.exit(H.failed ? 1 : 0);
  });
