// Type-checked, not run: `tsc --noEmit --strict` against index.d.ts
// (tests/integration/test_node_client.py).  The @ts-expect-error lines
// must be errors: they prove the declarations are read and are strict.

import {
  ConversationManager, ConvdError, ConvdConnectionError, ConvdDate,
  getConversationManager, saveThreadId, toEpochMicroseconds,
  type AddResult, type Message, type Health,
} from 'convd-client';

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
    if (e instanceof ConvdError) {
      const code: string = e.code;
      const detail: string = e.detail;
      void code; void detail;
    }
  }

  // @ts-expect-error: role must be user, assistant or system
  await m.addMessage('U1', 'anthropic', 'robot', 'Hello');
  // @ts-expect-error: the result is not a boolean
  const wrong: boolean = await m.addMessage('U1', 'anthropic', 'user', 'Hello');
  // @ts-expect-error: a thread id may be null
  const notNull: string = await m.getThreadIdByUserId('U1');
  // @ts-expect-error: no such method
  await m.addMesage('U1', 'anthropic', 'user', 'Hello');
  // @ts-expect-error: no such option
  new ConversationManager('/x', { timeOut: 5 });

  void [id, us, micro, asDate, dup, text, n, n2, n3, last, cleared, old, thread, ok, h, up,
    anything, exact, wrong, notNull];
  m.close();
}

void main;
