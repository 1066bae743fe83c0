#!/usr/bin/env node
'use strict';
/*
 * A LINE bot on convd: webhook -> history -> model -> reply.
 *
 *   LINE_CHANNEL_SECRET=... LINE_CHANNEL_ACCESS_TOKEN=... \
 *     node examples/line_bot.js [PORT]      # serves POST /webhook
 *   node examples/line_bot.js --demo [SOCKET]
 *
 * The shape of clients/python/examples/line_bot_flow.py, as a webhook
 * server, with the model replaced by a stand-in so that it runs anywhere
 * convd runs (put the real SDK call in modelReply):
 *
 * - the webhook checks LINE's signature (x-line-signature: base64 of the
 *   HMAC-SHA256 of the body with the channel secret) and answers 401
 *   without it;
 * - an OpenAI (Assistant API) user has a thread: look it up, create and save
 *   one on the first message, delete it on /reset;
 * - an Anthropic or Gemini user has a history: store the user's message
 *   before calling the model, fetch the recent turns as the model's
 *   context, store the reply after; /reset clears the history;
 * - the reply goes to LINE's reply API (LINE_API_BASE, default
 *   https://api.line.me).
 *
 * LINE delivers an event again when the bot did not answer 200 in time:
 * the event's webhookEventId is the idempotency key of the messages it
 * stores, so a redelivered event stores nothing twice.
 *
 * Environment: CONVD_SOCKET (default /run/convd/convd.sock), BOT_PROVIDER
 * (anthropic, gemini or openai; default anthropic), BOT_HOST (default
 * 127.0.0.1).
 */

const http = require('node:http');
const crypto = require('node:crypto');
const { ConversationManager, ConvdError } = require('convd-client');

const HISTORY_TURNS = { anthropic: 5, gemini: 20 };
const MAX_BODY = 1 << 20;

function fakeOpenaiCreateThread() {
  return `thread_${crypto.randomBytes(12).toString('hex')}`;
}

// The model: replace with the provider's SDK (Anthropic messages.create,
// Gemini generateContent, ...), given `context` as the conversation.
async function modelReply(provider, context) {
  const last = context.length ? context[context.length - 1].content : '';
  return `[${provider}] you said ${JSON.stringify(last)} (${context.length} messages of context)`;
}

/** One incoming LINE message; resolves to the bot's answer.  eventId, when
 * given, makes the stored messages idempotent. */
async function handleMessage(manager, userId, provider, text, eventId) {
  if (provider === 'openai') {
    if (text === '/reset') {
      await manager.deleteThreadId(userId);
      return 'Your conversation was reset.';
    }
    let threadId = await manager.getThreadIdByUserId(userId);
    if (threadId === null) {
      threadId = fakeOpenaiCreateThread();
      await manager.saveThreadId(userId, threadId);
    }
    return `(OpenAI would answer in ${threadId})`;
  }

  if (text === '/reset') {
    await manager.clearUserHistory(userId, provider);
    return 'Your conversation was reset.';
  }
  const key = (suffix) => (eventId ? { idempotencyKey: `${eventId}:${suffix}` } : {});
  // the user's message first, so that it is in the context...
  await manager.addMessage(userId, provider, 'user', text, key('user'));
  const context = await manager.getRecentConversations(userId, provider,
    HISTORY_TURNS[provider] || 10);
  const reply = await modelReply(provider, context);
  // ...and the reply once the model has answered
  await manager.addMessage(userId, provider, 'assistant', reply, key('assistant'));
  return reply;
}

function verifySignature(body, signature, secret) {
  if (typeof signature !== 'string') return false;
  const want = crypto.createHmac('sha256', secret).update(body).digest();
  const got = Buffer.from(signature, 'base64');
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

/** Sends a text reply with LINE's reply API. */
async function replyToLine(replyToken, text, { accessToken, apiBase }) {
  const res = await fetch(`${apiBase}/v2/bot/message/reply`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
    body: JSON.stringify({ replyToken, messages: [{ type: 'text', text }] }),
  });
  if (!res.ok) throw new Error(`LINE reply API: HTTP ${res.status}`);
}

/** An http.Server answering LINE's webhook on POST /webhook. */
function createWebhookServer({ manager, channelSecret, accessToken, apiBase, provider }) {
  return http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/webhook') {
      res.writeHead(404).end();
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if (!verifySignature(body, req.headers['x-line-signature'], channelSecret)) {
        res.writeHead(401).end();
        return;
      }
      try {
        const { events = [] } = JSON.parse(body.toString('utf8'));
        for (const ev of events) {
          if (ev.type !== 'message' || !ev.message || ev.message.type !== 'text' ||
              !ev.source || !ev.source.userId) continue;
          const answer = await handleMessage(manager, ev.source.userId, provider,
            ev.message.text, ev.webhookEventId);
          await replyToLine(ev.replyToken, answer, { accessToken, apiBase });
        }
        res.writeHead(200).end();
      } catch (e) {
        // 500: LINE delivers the event again (if redelivery is on)
        console.error(e instanceof ConvdError ? `convd: ${e.code}: ${e.detail}` : e);
        res.writeHead(500).end();
      }
    });
  });
}

async function demo(socketPath) {
  const manager = new ConversationManager(socketPath);
  const user = `U${crypto.randomBytes(16).toString('hex')}`;
  try {
    console.log(await handleMessage(manager, user, 'openai', 'Hello'));
    console.log('thread:', await manager.getThreadIdByUserId(user));
    console.log(await handleMessage(manager, user, 'openai', '/reset'));
    console.log('thread after /reset:', await manager.getThreadIdByUserId(user));

    for (const text of ['Hello', 'What is the capital of Taiwan?']) {
      console.log(await handleMessage(manager, user, 'anthropic', text));
    }
    for (const m of await manager.getRecentConversations(user, 'anthropic')) {
      console.log(`  ${m.createdAt.toISOStringMicro()}  ${m.role.padEnd(9)}  ${m.content}`);
    }
    console.log('messages:', await manager.getConversationCount(user));
    console.log(await handleMessage(manager, user, 'anthropic', '/reset'));
    console.log('messages after /reset:', await manager.getConversationCount(user));
    return 0;
  } catch (e) {
    if (!(e instanceof ConvdError)) throw e;
    console.error(`convd: ${e.code}: ${e.detail}`);
    return 1;
  } finally {
    manager.close();
  }
}

function serve(port) {
  const channelSecret = process.env.LINE_CHANNEL_SECRET;
  const accessToken = process.env.LINE_CHANNEL_ACCESS_TOKEN;
  if (!channelSecret || !accessToken) {
    console.error('set LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN (or use --demo)');
    process.exit(2);
  }
  const manager = new ConversationManager();
  const server = createWebhookServer({
    manager,
    channelSecret,
    accessToken,
    apiBase: process.env.LINE_API_BASE || 'https://api.line.me',
    provider: process.env.BOT_PROVIDER || 'anthropic',
  });
  server.listen(port, process.env.BOT_HOST || '127.0.0.1', () => {
    const a = server.address();
    console.log(`listening on http://${a.address}:${a.port}/webhook`);
  });
  const stop = () => server.close(() => manager.close());
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args[0] === '--demo') {
    demo(args[1]).then((code) => { process.exitCode = code; });
  } else {
    serve(Number(args[0] || process.env.PORT || 8080));
  }
}

module.exports = { handleMessage, verifySignature, replyToLine, createWebhookServer, modelReply };
