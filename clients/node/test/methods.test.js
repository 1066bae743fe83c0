'use strict';
// Every method of convd-protocol(7) through the promise API, against the
// real convd: results, shapes, times to the microsecond as the database
// holds them, platforms, thread helpers and the module-level helpers.

const test = require('node:test');
const assert = require('node:assert/strict');
const { client, need, uid, lit, psql } = require('./helpers');

const { ConversationManager, ConvdDate } = client;
const HIST = 'simple_conversation_history';

/** [id, epoch microseconds] of the user's rows, as the database has them. */
function dbTimes(user, extra = '') {
  return psql(`SELECT id, (extract(epoch FROM created_at) * 1000000)::bigint FROM ${HIST} ` +
    `WHERE user_id = ${lit(user)} ${extra} ORDER BY created_at, id`)
    .map(([id, us]) => [Number(id), BigInt(us)]);
}

let m;
test.before(() => {
  m = new ConversationManager(need('CONVD_SOCKET'));
});
test.after(() => m.close());

test('ping, health, stats', async () => {
  assert.equal(await m.ping(), true);
  const h = await m.health();
  assert.equal(h.ok, true);
  assert.equal(h.database, 'up');
  assert.equal(h.schema, 'ok');
  const s = await m.stats();
  assert.equal(typeof s.version, 'string');
  assert.ok(s.started_at instanceof ConvdDate);
  assert.ok(s.started_at.getTime() <= Date.now());
  assert.ok(s.methods.ping.requests >= 1);
});

test('addMessage stores and answers with the row, time to the microsecond', async () => {
  const user = uid();
  const a = await m.addMessage(user, 'anthropic', 'user', 'Hello');
  const b = await m.addMessage(user, 'anthropic', 'assistant', 'Hi \u4f60\u597d\n\u2603');
  assert.equal(typeof a.id, 'number');
  assert.equal(a.duplicate, false);
  assert.ok(a.createdAt instanceof Date && a.createdAt instanceof ConvdDate);
  const db = dbTimes(user);
  assert.deepEqual(db.map((r) => r[0]), [a.id, b.id]);
  assert.equal(a.createdAt.epochMicroseconds, db[0][1]);
  assert.equal(b.createdAt.epochMicroseconds, db[1][1]);
  assert.equal(a.createdAt.getTime(), Number(db[0][1] / 1000n));
  assert.equal(a.createdAt.microseconds, Number(db[0][1] % 1000000n));
  // (as JSON: the content has a newline)
  const [[row]] = psql(`SELECT json_build_array(content, role, model_provider, platform) FROM ${HIST} ` +
    `WHERE id = ${b.id}`);
  assert.deepEqual(JSON.parse(row), ['Hi \u4f60\u597d\n\u2603', 'assistant', 'anthropic', 'line']);
});

test('getRecentConversations: newest 2 x limit, oldest first, Dates', async () => {
  const user = uid();
  for (let i = 0; i < 7; i++) {
    await m.addMessage(user, 'gemini', i % 2 ? 'assistant' : 'user', `m${i}`);
  }
  await m.addMessage(user, 'anthropic', 'user', 'other provider');
  let rows = await m.getRecentConversations(user, 'gemini', 2);
  assert.deepEqual(rows.map((r) => r.content), ['m3', 'm4', 'm5', 'm6']);
  rows = await m.getRecentConversations(user, 'gemini', { limit: 1 });
  assert.deepEqual(rows.map((r) => r.content), ['m5', 'm6']);
  rows = await m.getRecentConversations(user, 'gemini');
  assert.equal(rows.length, 7);
  const db = dbTimes(user, "AND model_provider = 'gemini'");
  assert.deepEqual(rows.map((r) => [r.id, r.createdAt.epochMicroseconds]), db);
  for (const r of rows) {
    assert.deepEqual(Object.keys(r).sort(), ['content', 'createdAt', 'id', 'modelProvider', 'role']);
    assert.equal(r.modelProvider, 'gemini');
    // JSON keeps the microseconds
    assert.equal(JSON.parse(JSON.stringify(r)).createdAt, r.createdAt.toISOStringMicro());
  }
  assert.deepEqual(await m.getRecentConversations(uid(), 'gemini'), []);
});

test('platforms, counts, statistics, clearUserHistory', async () => {
  const user = uid();
  for (const [p, n] of [['anthropic', 3], ['gemini', 2]]) {
    for (let i = 0; i < n; i++) await m.addMessage(user, p, 'user', `${p} ${i}`);
  }
  await m.addMessage(user, 'anthropic', 'user', 'elsewhere', { platform: 'slack' });
  assert.equal(await m.getConversationCount(user), 5);
  assert.equal(await m.getConversationCount(user, 'gemini'), 2);
  assert.equal(await m.getConversationCount(user, { modelProvider: 'anthropic', platform: 'slack' }), 1);
  const stats = await m.getUserStatistics(user);
  assert.deepEqual(Object.keys(stats).sort(), ['anthropic', 'gemini']);
  assert.equal(stats.anthropic.messageCount, 3);
  const [[last]] = psql(`SELECT (extract(epoch FROM max(created_at)) * 1000000)::bigint FROM ${HIST} ` +
    `WHERE user_id = ${lit(user)} AND platform = 'line' AND model_provider = 'gemini'`);
  assert.equal(stats.gemini.lastActivity.epochMicroseconds, BigInt(last));
  assert.deepEqual(await m.getUserStatistics(uid()), {});
  assert.deepEqual(await m.clearUserHistory(user, 'anthropic'), { deleted: 3 });
  assert.equal(await m.getConversationCount(user), 2);
  assert.equal(await m.getConversationCount(user, null, { platform: 'slack' }), 1);
  assert.equal(Number(psql(`SELECT count(*) FROM ${HIST} WHERE user_id = ${lit(user)}`)[0][0]), 3);
});

test('thread helpers', async () => {
  const user = uid();
  assert.equal(await m.getThreadIdByUserId(user), null);
  assert.equal(await m.saveThreadId(user, 'thread_abc'), undefined);
  assert.equal(await m.getThreadIdByUserId(user), 'thread_abc');
  await m.saveThreadId(user, 'thread_def');
  assert.equal(await m.getThreadIdByUserId(user), 'thread_def');
  assert.equal(await m.getThreadIdByUserId(user, { platform: 'slack' }), null);
  const [[tid]] = psql(`SELECT thread_id FROM user_thread_table WHERE user_id = ${lit(user)}`);
  assert.equal(tid, 'thread_def');
  await m.deleteThreadId(user);
  assert.equal(await m.getThreadIdByUserId(user), null);
});

test('module-level helpers use $CONVD_SOCKET', async () => {
  const user = uid();
  await client.saveThreadId(user, 'thread_mod');
  assert.equal(await client.getThreadIdByUserId(user), 'thread_mod');
  await client.deleteThreadId(user);
  assert.equal(await client.getThreadIdByUserId(user), null);
  assert.equal(client.getConversationManager(), client.getConversationManager());
  assert.equal(client.getConversationManager().socketPath, need('CONVD_SOCKET'));
  client.getConversationManager().close();
});

test('exportHistory pages through everything; importMessage keeps the microseconds', async () => {
  const user = uid();
  const added = [];
  for (let i = 0; i < 5; i++) {
    added.push(await m.addMessage(user, i % 2 ? 'gemini' : 'anthropic', 'user', `e${i}`));
  }
  const all = [];
  for await (const r of m.exportHistory(user, { pageSize: 2 })) all.push(r);
  assert.deepEqual(all.map((r) => r.id), added.map((a) => a.id));
  assert.deepEqual(all.map((r) => r.createdAt.epochMicroseconds), added.map((a) => a.createdAt.epochMicroseconds));
  assert.deepEqual(Object.keys(all[0]).sort(),
    ['content', 'createdAt', 'id', 'idempotencyKey', 'platform', 'provider', 'role', 'userId']);
  // addMessage gave each a key of its own, and the export carries it
  assert.equal(new Set(all.map((r) => r.idempotencyKey)).size, 5);
  assert.ok(all.every((r) => typeof r.idempotencyKey === 'string'));
  const gem = [];
  for await (const r of m.exportHistory(user, 'gemini')) gem.push(r.content);
  assert.deepEqual(gem, ['e1', 'e3']);

  // into another user, with the exact times, three ways of giving them
  const copy = uid();
  for (const [i, r] of all.entries()) {
    const at = [r.createdAt, JSON.parse(JSON.stringify(r)).createdAt, r.createdAt.epochMicroseconds][i % 3];
    assert.equal(await m.importMessage(copy, r.provider, r.role, r.content, at), true);
  }
  // the same message again: convd finds it, nothing stored
  assert.equal(await m.importMessage(copy, all[0].provider, 'user', 'e0', all[0].createdAt), false);
  assert.deepEqual(dbTimes(copy).map((r) => r[1]), all.map((r) => r.createdAt.epochMicroseconds));
  // with the exported keys: stored once per key, however often it runs
  const keyed = uid();
  for (let round = 0; round < 2; round++) {
    for (const r of all) {
      assert.equal(await m.importMessage(keyed, r.provider, r.role, r.content, r.createdAt,
        { idempotencyKey: r.idempotencyKey }), round === 0);
    }
  }
  assert.deepEqual(psql(`SELECT idempotency_key FROM ${HIST} WHERE user_id = ${lit(keyed)} ORDER BY id`)
    .map((r) => r[0]), all.map((r) => r.idempotencyKey));

  // whole seconds (timestamp 32), and after 2514 (timestamp 96): exact
  const old = uid();
  await m.importMessage(old, 'anthropic', 'user', 'whole', '1999-12-31T23:59:59Z');
  await m.importMessage(old, 'anthropic', 'user', 'zone', '2000-01-01T08:00:00.123456+08:00');
  await m.importMessage(old, 'anthropic', 'user', 'far', '2600-01-01T00:00:00.000001+01:00');
  const back = await m.getRecentConversations(old, 'anthropic');
  assert.deepEqual(back.map((r) => r.createdAt.toISOStringMicro()),
    ['1999-12-31T23:59:59.000000Z', '2000-01-01T00:00:00.123456Z', '2599-12-31T23:00:00.000001Z']);
  assert.equal(back[1].createdAt.microseconds, 123456);
  assert.deepEqual(dbTimes(old).map((r) => r[1]), back.map((r) => r.createdAt.epochMicroseconds));
});

test('cleanupOldConversations deletes what is older than daysToKeep', async () => {
  const user = uid();
  await m.importMessage(user, 'anthropic', 'user', 'ancient', new Date('2001-01-01T00:00:00Z'));
  await m.addMessage(user, 'anthropic', 'user', 'new');
  assert.ok(await m.cleanupOldConversations(3650) >= 1);
  const rows = await m.getRecentConversations(user, 'anthropic');
  assert.deepEqual(rows.map((r) => r.content), ['new']);
});

test('call() reaches any method with convd\'s own parameter names', async () => {
  assert.equal(await m.call('ping'), 'pong');
  const user = uid();
  await m.addMessage(user, 'anthropic', 'user', 'x');
  assert.equal(await m.call('get_conversation_count', { user_id: user, platform: undefined }), 1);
});
