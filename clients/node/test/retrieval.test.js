'use strict';
// Issue 18 through the promise API, against the real convd: getContext
// keeps a tool exchange whole, getMessages / iterMessages page back through
// a long history, deleteMessage refuses another user's message
// (NotFoundError), searchMessages finds Chinese and English text of one
// user only, forgetUser leaves nothing.

const test = require('node:test');
const assert = require('node:assert/strict');
const { client, need, uid, lit, psql } = require('./helpers');

const { ConversationManager, ConvdError, NotFoundError } = client;
const HIST = 'simple_conversation_history';

let m;
test.before(() => {
  m = new ConversationManager(need('CONVD_SOCKET'));
});
test.after(() => m.close());

const CALLS = { tool_calls: [{ id: 'call_a1', type: 'function', function: { name: 'weather', arguments: '{}' } },
  { id: 'call_b2', type: 'function', function: { name: 'time', arguments: '{}' } }] };

test('getContext: the newest that fit, tool exchanges whole', async () => {
  const user = uid();
  const add = [['user', 'Q1', 10], ['assistant', 'A1', 10], ['user', 'weather?', 10],
    ['assistant', CALLS, 20], ['tool', '14:05', 15, 'call_b2'], ['tool', '21°C', 15, 'call_a1'],
    ['assistant', '21°C at 14:05', 10]];
  for (const [role, content, tokens, toolCallId] of add) {
    await m.addMessage(user, 'openai', role, content, { conversationId: 'w', tokens, toolCallId });
  }
  const ctx = (max, o = {}) => m.getContext(user, 'openai', max, { conversationId: 'w', ...o });
  const all = await ctx(1000);
  assert.deepEqual([all.messages.length, all.totalTokens, all.truncated], [7, 90, false]);
  assert.deepEqual(all.messages[3].content, CALLS);
  assert.equal(all.messages[4].toolCallId, 'call_b2');
  const four = await ctx(60);
  assert.deepEqual(four.messages.map((r) => r.content), [CALLS, '14:05', '21°C', '21°C at 14:05']);
  assert.deepEqual([four.totalTokens, four.truncated], [60, true]);
  const one = await ctx(59);
  assert.deepEqual(one.messages.map((r) => r.content), ['21°C at 14:05']);
  const none = await ctx(5);
  assert.deepEqual([none.messages, none.totalTokens, none.truncated], [[], 0, true]);
  await assert.rejects(ctx(0), (e) => e instanceof ConvdError && e.code === 'invalid_params');
});

test('getMessages and iterMessages page back through 2,500 messages', async () => {
  const user = uid();
  psql(`INSERT INTO ${HIST} (user_id, platform, model_provider, role, content) ` +
    `SELECT ${lit(user)}, 'line', 'openai', 'user', 'm' || g FROM generate_series(1, 2500) g`);
  const ids = psql(`SELECT id FROM ${HIST} WHERE user_id = ${lit(user)} ORDER BY id DESC`)
    .map((r) => Number(r[0]));
  const first = await m.getMessages(user, 'openai');
  assert.equal(first.messages.length, 100);
  assert.equal(first.messages[99].content, 'm2500');
  assert.equal(first.nextBeforeId, first.messages[0].id);
  const older = await m.getMessages(user, 'openai', { beforeId: first.nextBeforeId, limit: 2 });
  assert.deepEqual(older.messages.map((r) => r.content), ['m2399', 'm2400']);
  const seen = [];
  for await (const r of m.iterMessages(user, 'openai', { pageSize: 1000 })) seen.push(r.id);
  assert.deepEqual(seen, ids);
  assert.deepEqual(await m.getMessages(uid(), 'openai'), { messages: [], nextBeforeId: null });
});

test('deleteMessage: only the user\'s own', async () => {
  const user = uid();
  const other = uid();
  const mine = await m.addMessage(user, 'openai', 'user', 'mine');
  const theirs = await m.addMessage(other, 'openai', 'user', 'theirs');
  await assert.rejects(m.deleteMessage(user, theirs.id),
    (e) => e instanceof NotFoundError && e instanceof ConvdError && e.code === 'not_found');
  assert.deepEqual(await m.deleteMessage(user, mine.id), { deleted: 1 });
  await assert.rejects(m.deleteMessage(user, mine.id), NotFoundError);
  assert.deepEqual(psql(`SELECT content FROM ${HIST} WHERE user_id IN (${lit(user)}, ${lit(other)})`),
    [['theirs']]);
});

test('searchMessages: Traditional Chinese, English, mixed; one user only', async () => {
  const a = uid();
  const b = uid();
  const texts = ['我們明天去台北101看跨年煙火', 'The weather in Taipei is lovely', '下午三點的meeting in Taipei'];
  for (const t of texts) await m.addMessage(a, 'openai', 'user', t, { conversationId: 'c' });
  await m.addMessage(b, 'openai', 'user', '台北101 is tall');
  const found = async (user, q, o) => (await m.searchMessages(user, q, o)).map((r) => r.content);
  assert.deepEqual(await found(a, '台北101'), [texts[0]]);
  assert.deepEqual(await found(b, '台北101'), ['台北101 is tall']);
  assert.deepEqual(await found(a, 'weather'), [texts[1]]);
  assert.deepEqual(await found(a, '下午三點'), [texts[2]]);
  assert.deepEqual(await found(a, 'Taipei'), [texts[2], texts[1]]);
  assert.deepEqual(await found(a, 'Taipei', { limit: 1 }), [texts[2]]);
  const [hit] = await m.searchMessages(a, 'weather');
  assert.equal(hit.conversationId, 'c');
  assert.equal(typeof hit.id, 'number');
  assert.ok(hit.createdAt instanceof Date);
  assert.deepEqual(await found(a, 'nothing like this'), []);
});

test('forgetUser: everything, on every platform; then zeros', async () => {
  const user = uid();
  await m.addMessage(user, 'openai', 'user', 'one');
  await m.addMessage(user, 'openai', 'user', 'two', { platform: 'slack', conversationId: 'c' });
  await m.saveThreadId(user, 'thread_x');
  await m.setState(user, 'openai', { r: 1 });
  assert.deepEqual(await m.forgetUser(user), { messages: 2, threads: 1, states: 1, idempotencyKeys: 2 });
  for (const t of [HIST, 'user_thread_table', 'conversation_state']) {
    assert.deepEqual(psql(`SELECT count(*) FROM ${t} WHERE user_id = ${lit(user)}`), [['0']]);
  }
  assert.deepEqual(await m.forgetUser(user), { messages: 0, threads: 0, states: 0, idempotencyKeys: 0 });
});
