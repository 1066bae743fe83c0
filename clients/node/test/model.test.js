'use strict';
// Issue 17 through the promise API, against the real convd: named
// conversations, the developer and tool roles, structured content with
// binary signatures given back byte for byte, the message fields,
// listConversations / iterConversations, deleteConversation, provider
// state with expectedVersion (ConflictError, racing writers), and export
// -> import of every field.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { encode } = require('@msgpack/msgpack');
const { client, need, uid, lit, psql } = require('./helpers');

const { ConversationManager, ConvdError, ConflictError } = client;
const HIST = 'simple_conversation_history';

const SIG = new Uint8Array([...crypto.randomBytes(200), 0x00, 0xff, 0xc1]);
const THINKING = [
  { type: 'thinking', thinking: 'The user wants the weather.', signature: SIG },
  { type: 'text', text: 'Let me check.' },
  { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: '台北', days: 3 } },
];
const RESULT = [{ type: 'tool_result', tool_use_id: 'toolu_01', content: '21°C' }];

/** v with every binary value (Uint8Array, or the Buffer the decoder
 * makes) as {bin: hex}, to compare whatever the binary type. */
function plain(v) {
  if (v instanceof Uint8Array) return { bin: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

let m;
test.before(() => {
  m = new ConversationManager(need('CONVD_SOCKET'));
});
test.after(() => m.close());

test('conversations beside the default one; developer and tool roles', async () => {
  const user = uid();
  await m.addMessage(user, 'openai', 'developer', 'Be brief.');
  await m.addMessage(user, 'openai', 'user', 'named', { conversationId: 'conv_1' });
  await m.addMessage(user, 'openai', 'tool', 'result', { conversationId: 'conv_1', toolCallId: 'call_1' });
  const plain = await m.getRecentConversations(user, 'openai');
  assert.deepEqual(plain.map((r) => [r.role, r.content]), [['developer', 'Be brief.']]);
  // a plain row keeps its shape: no optional keys
  assert.deepEqual(Object.keys(plain[0]).sort(), ['content', 'createdAt', 'id', 'modelProvider', 'role']);
  const named = await m.getRecentConversations(user, 'openai', { conversationId: 'conv_1' });
  assert.deepEqual(named.map((r) => [r.role, r.conversationId, r.toolCallId]),
    [['user', 'conv_1', undefined], ['tool', 'conv_1', 'call_1']]);
  assert.equal(await m.getConversationCount(user, 'openai', { conversationId: 'conv_1' }), 2);
  assert.equal(await m.getConversationCount(user), 1);
  assert.deepEqual(await m.clearUserHistory(user, 'openai', { conversationId: 'conv_1' }), { deleted: 2 });
  assert.equal(await m.getConversationCount(user), 1);
  await assert.rejects(m.addMessage(user, 'openai', 'function', 'x'),
    (e) => e instanceof ConvdError && e.code === 'invalid_params');
});

test('structured content and fields come back exactly, binary as Uint8Array', async () => {
  const user = uid();
  const meta = { stop_reason: 'tool_use', usage: { input: 1200, output: 321 } };
  const a = await m.addMessage(user, 'anthropic', 'assistant', THINKING,
    { model: 'claude-opus-4', tokens: 321, metadata: meta, name: 'agent' });
  await m.addMessage(user, 'anthropic', 'user', RESULT, { toolCallId: 'toolu_01' });
  const rows = await m.getRecentConversations(user, 'anthropic');
  assert.equal(rows[0].id, a.id);
  assert.deepEqual(plain(rows[0].content), plain(THINKING));
  assert.ok(rows[0].content[0].signature instanceof Uint8Array);
  assert.ok(Buffer.from(rows[0].content[0].signature).equals(Buffer.from(SIG)));
  assert.deepEqual([rows[0].model, rows[0].tokens, rows[0].metadata, rows[0].name],
    ['claude-opus-4', 321, meta, 'agent']);
  assert.deepEqual(rows[1].content, RESULT);
  assert.equal(rows[1].toolCallId, 'toolu_01');
  // the database: text for search in `content`, the exact bytes sent in content_mp
  const [[text, hex]] = psql(`SELECT content, encode(content_mp, 'hex') FROM ${HIST} WHERE id = ${a.id}`);
  assert.equal(text, 'Let me check.');
  assert.equal(hex, Buffer.from(encode(THINKING)).toString('hex'));
  await assert.rejects(m.addMessage(user, 'anthropic', 'user', 'x', { tokens: -1 }),
    (e) => e.code === 'invalid_params');
  await assert.rejects(m.addMessage(user, 'anthropic', 'user', 'x',
    { metadata: { blob: new Uint8Array(65536) } }), (e) => e.code === 'invalid_params');
});

test('listConversations pages newest activity first; deleteConversation', async () => {
  const user = uid();
  for (const c of ['a', 'b', 'c']) {
    await m.addMessage(user, 'openai', 'user', `${c}1`, { conversationId: c });
    await m.addMessage(user, 'openai', 'assistant', `${c}2`, { conversationId: c });
  }
  await m.addMessage(user, 'openai', 'user', 'default');
  await m.addMessage(user, 'openai', 'user', 'a3', { conversationId: 'a' });
  const page = await m.listConversations(user, { modelProvider: 'openai' });
  assert.equal(page.next, null);
  assert.deepEqual(page.conversations.map((c) => [c.conversationId, c.messageCount]),
    [['a', 3], [null, 1], ['c', 2], ['b', 2]]);
  const c0 = page.conversations[0];
  assert.ok(c0.firstMessageAt <= c0.lastMessageAt);
  assert.equal(c0.metadata, null);
  assert.equal(c0.modelProvider, 'openai');
  const first = await m.listConversations(user, { limit: 3 });
  assert.equal(first.conversations.length, 3);
  assert.equal(typeof first.next, 'string');
  const all = [];
  for await (const c of m.iterConversations(user, { pageSize: 1 })) all.push(c.conversationId);
  assert.deepEqual(all, ['a', null, 'c', 'b']);
  await m.setState(user, 'openai', { r: 1 }, { conversationId: 'b' });
  assert.deepEqual(await m.deleteConversation(user, 'openai', 'b'), { deleted: 2 });
  assert.equal(await m.getState(user, 'openai', { conversationId: 'b' }), null);
  assert.deepEqual(await m.deleteConversation(user, 'openai', 'b'), { deleted: 0 });
});

test('state: versions, expectedVersion, ConflictError, racing writers', async () => {
  const user = uid();
  assert.equal(await m.getState(user, 'openai'), null);
  const s1 = { conversation: 'conv_68a1', previous_response_id: 'resp_1' };
  assert.deepEqual(await m.setState(user, 'openai', s1, { expectedVersion: 0 }), { version: 1 });
  const got = await m.getState(user, 'openai');
  assert.deepEqual(got.state, s1);
  assert.equal(got.version, 1);
  assert.ok(got.updatedAt instanceof Date);
  await assert.rejects(m.setState(user, 'openai', s1, { expectedVersion: 0 }),
    (e) => e instanceof ConflictError && e instanceof ConvdError && e.code === 'conflict');
  // eight writers that all read version 1: one wins
  const outcomes = await Promise.allSettled(Array.from({ length: 8 }, (_, i) =>
    m.setState(user, 'openai', { previous_response_id: `resp_w${i}` }, { expectedVersion: 1 })));
  assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
  assert.ok(outcomes.filter((o) => o.status === 'rejected').every((o) => o.reason instanceof ConflictError));
  const won = outcomes.findIndex((o) => o.status === 'fulfilled');
  const now = await m.getState(user, 'openai');
  assert.deepEqual([now.version, now.state], [2, { previous_response_id: `resp_w${won}` }]);
  // unconditional, with metadata
  assert.deepEqual(await m.setState(user, 'openai', { sig: SIG }, { metadata: { title: '旅行' } }),
    { version: 3 });
  assert.ok(Buffer.from((await m.getState(user, 'openai')).state.sig).equals(Buffer.from(SIG)));
  assert.equal(await m.getState(user, 'openai', { conversationId: 'other' }), null);
  await assert.rejects(m.setState(user, 'openai', [1]), (e) => e.code === 'invalid_params');
  const [[rows]] = psql(`SELECT count(*) FROM conversation_state WHERE user_id = ${lit(user)}`);
  assert.equal(rows, '1');
});

test('exportHistory -> importMessage carries every field', async () => {
  const user = uid();
  const copy = uid();
  await m.addMessage(user, 'anthropic', 'user', 'plain');
  await m.addMessage(user, 'anthropic', 'assistant', THINKING,
    { conversationId: 'chat', model: 'claude', tokens: 9, metadata: { k: [1, 2] }, idempotencyKey: 'evt-9' });
  await m.addMessage(user, 'anthropic', 'tool', RESULT, { conversationId: 'chat', toolCallId: 'toolu_01', name: 'w' });
  const rows = [];
  for await (const r of m.exportHistory(user)) rows.push(r);
  assert.deepEqual(rows.map((r) => r.conversationId), [undefined, 'chat', 'chat']);
  for (const r of rows) {
    const { conversationId, toolCallId, name, model, tokens, metadata, idempotencyKey } = r;
    assert.equal(await m.importMessage(copy, r.provider, r.role, r.content, r.createdAt,
      { conversationId, toolCallId, name, model, tokens, metadata, idempotencyKey }), true);
  }
  const back = [];
  for await (const r of m.exportHistory(copy)) back.push(r);
  const strip = ({ id, userId, ...rest }) => rest;
  assert.deepEqual(plain(back.map(strip)), plain(rows.map(strip)));
  const chat = [];
  for await (const r of m.exportHistory(copy, { conversationId: 'chat' })) chat.push(r.content);
  assert.deepEqual(plain(chat), plain([THINKING, RESULT]));
});

test('exportHistory goes on past pages convd shortened to max_output_bytes', async () => {
  // 1,000 messages of 17 KB: more than max_output_bytes (16 MiB) in all,
  // so convd answers the 1,000 rows asked with a shorter page
  const user = uid();
  psql(`INSERT INTO ${HIST} (user_id, platform, model_provider, role, content) ` +
    `SELECT ${lit(user)}, 'line', 'openai', 'user', lpad(g::text, 6, '0') || repeat('x', 17000) ` +
    'FROM generate_series(1, 1000) g');
  let n = 0;
  for await (const r of m.exportHistory(user)) {
    n += 1;
    assert.equal(r.content.slice(0, 6), String(n).padStart(6, '0'));
  }
  assert.equal(n, 1000);
});
