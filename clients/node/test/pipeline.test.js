'use strict';
// Pipelining: 100 addMessage calls go out on one connection without
// waiting for each other, all in flight at once in convd, answered out of
// order (a ping overtakes them), each matched to its own call.

const test = require('node:test');
const assert = require('node:assert/strict');
const { client, need, uid, lit, psql, lockTable, waitFor, record } = require('./helpers');

const HIST = 'simple_conversation_history';

test('100 pipelined addMessage on one connection, all in flight at once', async () => {
  const m = new client.ConversationManager(need('CONVD_SOCKET'));
  const user = uid('pipe');
  try {
    const before = (await m.stats()).clients;
    const lock = await lockTable(HIST);
    let calls;
    try {
      calls = Array.from({ length: 100 }, (_, i) =>
        m.addMessage(user, 'anthropic', i % 2 ? 'assistant' : 'user', `pipelined #${i}`));
      // convd holds all 100 (its max_inflight is 128) while a ping,
      // sent after them, is answered first
      assert.equal(await m.ping(), true);
      const s = await waitFor(async () => {
        const st = await m.stats();
        return st.clients.requests_in_flight >= 101 && st;
      }, '100 requests in flight');
      // ...all on the connection the first stats call opened
      assert.equal(s.clients.accepted, before.accepted);
    } finally {
      await lock.release();
    }
    const results = await Promise.all(calls);
    const ids = results.map((r) => r.id);
    assert.equal(new Set(ids).size, 100);
    assert.ok(results.every((r) => r.duplicate === false));
    // each answer belongs to its own call: the row with that id holds the
    // call's content
    const rows = new Map(psql(`SELECT id, content FROM ${HIST} WHERE user_id = ${lit(user)}`)
      .map(([id, c]) => [Number(id), c]));
    assert.equal(rows.size, 100);
    ids.forEach((id, i) => assert.equal(rows.get(id), `pipelined #${i}`));
    record('pipeline', { user, ids });
    // reads pipelined with writes
    const [count, recent, stats] = await Promise.all([
      m.getConversationCount(user), m.getRecentConversations(user, 'anthropic', 50), m.getUserStatistics(user),
    ]);
    assert.equal(count, 100);
    assert.equal(recent.length, 100);
    assert.equal(stats.anthropic.messageCount, 100);
  } finally {
    m.close();
  }
});
