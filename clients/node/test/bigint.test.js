'use strict';
// 64-bit integers inside structured content, metadata and state come back
// exactly (regression: the decoder made them JS numbers, so 2^60 + 1 read
// back as 1152921504606847000 and an export -> import stored a float).

const test = require('node:test');
const assert = require('node:assert/strict');
const { client, need, uid, lit, psql } = require('./helpers');

const { ConversationManager } = client;

let m;
test.before(() => {
  m = new ConversationManager(need('CONVD_SOCKET'));
});
test.after(() => m.close());

const BIG = 2n ** 60n + 1n;
const UBIG = 2n ** 64n - 1n;
const NEG = -(2n ** 62n) - 3n;

test('int64 and uint64 beyond 2^53 round-trip as bigints', async () => {
  const user = uid();
  const content = [{ type: 'function_call', id: BIG, u: UBIG, n: NEG, small: 7 }];
  await m.addMessage(user, 'openai', 'assistant', content,
    { conversationId: 'c1', metadata: { trace: BIG } });
  const [row] = await m.getRecentConversations(user, 'openai', { conversationId: 'c1' });
  assert.equal(row.content[0].id, BIG);
  assert.equal(row.content[0].u, UBIG);
  assert.equal(row.content[0].n, NEG);
  assert.equal(row.content[0].small, 7);     // safe integers stay numbers
  assert.equal(typeof row.id, 'number');      // ids too
  assert.equal(row.metadata.trace, BIG);
  // export -> import into another user: the same bytes in the table
  const other = uid();
  for await (const r of m.exportHistory(user, 'openai', { conversationId: 'c1' })) {
    assert.equal(await m.importMessage(other, 'openai', r.role, r.content, r.createdAt,
      { conversationId: r.conversationId, metadata: r.metadata }), true);
  }
  const bytes = (u) => psql(
    "SELECT encode(content_mp, 'hex') || encode(metadata, 'hex')"
    + ` FROM simple_conversation_history WHERE user_id = ${lit(u)}`)[0][0];
  assert.equal(bytes(other), bytes(user));
  assert.match(bytes(user), /cf1000000000000001/);   // 2^60 + 1, uint64
});

test('state with a 64-bit integer', async () => {
  const user = uid();
  await m.setState(user, 'openai', { seq: BIG });
  const st = await m.getState(user, 'openai');
  assert.equal(st.state.seq, BIG);
});
