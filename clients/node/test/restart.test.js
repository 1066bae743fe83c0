'use strict';
// convd restarted mid-run under the client: SIGKILL and SIGTERM while 100
// pipelined addMessage calls are in flight, some of them already committed
// but not answered.  Each message is stored exactly once: the client
// reconnects and sends each call again with the same idempotency key, and
// convd answers the ones it had committed with `duplicate: true`.
//
// "Committed but not answered" is made certain, not left to timing:
// synchronous_standby_names names a standby that does not exist, so every
// commit is written (durable) and then waits for it in SyncRep; after the
// restart the setting is reset and the waits end.

const test = require('node:test');
const assert = require('node:assert/strict');
const { client, uid, lit, psql, lockTable, waitFor, Daemon, record } = require('./helpers');

const { ConversationManager, ConvdConnectionError } = client;
const HIST = 'simple_conversation_history';

async function holdCommits() {
  psql("ALTER SYSTEM SET synchronous_standby_names = 'convd_node_test_nobody'");
  psql('SELECT pg_reload_conf()');
  // the checkpointer takes the new setting a moment after the reload
  await new Promise((r) => setTimeout(r, 500));
}

function releaseCommits() {
  psql('ALTER SYSTEM RESET synchronous_standby_names');
  psql('SELECT pg_reload_conf()');
}

function syncRepWaiters() {
  return Number(psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")[0][0]);
}

/** A convd of the test's own and a manager on it, both ended after the
 * test. */
async function setUp(t) {
  const d = await new Daemon().start();
  t.after(() => d.stop('SIGKILL'));
  const m = new ConversationManager(d.socket, { reconnectTimeout: 30000, maxRetries: 6, timeout: 90000 });
  t.after(() => m.close());
  return { d, m };
}

async function restartMidRun(t, sig, tag) {
  const { d, m } = await setUp(t);
  const user = uid(tag);
  assert.equal(await m.ping(), true);
  let settled;
  let held;
  await holdCommits();
  try {
    const calls = Array.from({ length: 100 }, (_, i) =>
      m.addMessage(user, 'anthropic', 'user', `${tag} #${i}`));
    settled = Promise.allSettled(calls);
    held = await waitFor(() => syncRepWaiters(), 'commits waiting in SyncRep');
    const code = await d.stop(sig);
    if (sig === 'SIGTERM') assert.equal(code, 0, 'convd exits 0 after SIGTERM');
    await d.start();
  } finally {
    releaseCommits();
  }
  const results = await settled;
  const failed = results.filter((r) => r.status === 'rejected');
  assert.deepEqual(failed.map((r) => String(r.reason)), []);
  const res = results.map((r) => r.value);
  const ids = res.map((r) => r.id);
  assert.equal(new Set(ids).size, 100, 'one row per call');
  const rows = new Map(psql(`SELECT id, content FROM ${HIST} WHERE user_id = ${lit(user)}`)
    .map(([id, c]) => [Number(id), c]));
  assert.equal(rows.size, 100, 'exactly 100 rows: nothing lost, nothing stored twice');
  ids.forEach((id, i) => assert.equal(rows.get(id), `${tag} #${i}`));
  const duplicates = res.filter((r) => r.duplicate).length;
  // every commit that was waiting when convd went down was answered, after
  // the restart, as a duplicate of itself
  assert.ok(duplicates >= 1, `duplicates: ${duplicates}, commits held: ${held}`);
  // the client's answers match the rows, times included
  const recent = await m.getRecentConversations(user, 'anthropic', 50);
  const byId = new Map(recent.map((r) => [r.id, r]));
  for (const r of res) {
    assert.equal(byId.get(r.id).createdAt.epochMicroseconds, r.createdAt.epochMicroseconds);
  }
  record(`restart_${tag}`, { user, ids, duplicates, held });
}

test('SIGKILL with 100 pipelined addMessage in flight: each stored once', async (t) => {
  await restartMidRun(t, 'SIGKILL', 'kill');
});

test('SIGTERM (graceful restart) with 100 pipelined addMessage in flight: each stored once', async (t) => {
  await restartMidRun(t, 'SIGTERM', 'term');
});

test('reads are sent again after a restart; a clear that may have run is not', async (t) => {
  const { d, m } = await setUp(t);
  const reader = uid('read');
  const clearer = uid('clear');
  await m.addMessage(reader, 'anthropic', 'user', 'one');
  await m.addMessage(reader, 'anthropic', 'assistant', 'two');
  await m.addMessage(clearer, 'anthropic', 'user', 'x');
  const lock = await lockTable(HIST);
  let count;
  let recent;
  let clear;
  try {
    count = m.getConversationCount(reader);
    recent = m.getRecentConversations(reader, 'anthropic');
    clear = m.clearUserHistory(clearer, 'anthropic');
    clear.catch(() => {});
    await waitFor(() => Number(psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' " +
      "AND backend_type = 'client backend'")[0][0]) >= 3, 'three statements waiting on the lock');
    await d.stop('SIGKILL');
    await d.start();
  } finally {
    await lock.release();
  }
  assert.equal(await count, 2);
  assert.deepEqual((await recent).map((r) => r.content), ['one', 'two']);
  await assert.rejects(clear, (e) => {
    assert.ok(e instanceof ConvdConnectionError);
    assert.equal(e.code, 'closed');
    assert.equal(e.sent, true);
    return true;
  });
  // the manager goes on, on the new convd
  assert.equal(await m.ping(), true);
});

test('a manager kept across a restart reconnects on its next call', async (t) => {
  const { d, m } = await setUp(t);
  const user = uid('idle');
  const first = await m.addMessage(user, 'gemini', 'user', 'before');
  await d.stop('SIGTERM');
  await d.start();
  const second = await m.addMessage(user, 'gemini', 'user', 'after');
  assert.ok(second.id > first.id);
  assert.equal(await m.getConversationCount(user), 2);
});

test('an idempotency key given by the caller: the second add is a duplicate', async (t) => {
  const { m } = await setUp(t);
  const user = uid('key');
  const key = `line-event-${uid()}`;
  const a = await m.addMessage(user, 'anthropic', 'user', 'once', { idempotencyKey: key });
  const b = await m.addMessage(user, 'anthropic', 'user', 'once', { idempotencyKey: key });
  assert.equal(a.duplicate, false);
  assert.equal(b.duplicate, true);
  assert.equal(b.id, a.id);
  assert.equal(b.createdAt.epochMicroseconds, a.createdAt.epochMicroseconds);
  // the key is per (user, platform)
  const c = await m.addMessage(user, 'anthropic', 'user', 'once', { idempotencyKey: key, platform: 'slack' });
  assert.equal(c.duplicate, false);
  assert.equal(await m.getConversationCount(user), 1);
  const [[stored]] = psql(`SELECT idempotency_key FROM ${HIST} WHERE id = ${a.id}`);
  assert.equal(stored, key);
  // a fresh key for every call unless given: two equal adds, two rows
  await m.addMessage(user, 'gemini', 'user', 'same');
  await m.addMessage(user, 'gemini', 'user', 'same');
  assert.equal(await m.getConversationCount(user, 'gemini'), 2);
});
