// Type declarations of convd-client, the Node.js client of convd
// (convd-protocol(7)).  See README.md.

/** convd's error codes (convd-protocol(7)), and the client's own for a
 * connection that failed. */
export type ConvdErrorCode =
  | 'invalid_request' | 'no_such_method' | 'invalid_params'
  | 'unavailable' | 'timeout' | 'overloaded' | 'permission_denied'
  | 'result_too_large' | 'internal' | 'conflict' | 'not_found'
  | 'connect_failed' | 'closed' | 'protocol'
  | (string & {});

/** convd answered with an error. */
export class ConvdError extends Error {
  constructor(code: string, detail: string);
  /** convd's error code: what a program should look at. */
  readonly code: ConvdErrorCode;
  /** convd's message, for people (may change between versions). */
  readonly detail: string;
}

/** convd could not be reached, or the connection failed mid-call: `code`
 * is `connect_failed`, `closed`, `timeout` or `protocol` (or convd's code
 * for a refused connection: `overloaded`, `permission_denied`). */
export class ConvdConnectionError extends ConvdError {
  constructor(code: string, detail: string, sent?: boolean);
  /** false when the request certainly never reached convd. */
  readonly sent: boolean;
}

/** setState's expectedVersion did not match (code `conflict`): another
 * writer changed the state first; read it again and decide anew. */
export class ConflictError extends ConvdError {
  constructor(code: string, detail: string);
}

/** Nothing of that user to act on (code `not_found`): deleteMessage of an
 * id that is not the user's. */
export class NotFoundError extends ConvdError {
  constructor(code: string, detail: string);
}

/** A Date that keeps the microseconds convd stores. */
export class ConvdDate extends Date {
  constructor(epochMicroseconds: bigint);
  constructor(value?: number | string | Date);
  constructor(year: number, monthIndex: number, date?: number, hours?: number,
              minutes?: number, seconds?: number, ms?: number);
  static fromEpochMicroseconds(us: bigint | number): ConvdDate;
  /** Microseconds since 1970-01-01T00:00:00Z, exact. */
  readonly epochMicroseconds: bigint;
  /** The microsecond within the second, 0..999999. */
  readonly microseconds: number;
  /** ISO 8601 in UTC with six fraction digits. */
  toISOStringMicro(): string;
  /** Same as toISOStringMicro() (null for an invalid date). */
  toJSON(): string;
}

export type Role = 'user' | 'assistant' | 'system' | 'developer' | 'tool';
/** What a message's content may be when stored: text, or an array or
 * object of content parts (tool calls, images, thinking blocks, ...),
 * stored as sent; binary values as Uint8Array (or Buffer). */
export type ContentInput = string | readonly unknown[] | object;
/** A message's content as convd gives it back: exactly what was stored,
 * binary values as Uint8Array, integers beyond 2^53 as bigint (safe
 * integers as number). */
export type Content = string | unknown[] | { [key: string]: unknown };
/** A map of your own (at most 64 KiB encoded). */
export type MetadataInput = object;
/** A time given to convd: exact as a ConvdDate or bigint of microseconds
 * since the epoch, to the millisecond as a Date, or ISO 8601 text (no zone
 * means UTC). */
export type TimeInput = ConvdDate | Date | string | bigint;

export interface ManagerOptions {
  /** convd's socket (also the first argument of the constructor). */
  socketPath?: string;
  /** Milliseconds one call may take, retries included; null: no limit.
   * Default 30000. */
  timeout?: number | null;
  /** The platform of every call that names none.  Default "line". */
  platform?: string;
  /** Milliseconds a connection attempt waits for convd's socket to accept
   * (a convd restart).  Default 5000. */
  reconnectTimeout?: number;
  /** Times a call is sent again when that is safe.  Default 3. */
  maxRetries?: number;
  /** false: addMessage sends no idempotency key unless given one (for a
   * convd without them), and is then not retried once sent.  Default
   * true. */
  idempotencyKeys?: boolean;
}

export interface PlatformOption {
  /** Default: the manager's platform ("line"). */
  platform?: string;
}

export interface ConversationOption extends PlatformOption {
  /** A named conversation, 1..255 bytes; default: the default
   * conversation (the seed's history). */
  conversationId?: string;
}

export interface WriteOptions extends ConversationOption {
  /** 1..255 bytes of UTF-8 without NUL.  addMessage: default a fresh
   * random UUID; importMessage: default none. */
  idempotencyKey?: string;
  /** The call a tool result answers, 1..255 bytes. */
  toolCallId?: string;
  /** 1..255 bytes. */
  name?: string;
  /** The model that wrote it, 1..255 bytes. */
  model?: string;
  /** Tokens, from the provider's usage: 0..2147483647. */
  tokens?: number;
  metadata?: MetadataInput;
}

export interface RecentOptions extends ConversationOption {
  /** Turns (the result holds 2 x limit messages), 1..1000; default 10. */
  limit?: number;
}

export interface ProviderOptions extends ConversationOption {
  modelProvider?: string;
}

export interface ExportOptions extends ProviderOptions {
  /** Messages fetched per request, 1..1000; default 1000. */
  pageSize?: number;
}

export interface ListConversationsOptions extends PlatformOption {
  /** One provider; default all. */
  modelProvider?: string;
  /** The `next` of the previous page. */
  after?: string;
  /** 1..1000; default 100. */
  limit?: number;
}

export interface IterConversationsOptions extends PlatformOption {
  modelProvider?: string;
  /** Conversations fetched per request, 1..1000; default 100. */
  pageSize?: number;
}

export interface SetStateOptions extends ConversationOption {
  /** 0: only if there is no state yet; N: only if its version is still N
   * (else ConflictError).  Default: unconditional. */
  expectedVersion?: number;
  metadata?: MetadataInput;
}

export interface ContextOptions extends ConversationOption {
  /** 1..10000; default 1000. */
  maxMessages?: number;
  /** The conversation's system and developer messages first, counted in
   * the budget. */
  includeSystem?: boolean;
}

export interface GetMessagesOptions extends ConversationOption {
  /** Messages older than this id; default: the newest. */
  beforeId?: number;
  /** 1..1000; default 100. */
  limit?: number;
}

export interface IterMessagesOptions extends ConversationOption {
  /** Messages fetched per request, 1..1000; default 100. */
  pageSize?: number;
}

export interface SearchOptions extends ConversationOption {
  /** One provider; default all.  (No conversationId: every
   * conversation.) */
  modelProvider?: string;
  /** 1..100; default 20. */
  limit?: number;
}

export interface CallOptions {
  /** Send again after a broken connection or an `unavailable` answer;
   * default: true for reads and idempotent writes. */
  retry?: boolean;
  /** Milliseconds for this call; default the manager's timeout. */
  timeout?: number | null;
}

export interface AddResult {
  id: number;
  createdAt: ConvdDate;
  /** true when convd had already stored a message with this idempotency
   * key (a retry): id and createdAt are the first one's. */
  duplicate: boolean;
}

/** A message's optional fields: present only when the message has
 * them. */
export interface MessageFields {
  /** Absent for the default conversation. */
  conversationId?: string;
  toolCallId?: string;
  name?: string;
  model?: string;
  tokens?: number;
  metadata?: { [key: string]: unknown };
}

export interface Message extends MessageFields {
  id: number;
  role: Role;
  content: Content;
  createdAt: ConvdDate;
  modelProvider: string;
  /** (getContext, getMessages, searchMessages) the key it was stored
   * with, when it has one. */
  idempotencyKey?: string;
}

export interface ExportedMessage extends MessageFields {
  id: number;
  userId: string;
  platform: string;
  provider: string;
  role: Role;
  content: Content;
  createdAt: ConvdDate;
  /** The key it was stored with, or null. */
  idempotencyKey: string | null;
}

export interface Conversation {
  modelProvider: string;
  /** null: the default conversation. */
  conversationId: string | null;
  messageCount: number;
  firstMessageAt: ConvdDate | null;
  lastMessageAt: ConvdDate | null;
  metadata: { [key: string]: unknown } | null;
}

export interface ConversationPage {
  conversations: Conversation[];
  /** The `after` of the next page; null after the last. */
  next: string | null;
}

export interface State<S = { [key: string]: unknown }> {
  state: S;
  /** 1 for the first setState, then one more per setState. */
  version: number;
  updatedAt: ConvdDate | null;
  /** The metadata setState set with the state; null when none. */
  metadata: { [key: string]: unknown } | null;
}

export interface Context {
  /** Oldest first. */
  messages: Message[];
  totalTokens: number;
  /** true when older messages were left out. */
  truncated: boolean;
}

export interface MessagePage {
  /** Oldest first. */
  messages: Message[];
  /** The beforeId of the next (older) page; null after the oldest. */
  nextBeforeId: number | null;
}

export interface Forgotten {
  messages: number;
  threads: number;
  states: number;
  idempotencyKeys: number;
}

export interface ProviderStatistics {
  messageCount: number;
  lastActivity: ConvdDate;
}

export interface Health {
  ok: boolean;
  database: 'up' | 'down';
  schema: 'ok' | 'unknown' | 'missing' | 'outdated' | 'dirty';
  message: string;
}

/** convd's counters (convd-protocol(7), method stats), keys as sent. */
export interface Stats {
  version: string;
  uptime_s: number;
  started_at: ConvdDate;
  clients: Record<string, number>;
  pool: Record<string, number | boolean | string | null>;
  methods: Record<string, {
    requests: number;
    errors: Record<string, number>;
    latency_us: { p50: number; p95: number; p99: number; max: number };
  }>;
  protocol_errors: Record<string, number>;
  retention: Record<string, number | boolean | ConvdDate | null>;
  memory: Record<string, number>;
  [key: string]: unknown;
}

export class ConversationManager {
  constructor(socketPath?: string | null, options?: ManagerOptions);
  constructor(options: ManagerOptions);

  readonly socketPath: string;
  timeout: number | null;
  platform: string;
  reconnectTimeout: number;
  maxRetries: number;
  idempotencyKeys: boolean;

  /** Any convd method, named parameters as convd-protocol(7) names them. */
  call(method: string, params?: Record<string, unknown>,
       options?: CallOptions): Promise<any>;
  /** Closes the connection; waiting calls fail; the manager is done. */
  close(): void;

  addMessage(userId: string, modelProvider: string, role: Role,
             content: ContentInput, options?: WriteOptions): Promise<AddResult>;
  getRecentConversations(userId: string, modelProvider: string,
                         limit?: number, options?: ConversationOption): Promise<Message[]>;
  getRecentConversations(userId: string, modelProvider: string,
                         options: RecentOptions): Promise<Message[]>;
  clearUserHistory(userId: string, modelProvider: string,
                   options?: ConversationOption): Promise<{ deleted: number }>;
  getConversationCount(userId: string, modelProvider?: string | null,
                       options?: ConversationOption): Promise<number>;
  getConversationCount(userId: string, options: ProviderOptions): Promise<number>;
  getUserStatistics(userId: string, options?: PlatformOption):
    Promise<Record<string, ProviderStatistics>>;
  cleanupOldConversations(daysToKeep?: number): Promise<number>;

  getThreadIdByUserId(userId: string, options?: PlatformOption): Promise<string | null>;
  saveThreadId(userId: string, threadId: string, options?: PlatformOption): Promise<void>;
  deleteThreadId(userId: string, options?: PlatformOption): Promise<void>;

  ping(): Promise<boolean>;
  health(): Promise<Health>;
  stats(): Promise<Stats>;
  exportHistory(userId: string, modelProvider?: string | null,
                options?: ExportOptions): AsyncGenerator<ExportedMessage, void, undefined>;
  exportHistory(userId: string, options: ExportOptions):
    AsyncGenerator<ExportedMessage, void, undefined>;
  importMessage(userId: string, modelProvider: string, role: Role,
                content: ContentInput, createdAt: TimeInput,
                options?: WriteOptions): Promise<boolean>;

  listConversations(userId: string, options?: ListConversationsOptions):
    Promise<ConversationPage>;
  iterConversations(userId: string, options?: IterConversationsOptions):
    AsyncGenerator<Conversation, void, undefined>;
  deleteConversation(userId: string, modelProvider: string, conversationId: string,
                     options?: PlatformOption): Promise<{ deleted: number }>;
  getState<S = { [key: string]: unknown }>(userId: string, modelProvider: string,
                                           options?: ConversationOption): Promise<State<S> | null>;
  setState(userId: string, modelProvider: string, state: object,
           options?: SetStateOptions): Promise<{ version: number }>;

  getContext(userId: string, modelProvider: string, maxTokens: number,
             options?: ContextOptions): Promise<Context>;
  getMessages(userId: string, modelProvider: string,
              options?: GetMessagesOptions): Promise<MessagePage>;
  /** Newest first, back to the oldest. */
  iterMessages(userId: string, modelProvider: string,
               options?: IterMessagesOptions): AsyncGenerator<Message, void, undefined>;
  deleteMessage(userId: string, id: number, options?: PlatformOption):
    Promise<{ deleted: number }>;
  searchMessages(userId: string, query: string, options?: SearchOptions):
    Promise<Message[]>;
  /** options.platform: one platform; default every platform. */
  forgetUser(userId: string, options?: PlatformOption): Promise<Forgotten>;
}

/** The process's shared manager ($CONVD_SOCKET or /run/convd/convd.sock). */
export function getConversationManager(): ConversationManager;
export function getThreadIdByUserId(userId: string, platform?: string): Promise<string | null>;
export function saveThreadId(userId: string, threadId: string, platform?: string): Promise<void>;
export function deleteThreadId(userId: string, platform?: string): Promise<void>;
/** A TimeInput as microseconds since the epoch. */
export function toEpochMicroseconds(t: TimeInput): bigint;

export const DEFAULT_SOCKET: string;
export const VERSION: string;
