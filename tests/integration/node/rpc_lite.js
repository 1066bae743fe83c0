// convd driven by msgpack-rpc-lite (npm), a MessagePack-RPC client nobody
// here wrote (issue 14, point 4).  Run by test_thirdparty_node.py:
//   node rpc_lite.js SOCKET OVERLOADED_SOCKET
// Exits 0 when every check passed; prints one JSON summary line.
'use strict';
const assert = require('assert');
const rpc = require('msgpack-rpc-lite');
// msgpack-lite packs a JS number beyond 2^32 as a float, which convd
// refuses for an integer parameter: such values go as Int64BE (the
// int64-buffer package comes with msgpack-lite; codec option int64).
const { Int64BE } = require('int64-buffer');

// msgpack-lite does not know the timestamp extension (type -1, seen by
// msgpack-lite as the byte 0xff): decode its three sizes by hand.
function decodeTimestamp(buf) {
  let sec, nsec;
  if (buf.length === 4) {
    sec = buf.readUInt32BE(0);
    nsec = 0;
  } else if (buf.length === 8) {
    const hi = buf.readUInt32BE(0), lo = buf.readUInt32BE(4);
    nsec = hi >>> 2;
    sec = (hi & 3) * 2 ** 32 + lo;
  } else if (buf.length === 12) {
    nsec = buf.readUInt32BE(0);
    sec = Number(buf.readBigInt64BE(4));
  } else {
    throw new Error('bad timestamp length ' + buf.length);
  }
  return { sec, nsec, usec: sec * 1e6 + Math.floor(nsec / 1000),
           date: new Date(sec * 1000 + Math.floor(nsec / 1e6)) };
}

function connect(path) {
  const client = new rpc.Client({ path }, { encode: { int64: true } });
  client.decodeCodec.addExtUnpacker(0xff, decodeTimestamp);
  return client;
}

const call = (c, method, params) =>
  c.request(method, params).then(([result]) => result);

async function rejects(promise, code) {
  try {
    await promise;
  } catch (err) {
    assert.strictEqual(err.code, code, JSON.stringify(err));
    return err;
  }
  throw new Error('expected the error ' + code);
}

async function everyMethod(c) {
  assert.strictEqual(await call(c, 'ping', {}), 'pong');
  const a = await call(c, 'add_message', { user_id: 'js', provider: 'openai',
    role: 'user', content: 'hi from node', idempotency_key: 'js-1' });
  assert.ok(Number.isInteger(a.id));
  assert.ok(Math.abs(a.created_at.date - Date.now()) < 60000);
  const dup = await call(c, 'add_message', { user_id: 'js',
    provider: 'openai', role: 'user', content: 'again',
    idempotency_key: 'js-1' });
  assert.deepStrictEqual([dup.id, dup.duplicate, dup.created_at.usec],
                         [a.id, true, a.created_at.usec]);
  // positional arguments: the client spreads them into the params array
  await c.request('add_message', 'js', 'openai', 'assistant', 'hello');
  const recent = await call(c, 'get_recent_conversations',
                            { user_id: 'js', provider: 'openai' });
  assert.deepStrictEqual(recent.map(m => m.content),
                         ['hi from node', 'hello']);
  assert.strictEqual(recent[0].created_at.usec, a.created_at.usec);
  assert.strictEqual(await call(c, 'get_conversation_count',
                                { user_id: 'js' }), 2);
  const st = await call(c, 'get_user_statistics', { user_id: 'js' });
  assert.strictEqual(st.total_messages, 2);
  assert.ok(st.providers.openai.last_message_at.date instanceof Date);
  assert.strictEqual(await call(c, 'get_thread', { user_id: 'js' }), null);
  assert.strictEqual(await call(c, 'save_thread',
                                { user_id: 'js', thread_id: 't1' }), true);
  assert.strictEqual(await call(c, 'get_thread', { user_id: 'js' }), 't1');
  assert.deepStrictEqual(await call(c, 'delete_thread', { user_id: 'js' }),
                         { deleted: 1 });
  const imp = await call(c, 'import_message', { user_id: 'js2',
    provider: 'p', role: 'user', content: 'old',
    created_at: new Int64BE(1500000000123456) });
  assert.strictEqual(imp.imported, true);
  const page = await call(c, 'export_history', { user_id: 'js2' });
  assert.strictEqual(page[0].created_at.usec, 1500000000123456);
  assert.strictEqual(page[0].created_at.date.toISOString(),
                     '2017-07-14T02:40:00.123Z');
  assert.deepStrictEqual(await call(c, 'clear_user_history',
                                    { user_id: 'js', provider: 'openai' }),
                         { deleted: 2 });
  const cleaned = await call(c, 'cleanup_old_conversations',
                             { days_to_keep: 36500 });
  assert.strictEqual(cleaned.deleted, 0);
  const stats = await call(c, 'stats', {});
  assert.ok(stats.started_at.date instanceof Date);
  assert.strictEqual((await call(c, 'health', {})).ok, true);
  // errors come back as rejections of the request they answer
  await rejects(call(c, 'add_message', { user_id: 'js', provider: 'p',
                                         role: 'robot', content: 'x' }),
                'invalid_params');
  await rejects(call(c, 'no_such_method', {}), 'no_such_method');
  await rejects(call(c, 'export_history', { user_id: 'js', limit: 0 }),
                'invalid_params');
  // a notification is not answered: the next answer is the ping's
  await c.notify('ping', {});
  assert.strictEqual(await call(c, 'ping', {}), 'pong');
}

async function pipelined(c) {
  // 100 requests written at once; answers matched by msgid
  const ps = [];
  for (let i = 0; i < 100; i++) {
    const params = i % 10 === 9 ? { user_id: 'jsp', role: 'x' }
      : { user_id: 'jsp', provider: 'p', role: 'user', content: 'm' + i };
    ps.push(call(c, 'add_message', params).then(r => r,
                                                  e => ({ error: e })));
  }
  const got = await Promise.all(ps);
  const errors = got.map((r, i) => [r, i]).filter(([r]) => r.error);
  assert.deepStrictEqual(errors.map(([, i]) => i),
                         [9, 19, 29, 39, 49, 59, 69, 79, 89, 99]);
  assert.ok(errors.every(([r]) => r.error.code === 'invalid_params'));
  const ids = got.filter(r => !r.error).map(r => r.id);
  assert.deepStrictEqual(ids, ids.slice().sort((x, y) => x - y));
  const recent = await call(c, 'get_recent_conversations',
                            { user_id: 'jsp', provider: 'p', limit: 100 });
  assert.strictEqual(recent.length, 90);
  assert.deepStrictEqual(recent.map(m => m.content),
    [...Array(100).keys()].filter(i => i % 10 !== 9).map(i => 'm' + i));
  return got.length;
}

async function overloaded(path) {
  // convd at max_clients: the refusal answers our request, with its
  // msgid; no 'error' listener: an EPIPE or ECONNRESET would crash us
  const c = connect(path);
  const err = await rejects(call(c, 'ping', {}), 'overloaded');
  await new Promise(resolve => c.once('close', resolve));
  return err.code;
}

(async () => {
  const c = connect(process.argv[2]);
  await everyMethod(c);
  const n = await pipelined(c);
  c.close();
  const refused = process.argv[3] ? await overloaded(process.argv[3]) : null;
  console.log(JSON.stringify({ ok: true, pipelined: n, refused }));
})().catch(err => {
  console.error(err && err.stack ? err.stack : JSON.stringify(err));
  process.exit(1);
});
