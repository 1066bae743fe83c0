'use strict';
// getState gives the metadata setState set with the state (issue 17,
// audit item 3), against the real convd: what Node set, and what another
// client (the raw protocol) set, binary values included.

const test = require('node:test');
const assert = require('node:assert/strict');
const { client, need, uid } = require('./helpers');

const { ConversationManager } = client;

let m;
test.before(() => {
  m = new ConversationManager(need('CONVD_SOCKET'));
});
test.after(() => m.close());

test('getState gives the metadata, null when none', async () => {
  const user = uid();
  const meta = { title: '台北旅行', tags: ['travel', 2026], blob: new Uint8Array([0, 255, 193]) };
  await m.setState(user, 'openai', { previous_response_id: 'r1' },
    { conversationId: 'trip', metadata: meta });
  const st = await m.getState(user, 'openai', { conversationId: 'trip' });
  assert.deepEqual(Object.keys(st).sort(), ['metadata', 'state', 'updatedAt', 'version']);
  assert.deepEqual([st.metadata.title, st.metadata.tags], [meta.title, meta.tags]);
  assert.ok(Buffer.from(st.metadata.blob).equals(Buffer.from(meta.blob)));
  // left out: kept; none ever set: null
  await m.setState(user, 'openai', { previous_response_id: 'r2' }, { conversationId: 'trip' });
  const again = await m.getState(user, 'openai', { conversationId: 'trip' });
  assert.equal(again.metadata.title, meta.title);
  assert.equal(again.version, 2);
  await m.setState(user, 'openai', { previous_response_id: 'r1' });
  assert.equal((await m.getState(user, 'openai')).metadata, null);
  // what a raw set_state set
  await m.call('set_state', { user_id: user, provider: 'openai', state: { r: 3 }, metadata: { n: 1 } });
  assert.deepEqual((await m.getState(user, 'openai')).metadata, { n: 1 });
});
