"""convd driven by a Node.js MessagePack-RPC client from npm,
msgpack-rpc-lite (issue 14, point 4): every method, errors, timestamps
(decoded by hand: msgpack-lite does not know the extension type -1), 100
pipelined requests, and the max_clients refusal, which the client must
match to its request (it used to get a nil msgid, then EPIPE, and crash).

The package is installed from the npm registry into the build tree
($CONVD_BUILDDIR/node) by this test's set-up; the script is
tests/integration/node/rpc_lite.js.
"""
import json
import os
import shutil
import subprocess
import threading

import msgpack
import pytest

import convdtest
from convdtest import Client, scaled

PACKAGE = "msgpack-rpc-lite@1.0.2"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node",
                      "rpc_lite.js")


@pytest.fixture(scope="module")
def node_modules():
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node and npm, "nodejs (with npm) is not installed"
    prefix = os.path.join(convdtest.BUILDDIR, "node")
    mods = os.path.join(prefix, "node_modules")
    if not os.path.isdir(os.path.join(mods, "msgpack-rpc-lite")):
        os.makedirs(prefix, exist_ok=True)
        r = subprocess.run([npm, "install", "--prefix", prefix, "--no-audit",
                            "--no-fund", "--no-save", PACKAGE],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stdout
    return mods


def test_msgpack_rpc_lite(schema, convd, convd_factory, node_modules):
    busy = convd_factory(schema, extra={"server": {"max_clients": 1}})
    holder = convdtest.wait_until(lambda: Client(busy.socket),
                                  timeout=scaled(10))
    try:
        assert holder.call("ping") == "pong"
        env = dict(os.environ, NODE_PATH=node_modules)
        r = subprocess.run(["node", SCRIPT, convd.socket, busy.socket],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=scaled(120))
    finally:
        holder.close()
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"ok": True, "pipelined": 100, "refused": "overloaded"}
    with Client(convd.socket) as c:
        assert c.call("get_conversation_count", "jsp") == 90


# ------------------------------------------- issue 17's protocol (AUDIT 19)

# Run with `node -e`, NODE_PATH set: argv[1] is the socket.  It prints one
# JSON line; the thinking block's signature is then checked in the table.
ISSUE17_JS = r"""
'use strict';
const assert = require('assert');
const rpc = require('msgpack-rpc-lite');
const sock = process.argv[1];
const c = new rpc.Client({ path: sock }, { encode: { int64: true } });
c.decodeCodec.addExtUnpacker(0xff, buf => ({ ts: buf.toString('hex') }));
const call = (method, params) =>
  c.request(method, params).then(([result]) => result);

const u = 'js17_' + process.pid;
const conv = 'conv_' + u;
const turns = [
  { role: 'user', content: 'Weather in Taipei?', tokens: 5 },
  { role: 'assistant', model: 'gpt-4.1', tokens: 30,
    content: { content: null, tool_calls: [
      { id: 'call_9', type: 'function',
        function: { name: 'get_weather',
                    arguments: '{"city":"Taipei"}' } }] } },
  { role: 'tool', content: '{"temp_c": 22}', tool_call_id: 'call_9',
    name: 'get_weather', tokens: 10 },
  { role: 'assistant', content: 'It is 22 C in Taipei.', model: 'gpt-4.1',
    tokens: 9, metadata: { finish_reason: 'stop' } },
];
const sig = Buffer.concat([Buffer.from([...Array(256).keys()]),
                           Buffer.from([0, 255])]);
const thinking = [
  { type: 'thinking', thinking: 'The user wants days.', signature: sig },
  { type: 'text', text: 'Three days.' }];

(async () => {
  for (const t of turns)
    await call('add_message', Object.assign(
      { user_id: u, provider: 'openai', conversation_id: conv }, t));
  const rows = await call('get_recent_conversations',
    { user_id: u, provider: 'openai', conversation_id: conv, limit: 10 });
  assert.strictEqual(rows.length, turns.length);
  rows.forEach((got, i) => {
    for (const [k, v] of Object.entries(turns[i]))
      assert.deepStrictEqual(got[k], v, k);
    assert.strictEqual(got.conversation_id, conv);
  });
  assert.deepStrictEqual(await call('get_recent_conversations',
    { user_id: u, provider: 'openai' }), []);

  // thinking block with a bin signature: a Buffer back, every byte
  const r = await call('add_message', { user_id: u, provider: 'anthropic',
    role: 'assistant', content: thinking, conversation_id: 'think' });
  const back = await call('get_recent_conversations',
    { user_id: u, provider: 'anthropic', conversation_id: 'think' });
  assert.ok(Buffer.isBuffer(back[0].content[0].signature));
  assert.ok(back[0].content[0].signature.equals(sig));
  assert.deepStrictEqual(back[0].content, thinking);

  // versioned state; conflict rejects that request, the client goes on
  const key = { user_id: u, provider: 'openai', conversation_id: conv };
  assert.strictEqual(await call('get_state', key), null);
  const st1 = { conversation: 'conv_abc', previous_response_id: 'resp_1' };
  const st2 = { conversation: 'conv_abc', previous_response_id: 'resp_2' };
  assert.deepStrictEqual(await call('set_state',
    Object.assign({ state: st1, expected_version: 0 }, key)), { version: 1 });
  assert.deepStrictEqual(await call('set_state',
    Object.assign({ state: st2, expected_version: 1 }, key)), { version: 2 });
  let conflict = null;
  try {
    await call('set_state', Object.assign(
      { state: { previous_response_id: 'x' }, expected_version: 1 }, key));
  } catch (err) {
    conflict = err;
  }
  assert.ok(conflict, 'a stale expected_version was accepted');
  assert.strictEqual(conflict.code, 'conflict', JSON.stringify(conflict));
  assert.strictEqual(await call('ping', {}), 'pong');
  const got = await call('get_state', key);
  assert.deepStrictEqual([got.state, got.version], [st2, 2]);
  assert.ok(got.updated_at.ts);

  // list and delete (the thinking block stays: the table is checked)
  await call('add_message', { user_id: u, provider: 'anthropic',
    role: 'user', content: 'scratch', conversation_id: 'scratch' });
  let lst = await call('list_conversations', { user_id: u });
  assert.deepStrictEqual(
    lst.conversations.map(x => [x.provider, x.conversation_id,
                                x.message_count]).sort(),
    [['anthropic', 'scratch', 1], ['anthropic', 'think', 1],
     ['openai', conv, 4]]);
  assert.strictEqual(lst.next, null);
  assert.deepStrictEqual(await call('delete_conversation', { user_id: u,
    provider: 'anthropic', conversation_id: 'scratch' }), { deleted: 1 });
  lst = await call('list_conversations', { user_id: u });
  assert.deepStrictEqual(lst.conversations.map(x => x.conversation_id).sort(),
                         [conv, 'think'].sort());

  // get_context: 25 would hold the answer and the tool result, but not
  // the result without its call; 49 holds the whole exchange
  let ctx = await call('get_context', Object.assign({ max_tokens: 25 }, key));
  assert.deepStrictEqual(ctx.messages.map(m => m.content),
                         [turns[3].content]);
  assert.deepStrictEqual([ctx.total_tokens, ctx.truncated], [9, true]);
  ctx = await call('get_context', Object.assign({ max_tokens: 49 }, key));
  assert.deepStrictEqual(ctx.messages.map(m => m.role),
                         ['assistant', 'tool', 'assistant']);
  assert.deepStrictEqual(ctx.messages[0].content, turns[1].content);
  assert.strictEqual(ctx.messages[1].tool_call_id, 'call_9');
  assert.deepStrictEqual([ctx.total_tokens, ctx.truncated], [49, true]);
  ctx = await call('get_context', Object.assign({ max_tokens: 1000 }, key));
  assert.deepStrictEqual([ctx.messages.length, ctx.truncated], [4, false]);

  // issue 18's methods: paging, search, deleting one message
  let page = await call('get_messages', Object.assign({ limit: 3 }, key));
  assert.deepStrictEqual(page.messages.map(m => m.id),
                         rows.slice(1).map(m => m.id));
  assert.strictEqual(page.next_before_id, rows[1].id);
  page = await call('get_messages', Object.assign(
    { limit: 3, before_id: page.next_before_id }, key));
  assert.deepStrictEqual(page.messages.map(m => m.content),
                         [turns[0].content]);
  assert.strictEqual(page.next_before_id, null);
  const found = await call('search_messages', { user_id: u, query: 'taipei' });
  assert.deepStrictEqual(found.map(m => m.id), [rows[3].id, rows[0].id]);
  assert.deepStrictEqual(await call('delete_message',
    { user_id: u, id: rows[0].id }), { deleted: 1 });
  let gone = null;
  try {
    await call('delete_message', { user_id: u, id: rows[0].id });
  } catch (err) {
    gone = err;
  }
  assert.ok(gone && gone.code === 'not_found', JSON.stringify(gone));
  assert.strictEqual(await call('ping', {}), 'pong');
  assert.strictEqual(await call('get_conversation_count', key), 3);
  // the table is checked by the test first: forget_user is called after
  process.stdout.write(JSON.stringify({ ok: true, user: u,
                                        think_id: r.id }) + '\n');
  await new Promise(resolve => process.stdin.once('data', resolve));
  assert.deepStrictEqual(await call('forget_user', { user_id: u }),
    { messages: 4, threads: 0, states: 1, idempotency_keys: 0 });
  assert.deepStrictEqual(await call('forget_user', { user_id: u }),
    { messages: 0, threads: 0, states: 0, idempotency_keys: 0 });
  c.close();
  console.log(JSON.stringify({ forgotten: true }));
})().catch(err => {
  console.error(err && err.stack ? err.stack : JSON.stringify(err));
  process.exit(1);
});
"""


def test_msgpack_rpc_lite_issue17(schema, convd, node_modules):
    """Issue 17 through msgpack-rpc-lite: a tool exchange in a named
    conversation read back equal, a thinking block's bin signature as a
    Buffer with every byte (and in content_mp), set_state/get_state with
    expected_version and `conflict` as the rejection of that request,
    list/delete_conversation, get_context keeping the exchange whole;
    then issue 18's get_messages, search_messages, delete_message and
    forget_user (after the table is read)."""
    env = dict(os.environ, NODE_PATH=node_modules)
    p = subprocess.Popen(["node", "-e", ISSUE17_JS, convd.socket],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    watchdog = threading.Timer(scaled(120), p.kill)   # never hang CI
    watchdog.start()
    try:
        line = p.stdout.readline()
        if not line:
            out, err = p.communicate(timeout=scaled(60))
            pytest.fail("node: " + out + err)
        out = json.loads(line)
        assert out["ok"] is True
        sig = bytes(range(256)) + b"\x00\xff"
        stored = bytes.fromhex(schema.psql(
            "SELECT encode(content_mp, 'hex') FROM"
            f" simple_conversation_history WHERE id = {int(out['think_id'])}"))
        # then the script forgets the user
        rest, err = p.communicate("go\n", timeout=scaled(60))
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, rest + err
    assert json.loads(rest.strip().splitlines()[-1]) == {"forgotten": True}
    assert msgpack.unpackb(stored, raw=False) == [
        {"type": "thinking", "thinking": "The user wants days.",
         "signature": sig},
        {"type": "text", "text": "Three days."}]
    assert b"\xc5\x01\x02" + sig in stored       # bin 16, every byte
