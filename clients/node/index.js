'use strict';
/*
 * convd-client: the Node.js client of convd, the conversation store daemon.
 *
 * A promise API over MessagePack-RPC on convd's Unix socket
 * (convd-protocol(7)), mirroring the Python client (clients/python,
 * convd_client): the same methods in camelCase, errors as ConvdError with
 * convd's `code`, times as Date (ConvdDate, with the microseconds convd
 * keeps).  One connection carries every call, pipelined: calls do not wait
 * for each other.  It reconnects by itself, and sends a call again after a
 * broken connection when that is safe: reads, saveThreadId, setState
 * without expectedVersion, and writes that carry an idempotency key
 * (addMessage makes a fresh one for every call unless given one;
 * importMessage uses one when given).
 *
 * The only dependency is @msgpack/msgpack.
 */

const net = require('node:net');
const crypto = require('node:crypto');
const {
  Encoder,
  Decoder,
  ExtensionCodec,
  encodeTimeSpecToTimestamp,
  decodeTimestampToTimeSpec,
} = require('@msgpack/msgpack');

const VERSION = '1.1.0';
const DEFAULT_SOCKET = '/run/convd/convd.sock';

// Largest string, binary or container accepted in a response: convd's own
// max_output_bytes (16 MiB by default) is far below.
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;
const MAX_CONTAINER = 1 << 20;
const MSGID_MAX = 0xffffffff;

// Methods sent again after a broken connection (or an `unavailable`
// answer): reads and idempotent writes.  add_message and import_message
// join them when they carry an idempotency key (addMessage makes one for
// every call), set_state when it has no expected_version (it puts the
// same state again); clear_user_history, delete_thread,
// cleanup_old_conversations, delete_conversation, delete_message and
// forget_user never do.  A set_state with expected_version is not sent
// again: had the first attempt run, the second would find the version it
// made and fail with `conflict`.
const RETRY_SAFE = new Set([
  'ping', 'stats', 'health', 'get_recent_conversations',
  'get_conversation_count', 'get_user_statistics', 'get_thread',
  'save_thread', 'export_history', 'list_conversations', 'get_state',
  'get_context', 'get_messages', 'search_messages',
]);
const KEYED = new Set(['add_message', 'import_message']);

function retrySafe(method, params) {
  return RETRY_SAFE.has(method) ||
    (KEYED.has(method) && params.idempotency_key !== undefined) ||
    (method === 'set_state' && params.expected_version === undefined);
}

// A message's optional fields: option name -> convd's name.  A row
// carries one only when the message has it.
const MESSAGE_FIELDS = [
  ['conversationId', 'conversation_id'], ['toolCallId', 'tool_call_id'],
  ['name', 'name'], ['model', 'model'], ['tokens', 'tokens'],
  ['metadata', 'metadata'],
];

// ------------------------------------------------------------------ errors

/** convd answered with an error: `code` is convd's error code
 * (convd-protocol(7)), `detail` its message (for people). */
class ConvdError extends Error {
  constructor(code, detail) {
    super(`${code}: ${detail}`);
    this.name = 'ConvdError';
    this.code = code;
    this.detail = detail;
  }
}

/** convd cannot be reached, or the connection failed mid-call: `code` is
 * `connect_failed`, `closed`, `timeout` or `protocol` (or convd's code for
 * a refused connection: `overloaded`, `permission_denied`).  `sent` is
 * false when the request certainly never reached convd. */
class ConvdConnectionError extends ConvdError {
  constructor(code, detail, sent = true) {
    super(code, detail);
    this.name = 'ConvdConnectionError';
    this.sent = sent;
  }
}

/** setState's expectedVersion did not match (code `conflict`): another
 * writer changed the state first.  Read it again (getState) and decide
 * anew; the detail names the current version. */
class ConflictError extends ConvdError {
  constructor(code, detail) {
    super(code, detail);
    this.name = 'ConflictError';
  }
}

/** Nothing of that user to act on (code `not_found`): deleteMessage of an
 * id that is not the user's. */
class NotFoundError extends ConvdError {
  constructor(code, detail) {
    super(code, detail);
    this.name = 'NotFoundError';
  }
}

function errorFields(error) {
  if (error && typeof error === 'object' && !Array.isArray(error)) {
    return [String(error.code ?? 'error'), String(error.message ?? '')];
  }
  return ['error', String(error)];
}

/** The error for an error object convd answered a request with. */
function daemonError(error) {
  const [code, detail] = errorFields(error);
  if (code === 'conflict') return new ConflictError(code, detail);
  if (code === 'not_found') return new NotFoundError(code, detail);
  return new ConvdError(code, detail);
}

// ------------------------------------------------------------------- times

function floorDiv(a, b) {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

/** A Date that keeps microseconds: convd stores times to the microsecond,
 * a Date holds milliseconds.  `microseconds` is the microsecond within the
 * second (0..999999, as Python's datetime.microsecond), `epochMicroseconds`
 * the exact time as a bigint; toJSON() (and so JSON.stringify) writes six
 * fraction digits, toISOString() stays the standard three. */
class ConvdDate extends Date {
  #subMs = 0;

  constructor(...args) {
    if (args.length === 1 && typeof args[0] === 'bigint') {
      const us = args[0];
      super(Number(floorDiv(us, 1000n)));
      this.#subMs = Number(us - floorDiv(us, 1000n) * 1000n);
    } else if (args.length === 1 && args[0] instanceof ConvdDate) {
      super(args[0].getTime());
      this.#subMs = args[0].#subMs;
    } else {
      super(...args);
    }
  }

  /** A ConvdDate from microseconds since the epoch (bigint or number). */
  static fromEpochMicroseconds(us) {
    return new ConvdDate(BigInt(us));
  }

  /** The time as microseconds since 1970-01-01T00:00:00Z (bigint). */
  get epochMicroseconds() {
    return BigInt(this.getTime()) * 1000n + BigInt(this.#subMs);
  }

  /** The microsecond within the second, 0..999999. */
  get microseconds() {
    return this.getUTCMilliseconds() * 1000 + this.#subMs;
  }

  /** ISO 8601 in UTC with six fraction digits:
   * 2026-11-24T06:52:58.123456Z. */
  toISOStringMicro() {
    return this.toISOString().slice(0, -1) +
      String(this.#subMs).padStart(3, '0') + 'Z';
  }

  toJSON() {
    return Number.isNaN(this.getTime()) ? null : this.toISOStringMicro();
  }
}

const ISO_RE = /^(\d{4,6})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|z|[+-]\d\d:?\d\d)?$/;

/** A time given by the caller -> microseconds since the epoch (bigint):
 * a ConvdDate (exact), a Date, ISO 8601 text (up to microseconds; no zone
 * means UTC), or a bigint of microseconds. */
function toEpochMicroseconds(t) {
  if (typeof t === 'bigint') return t;
  if (t instanceof ConvdDate) return t.epochMicroseconds;
  if (t instanceof Date) {
    if (Number.isNaN(t.getTime())) throw new TypeError('createdAt: invalid Date');
    return BigInt(t.getTime()) * 1000n;
  }
  if (typeof t === 'string') {
    const m = ISO_RE.exec(t.trim());
    if (!m) throw new TypeError(`createdAt: not an ISO 8601 time: ${t}`);
    const d = new Date(0);
    d.setUTCFullYear(+m[1], +m[2] - 1, +m[3]); // (Date.UTC maps 0..99 to 19xx)
    d.setUTCHours(+m[4], +m[5], +m[6]);
    const ms = d.getTime();
    if (Number.isNaN(ms) || d.getUTCMonth() !== +m[2] - 1 || d.getUTCDate() !== +m[3] ||
        +m[4] > 23 || +m[5] > 59 || +m[6] > 59) {
      throw new TypeError(`createdAt: not a valid time: ${t}`);
    }
    let us = BigInt(ms) * 1000n + BigInt(((m[7] || '') + '000000').slice(0, 6));
    const zone = m[8];
    if (zone && zone !== 'Z' && zone !== 'z') {
      const z = zone.replace(':', '');
      const off = (Number(z.slice(1, 3)) * 60 + Number(z.slice(3, 5))) * 60;
      us -= BigInt(z[0] === '-' ? -off : off) * 1000000n;
    }
    return us;
  }
  throw new TypeError('createdAt must be a Date, ISO 8601 text or a bigint of microseconds');
}

// The MessagePack timestamp extension (-1), all three formats, to and from
// ConvdDate with microseconds (convd never sends finer).
const extensionCodec = new ExtensionCodec();
extensionCodec.register({
  type: -1,
  encode(input) {
    if (!(input instanceof Date)) return null;
    const us = toEpochMicroseconds(input);
    const sec = floorDiv(us, 1000000n);
    return encodeTimeSpecToTimestamp({
      sec: Number(sec), nsec: Number(us - sec * 1000000n) * 1000,
    });
  },
  decode(data) {
    const { sec, nsec } = decodeTimestampToTimeSpec(data);
    if (!(nsec >= 0 && nsec < 1e9)) {
      throw new RangeError(`timestamp with nanoseconds ${nsec}`);
    }
    return new ConvdDate(BigInt(sec) * 1000000n + BigInt(Math.floor(nsec / 1000)));
  },
});

const encoder = new Encoder({
  extensionCodec, useBigInt64: true, ignoreUndefined: true,
});

/* 64-bit integers (msgpack int64 / uint64) as numbers when they are
 * safe (within 2^53), as bigints when not: a structured content's
 * 2^60 + 1 comes back 1152921504606846977n, not rounded to a float, and
 * goes back to convd as the same integer (the encoder packs bigints as
 * int64 / uint64).  Ids, counts and versions stay numbers. */
class ConvdDecoder extends Decoder {
  readU64AsBigInt() {
    const v = super.readU64AsBigInt();
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  readI64AsBigInt() {
    const v = super.readI64AsBigInt();
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v) : v;
  }
}

function newDecoder() {
  return new ConvdDecoder({
    useBigInt64: true,
    extensionCodec,
    maxStrLength: MAX_RESPONSE_BYTES,
    maxBinLength: MAX_RESPONSE_BYTES,
    maxArrayLength: MAX_CONTAINER,
    maxMapLength: MAX_CONTAINER,
    maxExtLength: 16,
  });
}

// -------------------------------------------------------------- connection

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One socket to convd carrying any number of requests at once (matched
 * by msgid). */
class Connection {
  constructor(sock, onGone) {
    this.sock = sock;
    this.onGone = onGone;
    this.pending = new Map(); // msgid -> {resolve, reject, sent, timer}
    this.queue = []; // [msgid, bytes] not yet handed to the socket
    this.flushing = false;
    this.msgid = 0;
    this.closed = false;
    sock.setNoDelay?.(true);
    sock.unref();
    this.reader = this.read();
  }

  async read() {
    let why = ['closed', 'convd closed the connection before answering'];
    try {
      for await (const msg of newDecoder().decodeStream(this.sock)) {
        if (this.closed) break;
        const fail = this.onMessage(msg);
        if (fail) {
          why = fail;
          break;
        }
      }
    } catch (e) {
      why = e && (e.name === 'DecodeError' || e instanceof RangeError)
        ? ['protocol', `undecodable response: ${e.message}`]
        : ['closed', `read: ${e && e.message}`];
    }
    this.close(...why);
  }

  /** Handles one message; returns [code, detail] when the connection must
   * end. */
  onMessage(msg) {
    if (!Array.isArray(msg) || msg.length !== 4 || msg[0] !== 1) {
      return ['protocol', 'convd sent something that is not a response'];
    }
    const [, msgid, error, result] = msg;
    if (msgid === null && error !== null) {
      // about the connection as a whole (overloaded, permission_denied,
      // undecodable input): convd closes it
      return errorFields(error);
    }
    const p = this.pending.get(msgid);
    if (!p) return null; // answer to a call that timed out
    this.pending.delete(msgid);
    clearTimeout(p.timer);
    if (this.pending.size === 0 && !this.closed) this.sock.unref();
    if (error !== null) p.reject(daemonError(error));
    else p.resolve(result);
    return null;
  }

  nextId() {
    do {
      this.msgid = this.msgid >= MSGID_MAX ? 1 : this.msgid + 1;
    } while (this.pending.has(this.msgid));
    return this.msgid;
  }

  send(method, params, timeoutMs) {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new ConvdConnectionError('closed', 'connection closed', false));
        return;
      }
      const msgid = this.nextId();
      let bytes;
      try {
        bytes = encoder.encode([0, msgid, method, [params]]);
      } catch (e) {
        reject(new TypeError(`${method}: cannot encode parameters: ${e.message}`));
        return;
      }
      const p = { resolve, reject, sent: false, timer: null };
      if (timeoutMs != null && timeoutMs !== Infinity) {
        p.timer = setTimeout(() => {
          if (this.pending.get(msgid) !== p) return;
          this.pending.delete(msgid);
          if (this.pending.size === 0 && !this.closed) this.sock.unref();
          reject(new ConvdConnectionError('timeout',
            `no answer from convd within ${timeoutMs} ms`, p.sent));
        }, Math.max(0, timeoutMs));
      }
      this.pending.set(msgid, p);
      this.sock.ref();
      this.queue.push([msgid, bytes]);
      if (!this.flushing) {
        this.flushing = true;
        // every call made in this turn of the event loop goes out in one
        // write
        process.nextTick(() => this.flush());
      }
    });
  }

  flush() {
    this.flushing = false;
    if (this.closed || this.queue.length === 0) return;
    // (a call that timed out before its turn came is not sent: it was
    // reported as never sent)
    const batch = this.queue.filter(([msgid]) => this.pending.has(msgid));
    this.queue = [];
    if (batch.length === 0) return;
    for (const [msgid] of batch) this.pending.get(msgid).sent = true;
    this.sock.write(batch.length === 1 ? batch[0][1]
      : Buffer.concat(batch.map((b) => b[1])));
  }

  /** Ends the connection; every call still waiting fails with `code`. */
  close(code = 'closed', detail = 'connection closed') {
    if (this.closed) return;
    this.closed = true;
    this.sock.destroy();
    const pending = this.pending;
    this.pending = new Map();
    this.queue = [];
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(new ConvdConnectionError(code, detail, p.sent));
    }
    this.onGone(this);
  }
}

function connectOnce(path) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    const onError = (e) => {
      sock.destroy();
      reject(e);
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.removeListener('error', onError);
      // errors surface through the reader
      sock.on('error', () => {});
      resolve(sock);
    });
  });
}

// ----------------------------------------------------------------- manager

function pick(arg) {
  // an optional positional argument that may be left out for the options
  // object: f(a, b, 5) or f(a, b, {limit: 5})
  return arg !== null && typeof arg === 'object' ? [undefined, arg]
    : [arg, undefined];
}

/** Copies the message fields a row has (convd's names) into out
 * (camelCase). */
function withFields(out, r) {
  for (const [ours, theirs] of MESSAGE_FIELDS) {
    if (r[theirs] !== undefined && r[theirs] !== null) out[ours] = r[theirs];
  }
  return out;
}

/** The message fields of an options object, as convd's parameters. */
function fieldParams(opts) {
  const out = {};
  for (const [ours, theirs] of MESSAGE_FIELDS) out[theirs] = opts[ours];
  return out;
}

/** A message as the methods resolve to it; `keyed`: with its
 * idempotencyKey when it has one (not in getRecentConversations' rows). */
function rowOf(r, keyed) {
  const out = withFields({
    id: r.id,
    role: r.role,
    content: r.content,
    createdAt: r.created_at,
    modelProvider: r.provider,
  }, r);
  if (keyed === true && r.idempotency_key != null) out.idempotencyKey = r.idempotency_key;
  return out;
}

function conversationOf(c) {
  return {
    modelProvider: c.provider,
    conversationId: c.conversation_id ?? null,
    messageCount: c.message_count,
    firstMessageAt: c.first_message_at ?? null,
    lastMessageAt: c.last_message_at ?? null,
    metadata: c.metadata ?? null,
  };
}

/** The conversation store of a chatbot, backed by convd.  See README.md. */
class ConversationManager {
  /**
   * @param {string} [socketPath] convd's socket; default $CONVD_SOCKET,
   *   else /run/convd/convd.sock.
   * @param {object} [options] timeout, platform, reconnectTimeout,
   *   maxRetries, idempotencyKeys.
   */
  constructor(socketPath, options) {
    if (socketPath !== null && typeof socketPath === 'object') {
      options = socketPath;
      socketPath = options.socketPath;
    }
    const o = options || {};
    this.socketPath = socketPath || process.env.CONVD_SOCKET || DEFAULT_SOCKET;
    this.timeout = o.timeout === undefined ? 30000 : o.timeout;
    this.platform = o.platform || 'line';
    this.reconnectTimeout = o.reconnectTimeout === undefined ? 5000 : o.reconnectTimeout;
    this.maxRetries = o.maxRetries === undefined ? 3 : o.maxRetries;
    this.idempotencyKeys = o.idempotencyKeys !== false;
    this._conn = null;
    this._connecting = null;
    this._closed = false;
  }

  // --------------------------------------------------------- plumbing

  async _connect() {
    const deadline = Date.now() + Math.max(this.reconnectTimeout || 0, 0);
    let delay = 20;
    for (;;) {
      if (this._closed) throw new ConvdError('closed', 'the manager was closed');
      try {
        const sock = await connectOnce(this.socketPath);
        if (this._closed) {
          sock.destroy();
          throw new ConvdError('closed', 'the manager was closed');
        }
        const conn = new Connection(sock, (c) => {
          if (this._conn === c) this._conn = null;
        });
        this._conn = conn;
        return conn;
      } catch (e) {
        if (e instanceof ConvdError) throw e;
        // convd not there yet, not listening yet, its backlog full, or a
        // connection queued in its backlog as it stopped (a restart)
        const waiting = ['ENOENT', 'ECONNREFUSED', 'EAGAIN', 'ECONNRESET'].includes(e.code);
        if (!waiting || Date.now() >= deadline) {
          throw new ConvdConnectionError('connect_failed',
            `${this.socketPath}: ${e.message}`, false);
        }
      }
      await sleep(Math.min(delay, Math.max(deadline - Date.now(), 0)));
      delay = Math.min(delay * 2, 250);
    }
  }

  _connection() {
    if (this._closed) {
      return Promise.reject(new ConvdError('closed', 'the manager was closed'));
    }
    if (this._conn && !this._conn.closed) return Promise.resolve(this._conn);
    if (!this._connecting) {
      this._connecting = this._connect().finally(() => {
        this._connecting = null;
      });
    }
    return this._connecting;
  }

  /** _connection(), failing with `timeout` (not sent) at deadline. */
  _connectionBy(deadline) {
    const p = this._connection();
    if (deadline === Infinity) return p;
    let timer;
    const late = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new ConvdConnectionError('timeout',
        `${this.socketPath}: no connection within the call's timeout`, false)),
      Math.max(0, deadline - Date.now()));
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  /**
   * Calls a convd method with named parameters (snake_case, as in
   * convd-protocol(7); undefined and null values are left out) and
   * resolves to its result as convd sent it (times as ConvdDate).
   * A call is sent again, on a new connection if need be, up to
   * maxRetries times: when it never reached convd, and, for reads and
   * idempotent writes (retry: true), when the connection broke before the
   * answer or convd answered `unavailable`.
   */
  async call(method, params = {}, { retry, timeout } = {}) {
    const clean = {};
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null) clean[k] = v;
    }
    const safe = retry !== undefined ? !!retry : retrySafe(method, clean);
    const limit = timeout === undefined ? this.timeout : timeout;
    const deadline = limit == null ? Infinity : Date.now() + limit;
    let tries = 0;
    for (;;) {
      try {
        const conn = await this._connectionBy(deadline);
        return await conn.send(method, clean, deadline - Date.now());
      } catch (e) {
        // connect_failed: _connect already waited reconnectTimeout
        if (!(e instanceof ConvdError) || e.code === 'connect_failed') throw e;
        const again = e instanceof ConvdConnectionError
          ? !e.sent || (safe && e.code === 'closed')
          : safe && e.code === 'unavailable';
        if (!again || tries >= this.maxRetries || Date.now() >= deadline) throw e;
        tries += 1;
        if (e.code === 'unavailable') {
          await sleep(Math.min(50 * 2 ** (tries - 1), 1000, Math.max(deadline - Date.now(), 0)));
        }
      }
    }
  }

  /** Closes the connection; calls still waiting fail, and the manager
   * cannot be used after. */
  close() {
    this._closed = true;
    if (this._conn) this._conn.close('closed', 'the manager was closed');
    this._conn = null;
  }

  _platform(opts) {
    return (opts && opts.platform) || this.platform;
  }

  _key(opts) {
    if (opts && opts.idempotencyKey != null) return opts.idempotencyKey;
    return this.idempotencyKeys ? crypto.randomUUID() : undefined;
  }

  // ------------------------------------------------- the seed's methods

  /** Stores one message (content: text, or an array / object of content
   * parts, given back exactly, binary as Uint8Array); resolves once it is
   * committed to {id, createdAt, duplicate}.  opts: platform,
   * idempotencyKey, conversationId, toolCallId, name, model, tokens,
   * metadata. */
  async addMessage(userId, modelProvider, role, content, opts = {}) {
    const res = await this.call('add_message', {
      user_id: userId, provider: modelProvider, role, content,
      platform: this._platform(opts),
      idempotency_key: this._key(opts),
      ...fieldParams(opts),
    });
    return { id: res.id, createdAt: res.created_at, duplicate: res.duplicate === true };
  }

  /** The newest 2 x limit messages (limit counts turns, default 10), oldest
   * first: [{id, role, content, createdAt, modelProvider}], plus
   * conversationId, toolCallId, name, model, tokens, metadata where the
   * message has them.  opts: limit, platform, conversationId. */
  async getRecentConversations(userId, modelProvider, limit, opts) {
    const [n, o] = pick(limit);
    opts = o || opts || {};
    const rows = await this.call('get_recent_conversations', {
      user_id: userId, provider: modelProvider,
      limit: n !== undefined ? n : opts.limit,
      platform: this._platform(opts),
      conversation_id: opts.conversationId,
    });
    return rows.map((r) => rowOf(r));
  }

  /** Deletes the user's history with modelProvider (the default
   * conversation, or opts.conversationId); resolves to {deleted}. */
  async clearUserHistory(userId, modelProvider, opts = {}) {
    const res = await this.call('clear_user_history', {
      user_id: userId, provider: modelProvider, platform: this._platform(opts),
      conversation_id: opts.conversationId,
    });
    return { deleted: res.deleted };
  }

  /** Messages stored for the user (with modelProvider, or all), in the
   * default conversation or opts.conversationId. */
  async getConversationCount(userId, modelProvider, opts) {
    const [p, o] = pick(modelProvider);
    opts = o || opts || {};
    return this.call('get_conversation_count', {
      user_id: userId, provider: p !== undefined ? p : opts.modelProvider,
      platform: this._platform(opts),
      conversation_id: opts.conversationId,
    });
  }

  /** {provider: {messageCount, lastActivity}} for the user. */
  async getUserStatistics(userId, opts = {}) {
    const res = await this.call('get_user_statistics', {
      user_id: userId, platform: this._platform(opts),
    });
    const out = {};
    for (const [name, p] of Object.entries(res.providers)) {
      out[name] = { messageCount: p.message_count, lastActivity: p.last_message_at };
    }
    return out;
  }

  /** Deletes every message older than daysToKeep days (default 30), for
   * all users; resolves to the number deleted.  An admin method of
   * convd. */
  async cleanupOldConversations(daysToKeep = 30) {
    const res = await this.call('cleanup_old_conversations', { days_to_keep: daysToKeep });
    return res.deleted;
  }

  // ------------------------------------------- the seed's thread helpers

  /** The user's OpenAI Assistant thread id, or null. */
  async getThreadIdByUserId(userId, opts = {}) {
    return this.call('get_thread', { user_id: userId, platform: this._platform(opts) });
  }

  /** Saves (replaces) the user's thread id. */
  async saveThreadId(userId, threadId, opts = {}) {
    await this.call('save_thread', {
      user_id: userId, thread_id: threadId, platform: this._platform(opts),
    });
  }

  /** Forgets the user's thread id. */
  async deleteThreadId(userId, opts = {}) {
    await this.call('delete_thread', { user_id: userId, platform: this._platform(opts) });
  }

  // ------------------------------------------------------------ extras

  /** True when convd answers. */
  async ping() {
    return (await this.call('ping')) === 'pong';
  }

  /** convd's health map: {ok, database, schema, message}. */
  async health() {
    return this.call('health');
  }

  /** convd's counters, as convd-protocol(7) lists them (snake_case). */
  async stats() {
    return this.call('stats');
  }

  /** The user's whole history, oldest first (id order), page by page:
   * an async iterator of {id, userId, platform, provider, role, content,
   * createdAt, idempotencyKey}, plus conversationId, toolCallId, name,
   * model, tokens, metadata where the message has them.  Every
   * conversation, or only opts.conversationId. */
  async *exportHistory(userId, modelProvider, opts) {
    const [p, o] = pick(modelProvider);
    opts = o || opts || {};
    const platform = this._platform(opts);
    const provider = p !== undefined ? p : opts.modelProvider;
    const page = opts.pageSize || 1000;
    let after = 0;
    for (;;) {
      const rows = await this.call('export_history', {
        user_id: userId, provider, platform, after_id: after, limit: page,
        conversation_id: opts.conversationId,
      });
      for (const r of rows) {
        yield withFields({
          id: r.id, userId, platform, provider: r.provider, role: r.role,
          content: r.content, createdAt: r.created_at,
          idempotencyKey: r.idempotency_key ?? null,
        }, r);
      }
      // (a page may be short of `page` when convd bounds it by bytes)
      if (rows.length === 0) return;
      after = rows[rows.length - 1].id;
    }
  }

  /** Stores a message with its original time (a ConvdDate, Date, ISO 8601
   * text or bigint microseconds): resolves to true if stored, false if it
   * was already there (an equal message or, with opts.idempotencyKey, one
   * stored under that key).  An admin method of convd.  opts: platform,
   * idempotencyKey, and the message fields of addMessage, so that what
   * exportHistory yields imports whole. */
  async importMessage(userId, modelProvider, role, content, createdAt, opts = {}) {
    const res = await this.call('import_message', {
      user_id: userId, provider: modelProvider, role, content,
      created_at: toEpochMicroseconds(createdAt),
      platform: this._platform(opts),
      // no key unless given: without one convd finds an equal message
      // already stored, so that importing twice stores nothing twice
      idempotency_key: opts.idempotencyKey,
      ...fieldParams(opts),
    });
    return res.imported === true;
  }

  // ------------------------------------------------- conversations (17)

  /** One page of the user's conversations, newest activity first:
   * {conversations: [{modelProvider, conversationId (null: the default
   * conversation), messageCount, firstMessageAt, lastMessageAt, metadata
   * (null when none)}], next (the `after` of the next page, or null)}.
   * opts: modelProvider, platform, after, limit (1..1000, default 100). */
  async listConversations(userId, opts = {}) {
    const res = await this.call('list_conversations', {
      user_id: userId, provider: opts.modelProvider,
      platform: this._platform(opts), after: opts.after, limit: opts.limit,
    });
    return { conversations: res.conversations.map(conversationOf), next: res.next ?? null };
  }

  /** Every conversation of the user, newest activity first, page by page
   * (opts as listConversations, pageSize for its limit). */
  async *iterConversations(userId, opts = {}) {
    let after;
    do {
      const page = await this.listConversations(userId,
        { ...opts, after, limit: opts.pageSize });
      yield* page.conversations;
      after = page.next;
    } while (after !== null);
  }

  /** Deletes a named conversation (its messages and state): {deleted}
   * messages.  Not sent again once it may have run. */
  async deleteConversation(userId, modelProvider, conversationId, opts = {}) {
    const res = await this.call('delete_conversation', {
      user_id: userId, provider: modelProvider,
      conversation_id: conversationId, platform: this._platform(opts),
    });
    return { deleted: res.deleted };
  }

  /** The conversation's provider state, {state, version, updatedAt,
   * metadata} (metadata: the object setState set with it, or null), or
   * null.  opts: conversationId, platform. */
  async getState(userId, modelProvider, opts = {}) {
    const res = await this.call('get_state', {
      user_id: userId, provider: modelProvider,
      conversation_id: opts.conversationId, platform: this._platform(opts),
    });
    if (res === null) return null;
    return {
      state: res.state, version: res.version,
      updatedAt: res.updated_at ?? null, metadata: res.metadata ?? null,
    };
  }

  /** Replaces the conversation's provider state (an object, at most 64
   * KiB encoded); resolves to {version}.  opts.expectedVersion: 0 sets it
   * only if there is none, N only if its version is still N, otherwise
   * ConflictError.  A call with expectedVersion is not sent again once it
   * may have run (ConvdConnectionError `closed`, sent: true): getState
   * tells whether it did.  opts: conversationId, expectedVersion,
   * metadata, platform. */
  async setState(userId, modelProvider, state, opts = {}) {
    const res = await this.call('set_state', {
      user_id: userId, provider: modelProvider, state,
      conversation_id: opts.conversationId,
      expected_version: opts.expectedVersion,
      metadata: opts.metadata, platform: this._platform(opts),
    });
    return { version: res.version };
  }

  // ---------------------------------------------------- retrieval (18)

  /** The newest messages that fit maxTokens, oldest first, tool calls
   * whole with their results: {messages, totalTokens, truncated}.  opts:
   * conversationId, maxMessages, includeSystem, platform. */
  async getContext(userId, modelProvider, maxTokens, opts = {}) {
    const res = await this.call('get_context', {
      user_id: userId, provider: modelProvider, max_tokens: maxTokens,
      conversation_id: opts.conversationId, max_messages: opts.maxMessages,
      include_system: opts.includeSystem, platform: this._platform(opts),
    });
    return {
      messages: res.messages.map((r) => rowOf(r, true)),
      totalTokens: res.total_tokens,
      truncated: res.truncated === true,
    };
  }

  /** One page going back: the newest `limit` (1..1000, default 100)
   * messages older than beforeId (none: the newest), oldest first:
   * {messages, nextBeforeId (null after the oldest)}.  opts:
   * conversationId, beforeId, limit, platform. */
  async getMessages(userId, modelProvider, opts = {}) {
    const res = await this.call('get_messages', {
      user_id: userId, provider: modelProvider,
      conversation_id: opts.conversationId, before_id: opts.beforeId,
      limit: opts.limit, platform: this._platform(opts),
    });
    return { messages: res.messages.map((r) => rowOf(r, true)), nextBeforeId: res.next_before_id ?? null };
  }

  /** The conversation's messages newest first, back to the oldest, page
   * by page (opts as getMessages, pageSize for its limit). */
  async *iterMessages(userId, modelProvider, opts = {}) {
    let beforeId;
    do {
      const page = await this.getMessages(userId, modelProvider,
        { ...opts, beforeId, limit: opts.pageSize });
      for (let i = page.messages.length - 1; i >= 0; i--) yield page.messages[i];
      beforeId = page.nextBeforeId;
    } while (beforeId !== null);
  }

  /** Deletes one message of the user: {deleted: 1}; NotFoundError when
   * the user has no message with that id.  Not sent again once it may
   * have run. */
  async deleteMessage(userId, id, opts = {}) {
    const res = await this.call('delete_message', {
      user_id: userId, id, platform: this._platform(opts),
    });
    return { deleted: res.deleted };
  }

  /** The user's messages containing query (1..256 bytes), newest first.
   * opts: modelProvider, conversationId (none: every conversation),
   * platform, limit (1..100, default 20). */
  async searchMessages(userId, query, opts = {}) {
    const rows = await this.call('search_messages', {
      user_id: userId, query, provider: opts.modelProvider,
      conversation_id: opts.conversationId, platform: this._platform(opts),
      limit: opts.limit,
    });
    return rows.map((r) => rowOf(r, true));
  }

  /** Deletes everything convd holds about the user (admin), on
   * opts.platform or, without one, on every platform (not the manager's
   * platform): {messages, threads, states, idempotencyKeys}.  Not sent
   * again once it may have run; calling it again is harmless. */
  async forgetUser(userId, opts = {}) {
    const res = await this.call('forget_user', { user_id: userId, platform: opts.platform });
    return {
      messages: res.messages,
      threads: res.threads,
      states: res.states,
      idempotencyKeys: res.idempotency_keys,
    };
  }
}

let shared = null;

/** The process's shared manager (created on first use with the defaults:
 * $CONVD_SOCKET or /run/convd/convd.sock). */
function getConversationManager() {
  if (shared === null || shared._closed) shared = new ConversationManager();
  return shared;
}

/** The user's thread id, or null (shared manager). */
function getThreadIdByUserId(userId, platform = 'line') {
  return getConversationManager().getThreadIdByUserId(userId, { platform });
}

/** Saves the user's thread id (shared manager). */
function saveThreadId(userId, threadId, platform = 'line') {
  return getConversationManager().saveThreadId(userId, threadId, { platform });
}

/** Forgets the user's thread id (shared manager). */
function deleteThreadId(userId, platform = 'line') {
  return getConversationManager().deleteThreadId(userId, { platform });
}

module.exports = {
  ConversationManager,
  ConvdError,
  ConvdConnectionError,
  ConflictError,
  NotFoundError,
  ConvdDate,
  getConversationManager,
  getThreadIdByUserId,
  saveThreadId,
  deleteThreadId,
  toEpochMicroseconds,
  DEFAULT_SOCKET,
  VERSION,
};
