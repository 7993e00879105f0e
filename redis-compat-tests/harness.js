// redis-compat-tests/harness.js: the tiny test bookkeeping the node suites share.
// check()/eq() record one case each; run() awaits each group, counts a throw as a
// failure, and prints "NAME: N passed, M failed" then the bare count line.
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

module.exports = { Harness };
