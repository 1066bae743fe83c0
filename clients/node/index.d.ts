// Type declarations of convd-client, the Node.js client of convd
// (convd-protocol(7)).  See README.md.

/** convd's error codes (convd-protocol(7)), and the client's own for a
 * connection that failed. */
export type ConvdErrorCode =
  | 'invalid_request' | 'no_such_method' | 'invalid_params'
  | 'unavailable' | 'timeout' | 'overloaded' | 'permission_denied'
  | 'result_too_large' | 'internal'
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

export type Role = 'user' | 'assistant' | 'system';
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

export interface WriteOptions extends PlatformOption {
  /** 1..255 bytes of UTF-8 without NUL.  addMessage: default a fresh
   * random UUID; importMessage: default none. */
  idempotencyKey?: string;
}

export interface RecentOptions extends PlatformOption {
  /** Turns (the result holds 2 x limit messages), 1..1000; default 10. */
  limit?: number;
}

export interface ProviderOptions extends PlatformOption {
  modelProvider?: string;
}

export interface ExportOptions extends ProviderOptions {
  /** Messages fetched per request, 1..1000; default 1000. */
  pageSize?: number;
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

export interface Message {
  id: number;
  role: Role;
  content: string;
  createdAt: ConvdDate;
  modelProvider: string;
}

export interface ExportedMessage {
  id: number;
  userId: string;
  platform: string;
  provider: string;
  role: Role;
  content: string;
  createdAt: ConvdDate;
  /** The key it was stored with, or null. */
  idempotencyKey: string | null;
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
             content: string, options?: WriteOptions): Promise<AddResult>;
  getRecentConversations(userId: string, modelProvider: string,
                         limit?: number, options?: PlatformOption): Promise<Message[]>;
  getRecentConversations(userId: string, modelProvider: string,
                         options: RecentOptions): Promise<Message[]>;
  clearUserHistory(userId: string, modelProvider: string,
                   options?: PlatformOption): Promise<{ deleted: number }>;
  getConversationCount(userId: string, modelProvider?: string | null,
                       options?: PlatformOption): Promise<number>;
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
                content: string, createdAt: TimeInput,
                options?: WriteOptions): Promise<boolean>;
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
