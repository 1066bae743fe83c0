#!/usr/bin/env node
'use strict';
// The Node.js client's throughput on one connection (a benchmark, not a
// test: BENCHMARKS.md has the figures and the command):
//
//   NODE_PATH=PREFIX/node_modules node clients/node/bench/throughput.js SOCKET [SECONDS] [WINDOW]
//
// For each of addMessage (400-byte messages, a fresh idempotency key each)
// and getRecentConversations (limit 10: 20 rows): calls one after the
// other (await each), then pipelined with WINDOW calls in flight (default
// 64) on the same single connection.  Prints one JSON line per run.

const crypto = require('node:crypto');
const { ConversationManager } = require('convd-client');

async function run(name, seconds, window, call) {
  const end = Date.now() + seconds * 1000;
  let done = 0;
  const t0 = process.hrtime.bigint();
  async function lane() {
    while (Date.now() < end) {
      await call(done);
      done += 1;
    }
  }
  await Promise.all(Array.from({ length: window }, lane));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ run: name, in_flight: window, calls: done, seconds: +s.toFixed(2),
    per_second: Math.round(done / s) }));
}

async function main() {
  const [socket, seconds = '5', window = '64'] = process.argv.slice(2);
  const m = new ConversationManager(socket);
  const users = Array.from({ length: 100 }, () => `bench-${crypto.randomBytes(6).toString('hex')}`);
  const content = 'x'.repeat(400);
  const add = (i) => m.addMessage(users[i % users.length], 'anthropic', i % 2 ? 'assistant' : 'user', content);
  const read = (i) => m.getRecentConversations(users[i % users.length], 'anthropic', 10);
  for (const [name, fn] of [['addMessage', add], ['getRecentConversations', read]]) {
    await run(name, Number(seconds), 1, fn);
    await run(name, Number(seconds), Number(window), fn);
  }
  m.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
