// Type-checked, not run: `tsc --noEmit --strict` against index.d.ts
// (tests/integration/test_node_client.py).  The @ts-expect-error lines
// must be errors: they prove the declarations are read and are strict.

import {
  ConversationManager, ConvdError, ConvdConnectionError, ConvdDate,
  ConflictError, NotFoundError,
  getConversationManager, saveThreadId, toEpochMicroseconds,
  type AddResult, type Message, type Health, type Content, type State,
  type Conversation, type Forgotten,
} from 'convd-client';

// a provider SDK's own interface type is accepted as content
interface FunctionCall {
  type: 'function_call';
  call_id: string;
  name: string;
  arguments: string;
}
interface ResponsesState {
  conversation: string;
  previous_response_id: string;
}

async function main(): Promise<void> {
  const m = new ConversationManager('/run/convd/convd.sock', { timeout: 5000, platform: 'line' });
  const m2 = new ConversationManager({ socketPath: '/tmp/convd.sock', maxRetries: 1 });
  const added: AddResult = await m.addMessage('U1', 'anthropic', 'user', 'Hello',
    { idempotencyKey: 'evt-1' });
  const id: number = added.id;
  const us: bigint = added.createdAt.epochMicroseconds;
  const micro: number = added.createdAt.microseconds;
  const asDate: Date = added.createdAt;
  const dup: boolean = added.duplicate;

  const rows: Message[] = await m.getRecentConversations('U1', 'anthropic', 5);
  const rows2 = await m.getRecentConversations('U1', 'anthropic', { limit: 5, platform: 'slack' });
  const text: string = rows2[0].content + rows[0].modelProvider + rows[0].createdAt.toISOStringMicro();
  const n: number = await m.getConversationCount('U1');
  const n2: number = await m.getConversationCount('U1', 'gemini', { platform: 'line' });
  const n3: number = await m.getConversationCount('U1', { modelProvider: 'gemini' });
  const stats = await m.getUserStatistics('U1');
  const last: ConvdDate = stats.anthropic.lastActivity;
  const cleared: number = (await m.clearUserHistory('U1', 'anthropic')).deleted;
  const old: number = await m.cleanupOldConversations(30);
  const thread: string | null = await m.getThreadIdByUserId('U1');
  await m.saveThreadId('U1', 'thread_1');
  await m.deleteThreadId('U1', { platform: 'line' });
  const ok: boolean = await m.ping();
  const h: Health = await m.health();
  const s = await m.stats();
  const up: number = s.uptime_s;
  for await (const r of m.exportHistory('U1', 'anthropic', { pageSize: 100 })) {
    const at: ConvdDate = r.createdAt;
    const imported: boolean = await m2.importMessage('U2', r.provider, r.role, r.content, at);
    void imported;
  }
  await m.importMessage('U2', 'anthropic', 'user', 'x', '2026-01-01T00:00:00.123456Z');
  await m.importMessage('U2', 'anthropic', 'user', 'x', 1767225600123456n);
  const anything: unknown = await m.call('ping', {}, { retry: true, timeout: 100 });

  // conversations, structured content, tool calls, state
  const call: FunctionCall = { type: 'function_call', call_id: 'call_1', name: 'weather', arguments: '{}' };
  await m.addMessage('U1', 'openai', 'assistant', [call],
    { conversationId: 'conv_1', model: 'gpt-5', tokens: 12, metadata: { turn: 1 } });
  await m.addMessage('U1', 'openai', 'tool', '{"temp": 21}',
    { conversationId: 'conv_1', toolCallId: 'call_1', name: 'weather' });
  await m.addMessage('U1', 'anthropic', 'assistant',
    [{ type: 'thinking', thinking: '...', signature: new Uint8Array([1, 2]) }]);
  await m.addMessage('U1', 'openai', 'developer', 'Be brief.');
  const recent = await m.getRecentConversations('U1', 'openai', { limit: 3, conversationId: 'conv_1' });
  const content: Content = recent[0].content;
  const parts = typeof content === 'string' ? [] : content;
  const tcid: string | undefined = recent[0].toolCallId;
  const tok: number | undefined = recent[0].tokens;
  const page = await m.listConversations('U1', { modelProvider: 'openai', limit: 10 });
  const conv: Conversation = page.conversations[0];
  const convId: string | null = conv.conversationId;
  const next: string | null = page.next;
  for await (const c of m.iterConversations('U1', { pageSize: 50 })) {
    const count: number = c.messageCount;
    void count;
  }
  const st: State<ResponsesState> | null = await m.getState<ResponsesState>('U1', 'openai',
    { conversationId: 'conv_1' });
  const prev: string | undefined = st?.state.previous_response_id;
  const title: unknown = st?.metadata?.title;
  void title;
  const setTo: ResponsesState = { conversation: 'conv_1', previous_response_id: 'resp_2' };
  const ver: number = (await m.setState('U1', 'openai', setTo,
    { conversationId: 'conv_1', expectedVersion: st ? st.version : 0 })).version;
  const gone: number = (await m.deleteConversation('U1', 'openai', 'conv_1')).deleted;
  const ctx = await m.getContext('U1', 'openai', 8000, { includeSystem: true, maxMessages: 200 });
  const ctxTokens: number = ctx.totalTokens;
  const cut: boolean = ctx.truncated;
  const msgs = await m.getMessages('U1', 'openai', { beforeId: 100, limit: 50 });
  const older: number | null = msgs.nextBeforeId;
  for await (const r of m.iterMessages('U1', 'openai', { conversationId: 'conv_1', pageSize: 500 })) {
    const mid: number = r.id;
    void mid;
  }
  await m.deleteMessage('U1', ctx.messages[0].id);
  const found: Message[] = await m.searchMessages('U1', '台北', { modelProvider: 'openai', limit: 5 });
  const forgotten: Forgotten = await m.forgetUser('U1');
  const keys: number = forgotten.idempotencyKeys;
  await saveThreadId('U1', 'thread_2');
  getConversationManager().close();
  const exact: bigint = toEpochMicroseconds(new ConvdDate(1767225600123456n));

  try {
    await m.ping();
  } catch (e) {
    if (e instanceof ConvdConnectionError) {
      const sent: boolean = e.sent;
      void sent;
    }
    if (e instanceof ConflictError || e instanceof NotFoundError) {
      const code: string = e.code;
      void code;
    }
    if (e instanceof ConvdError) {
      const code: string = e.code;
      const detail: string = e.detail;
      void code; void detail;
    }
  }

  // @ts-expect-error: role must be user, assistant, system, developer or tool
  await m.addMessage('U1', 'anthropic', 'robot', 'Hello');
  // @ts-expect-error: the result is not a boolean
  const wrong: boolean = await m.addMessage('U1', 'anthropic', 'user', 'Hello');
  // @ts-expect-error: a thread id may be null
  const notNull: string = await m.getThreadIdByUserId('U1');
  // @ts-expect-error: no such method
  await m.addMesage('U1', 'anthropic', 'user', 'Hello');
  // @ts-expect-error: no such option
  new ConversationManager('/x', { timeOut: 5 });
  // @ts-expect-error: content is text or an array / object, not a number
  await m.addMessage('U1', 'anthropic', 'user', 42);
  // @ts-expect-error: a state is an object
  await m.setState('U1', 'openai', 'resp_1');
  // @ts-expect-error: expectedVersion is a number
  await m.setState('U1', 'openai', {}, { expectedVersion: '1' });
  // @ts-expect-error: tokens is a number
  await m.addMessage('U1', 'openai', 'user', 'x', { tokens: '12' });
  // @ts-expect-error: getMessages takes no positional limit
  await m.getMessages('U1', 'openai', 100);

  void [id, us, micro, asDate, dup, text, n, n2, n3, last, cleared, old, thread, ok, h, up,
    anything, exact, wrong, notNull, parts, tcid, tok, convId, next, prev, ver, gone, ctxTokens,
    cut, older, found, keys];
  m.close();
}

void main;
