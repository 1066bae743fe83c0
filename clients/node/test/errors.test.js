'use strict';
// Errors: convd's answers as ConvdError with its code, an unreachable
// socket, a call that times out (and the connection that goes on), a
// closed manager.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { client, need, uid, lockTable, Daemon } = require('./helpers');

const { ConversationManager, ConvdError, ConvdConnectionError } = client;

let m;
test.before(() => {
  m = new ConversationManager(need('CONVD_SOCKET'));
});
test.after(() => m.close());

test('convd\'s errors are ConvdError with code and detail', async () => {
  const user = uid();
  await assert.rejects(m.addMessage(user, 'anthropic', 'robot', 'hi'), (e) => {
    assert.ok(e instanceof ConvdError && !(e instanceof ConvdConnectionError));
    assert.equal(e.code, 'invalid_params');
    assert.match(e.detail, /role/);
    assert.equal(e.message, `invalid_params: ${e.detail}`);
    return true;
  });
  await assert.rejects(m.addMessage('', 'anthropic', 'user', 'hi'), { code: 'invalid_params' });
  await assert.rejects(m.getRecentConversations(user, 'anthropic', 0), { code: 'invalid_params' });
  await assert.rejects(m.call('no_such_thing'), { code: 'no_such_method' });
  await assert.rejects(m.addMessage(user, 'anthropic', 'user', 'hi', { idempotencyKey: 'k\u0000' }),
    { code: 'invalid_params' });
  // an error answer leaves the connection usable
  assert.equal(await m.ping(), true);
  assert.equal(await m.getConversationCount(user), 0);
});

test('an unreachable socket is ConvdConnectionError connect_failed, not sent', async () => {
  const gone = new ConversationManager(path.join(os.tmpdir(), `no-convd-${process.pid}.sock`),
    { reconnectTimeout: 200 });
  const t0 = Date.now();
  await assert.rejects(gone.ping(), (e) => {
    assert.ok(e instanceof ConvdConnectionError);
    assert.equal(e.code, 'connect_failed');
    assert.equal(e.sent, false);
    return true;
  });
  // it waited for the socket to appear (a restart), then gave up
  assert.ok(Date.now() - t0 >= 150);
  gone.close();
});

test('a call that takes too long fails with timeout; the connection goes on', async () => {
  const user = uid();
  const lock = await lockTable('simple_conversation_history');
  let slow;
  try {
    await assert.rejects(m.call('get_conversation_count', { user_id: user }, { timeout: 300 }), (e) => {
      assert.ok(e instanceof ConvdConnectionError);
      assert.equal(e.code, 'timeout');
      assert.equal(e.sent, true);
      return true;
    });
    // other calls on the same connection are not held up
    assert.equal(await m.ping(), true);
    slow = m.getConversationCount(user);
  } finally {
    await lock.release();
  }
  // the late answer of the timed-out call is dropped, the next one matched
  assert.equal(await slow, 0);
});

test('a closed manager refuses calls', async () => {
  const c = new ConversationManager(need('CONVD_SOCKET'));
  assert.equal(await c.ping(), true);
  c.close();
  await assert.rejects(c.ping(), (e) => e instanceof ConvdError && e.code === 'closed');
});

test('parameters that cannot be encoded are a TypeError, nothing is sent', async () => {
  await assert.rejects(m.call('ping', { x: () => 1 }), TypeError);
  assert.equal(await m.ping(), true);
});

test('a connection convd refuses (max_clients) is ConvdError overloaded', async (t) => {
  // a convd of our own with room for one client
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convd-node-'));
  const sock = path.join(dir, 'convd.sock');
  const config = path.join(dir, 'convd.conf');
  fs.writeFileSync(config, fs.readFileSync(need('CONVD_RESTART_CONFIG'), 'utf8')
    .replace(/^socket\s*=.*$/m, `socket = ${sock}\nmax_clients = 1`));
  const d = await new Daemon(config).start();
  t.after(async () => {
    await d.stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const holder = new ConversationManager(sock);
  const other = new ConversationManager(sock);
  try {
    assert.equal(await holder.ping(), true);
    await assert.rejects(other.ping(), (e) => {
      assert.ok(e instanceof ConvdError);
      assert.equal(e.code, 'overloaded');
      return true;
    });
    // the one that got in goes on
    assert.equal(await holder.ping(), true);
  } finally {
    holder.close();
    other.close();
  }
});
