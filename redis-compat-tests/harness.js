// redis-compat-tests/harness.js: the tiny test bookkeeping the node suites share.
// check()/eq() record one case each; run() awaits each group, counts a throw as a
// failure, and prints "NAME: N passed, M failed" then the bare count line.
// target: where the server under test is and what it refuses, from run.sh's
// environment (COMPAT_HOST, COMPAT_POOL, COMPAT_REFUSED, COMPAT_DB_BASE; the same
// meaning as in respclient.py).
'use strict';
const assert = require('node:assert');

class Harness {
  constructor(name) {
    this.name = name;
    this.passed = 0;
    this.failed = 0;
  }

  check(what, cond, detail) {
    if (cond) {
      this.passed++;
    } else {
      this.failed++;
      console.log(`FAIL ${this.name}: ${what}${detail !== undefined ? ': ' + fmt(detail) : ''}`);
    }
    return !!cond;
  }

  eq(what, got, want) {
    try {
      assert.deepStrictEqual(got, want);
      this.passed++;
      return true;
    } catch (e) {
      this.failed++;
      console.log(`FAIL ${this.name}: ${what}: want ${fmt(want)} got ${fmt(got)}`);
      return false;
    }
  }

  // Expects fn() to reject; checks the error's class name and message when given.
  async rejects(what, fn, { cls, message } = {}) {
    try {
      await fn();
    } catch (e) {
      const okCls = !cls || e.constructor.name === cls || e.name === cls;
      const okMsg = !message || e.message === message;
      return this.check(what, okCls && okMsg, `${e.constructor.name}: ${e.message}`);
    }
    return this.check(what, false, 'did not reject');
  }

  // A check this server cannot run, said with its reason (not counted).
  skip(what, why) {
    console.log(`SKIP ${this.name}: ${what} (${why})`);
  }

  async run(groups) {
    for (const g of groups) {
      try {
        await g();
      } catch (e) {
        this.failed++;
        console.log(`FAIL ${this.name}: ${g.name} threw ${e && e.stack ? e.stack : e}`);
      }
    }
    console.log(`${this.name}: ${this.passed} passed, ${this.failed} failed`);
    console.log(`${this.passed} passed, ${this.failed} failed`);
    return this.failed === 0 ? 0 : 1;
  }
}

function fmt(v) {
  try {
    return JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? x.toString() : x)).slice(0, 400);
  } catch (e) {
    return String(v);
  }
}

const refusedSet = new Set((process.env.COMPAT_REFUSED || '').toUpperCase().split(/\s+/).filter(Boolean));
const pool = (process.env.COMPAT_POOL || '').split(',').filter((a) => a.trim()).map((a) => {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
});
let poolNext = 0;
let dbNext = Number(process.env.COMPAT_DB_BASE || 0);
const target = {
  host: process.env.COMPAT_HOST || '127.0.0.1',
  // null when the server runs every one of the commands, else the skip reason
  refused(...cmds) {
    const bad = cmds.filter((c) => refusedSet.has(c.toUpperCase()));
    return bad.length ? `a multi-node kvd cluster refuses ${bad.join('/')} until it runs keyless ` +
      'commands on every node (SCAN/KEYS/DBSIZE/FLUSH fan-out) and WATCH across nodes: README "Cluster mode"' : null;
  },
  // {host, port} of the next connection to the main server: the pool's next member
  // in turn, or (host, port) without a pool
  nextAddr(port) {
    if (!pool.length) return { host: target.host, port };
    return pool[poolNext++ % pool.length];
  },
  // a database no group used yet (COMPAT_DB_BASE + 1, + 2, ...): a fresh key space
  // where FLUSHALL is refused
  freshDb() {
    dbNext += 1;
    return dbNext;
  },
};

module.exports = { Harness, target };
