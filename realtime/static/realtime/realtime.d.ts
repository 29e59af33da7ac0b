// Types for realtime.js, the client of the realtime WebSocket protocol v1.

export declare const VERSION: string;
export declare const PROTOCOL: 1;

export declare const State: {
  readonly CONNECTING: "connecting";
  readonly OPEN: "open";
  readonly RECONNECTING: "reconnecting";
  readonly CLOSED: "closed";
};
export type ConnectionState = (typeof State)[keyof typeof State];

/** A user as the server summarises it. */
export interface UserSummary {
  id: number | string;
  username: string;
  [key: string]: unknown;
}

/** The `rt.welcome` data. */
export interface Welcome {
  protocol: number;
  connection_id: string;
  heartbeat: number;
  user: UserSummary | null;
  auth_required: boolean;
  max_frame_bytes: number;
  [key: string]: unknown;
}

/** A frame from the server. */
export interface Frame<D = any> {
  type: string;
  v?: number;
  id?: string;
  group?: string;
  seq?: number;
  data?: D;
}

/** An application event of a group, as handlers receive it. */
export interface GroupEvent<D = any> extends Frame<D> {
  group: string;
}

export interface SubscribeAck {
  group: string;
  seq: number | null;
  epoch: string | null;
  recovered: boolean;
}

export interface PresenceState {
  group: string;
  members: UserSummary[];
  anonymous: number;
  connections: number;
}

export interface PresenceChange {
  type: "join" | "leave";
  group: string;
  member: UserSummary;
}

/** Why the server sent `rt.reset`. */
export type ResetReason = "epoch_changed" | "history_trimmed" | "layer_restarted" | (string & {});

/** The `rt.reset` data: events continue after `seq` in `epoch`. */
export interface Reset {
  epoch: string | null;
  seq: number | null;
  reason: ResetReason;
}

/** Some events of the group may be lost: refetch its state. */
export interface RecoveryFailed {
  group: string;
  /** The client's position before (null: the group has no history, or no position yet). */
  since: number | null;
  /** Events continue after this seq (null for groups without history). */
  seq: number | null;
  epoch: string | null;
  /** Set when an `rt.reset` reported it; absent for a subscribe answered `recovered: false`. */
  reason?: ResetReason;
}

/** A transient subscribe failure; the subscribe is sent again after `delay` ms. */
export interface SubscriptionRetry {
  group: string;
  error: RealtimeError;
  /** Consecutive failures of this group's subscribe (1 for the first). */
  attempt: number;
  delay: number;
}

export interface CloseDetail {
  code: number;
  reason?: string;
  error?: Error | null;
  willRetry?: boolean;
  attempt?: number;
  /** ms until the next attempt (reconnecting only) */
  delay?: number;
}

export interface StateChange extends Partial<CloseDetail> {
  state: ConnectionState;
  previous: ConnectionState;
  welcome?: Welcome;
}

export type RealtimeErrorCode =
  | "bad_json"
  | "bad_envelope"
  | "unknown_type"
  | "invalid"
  | "forbidden"
  | "not_authenticated"
  | "rate_limited"
  | "too_large"
  | "server_error"
  | "unavailable"
  | "shutting_down"
  | "slow_consumer"
  | "heartbeat_timeout"
  // client-side
  | "timeout"
  | "connection_lost"
  | "queue_overflow"
  | "closed"
  | "ticket_failed"
  | (string & {});

export declare class RealtimeError extends Error {
  constructor(message: string, options?: { code?: string; errors?: unknown; frame?: Frame });
  name: "RealtimeError";
  code: RealtimeErrorCode;
  /** Field errors of an `invalid` error (DRF's shape). */
  errors?: any;
  /** The `rt.error` frame, when the server sent one. */
  frame?: Frame;
}

/** A WebSocket constructor: the browser's, Node's global, `ws`, or a test double. */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface RealtimeClientOptions {
  /** POST here for a fresh single-use ticket before every (re)connect. */
  ticketUrl?: string;
  /** Extra headers for the ticket request (e.g. `Authorization: Token ...`). */
  ticketHeaders?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
  /** Your own ticket source, used instead of `ticketUrl`. */
  getTicket?: () => string | Promise<string>;
  /** Sent as `rt.auth` after the welcome when the handshake found no user. */
  token?: string | (() => string | Promise<string>);
  protocols?: string | string[];
  /** WebSocket constructor; default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** fetch implementation for the ticket; default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Connect from the constructor (default true). */
  autoConnect?: boolean;
  /** Backoff base in ms (default 500). */
  reconnectDelay?: number;
  /** Backoff ceiling in ms (default 30000). */
  maxReconnectDelay?: number;
  /** Give up after this many consecutive failed attempts (default Infinity). */
  maxReconnectAttempts?: number;
  /** ms a connection must stay open before the attempt counter resets (default 10000). */
  stableAfter?: number;
  /** ms for the socket to open and the welcome (and auth ack) to arrive (default 10000). */
  connectTimeout?: number;
  /** ms added to the server's heartbeat before a silent connection is dropped (default 5000). */
  heartbeatGrace?: number;
  /** Default `request()` timeout in ms (default 10000). */
  requestTimeout?: number;
  /** Frames kept while disconnected (default 100). */
  queueSize?: number;
  /** When the queue is full: drop the oldest frame (default) or reject the new one. */
  queueOverflow?: "drop-oldest" | "reject";
  /** Event versions this client understands, sent as `rt.hello`. */
  events?: Record<string, number>;
  /** The app's typing event type (default "typing"). */
  typingEvent?: string;
  /** At most one typing frame per group per this many ms (default 3000). */
  typingInterval?: number;
  csrfCookieName?: string;
  csrfHeaderName?: string;
  /** Object with addEventListener for `online` and `document.visibilitychange` (default `window`). */
  window?: any;
  /** Random source in [0, 1) for the jitter (default Math.random). */
  random?: () => number;
}

export interface SubscribeOptions {
  /** Resume after this seq (e.g. restored from storage). */
  since?: number;
  epoch?: string;
  onPresence?: (change: PresenceChange) => void;
  /** History could not fill what was missed (`recovered: false`, `rt.reset`): refetch. */
  onRecoveryFailed?: (failure: RecoveryFailed) => void;
  /** The server refused the subscription for good (the subscription ends); transient
   * errors are retried with backoff instead. */
  onError?: (error: RealtimeError) => void;
}

export declare class Subscription<D = any> {
  readonly client: RealtimeClient;
  readonly group: string;
  readonly active: boolean;
  /** Settles with the first `rt.subscribe` ack, or rejects when refused for good. */
  readonly ready: Promise<SubscribeAck>;
  readonly seq: number | null;
  readonly epoch: string | null;
  presence(options?: { timeout?: number }): Promise<PresenceState>;
  typing(data?: Record<string, unknown>): boolean;
  unsubscribe(): void;
}

export interface ClientEvents {
  state: StateChange;
  connecting: { attempt: number };
  open: { welcome: Welcome };
  reconnecting: CloseDetail;
  closed: CloseDetail;
  "socket-open": void;
  welcome: Welcome;
  auth: { user: UserSummary };
  hello: { protocol: number; events: Record<string, number> };
  message: Frame;
  event: GroupEvent | Frame;
  error: RealtimeError | Error;
  presence: PresenceChange;
  subscribed: SubscribeAck;
  "subscription-error": { group: string; error: RealtimeError };
  "subscription-retry": SubscriptionRetry;
  "recovery-failed": RecoveryFailed;
  gap: { group: string; seq: number };
  "queue-overflow": Frame;
}

/** Exponential backoff with full jitter: uniform in [0, min(max, base * 2 ** attempt)). */
export declare function backoffDelay(
  attempt: number,
  options?: { baseDelay?: number; maxDelay?: number; random?: () => number },
): number;

/**
 * The events a client may send and receive: event type -> payload. Generated from
 * the server's registry by `manage.py realtime_schema --format typescript` (its
 * `RealtimeEvents`); `new RealtimeClient<RealtimeEvents>(url)` then checks
 * `send()`, `request()` and `subscribe()` handlers against them.
 */
export interface EventMaps {
  server: object;
  client: object;
}

/** The default: any event type with any payload (no checks). */
export interface UntypedEvents {
  server: Record<string, any>;
  client: Record<string, any>;
}

type IsUntyped<E extends EventMaps> = string extends keyof E["client"] ? true : false;

/** Event types the client may send. */
export type ClientEventType<E extends EventMaps> = keyof E["client"] & string;

/** The payload of client event `K` (its latest version). */
export type ClientEventData<E extends EventMaps, K> = K extends keyof E["client"] ? E["client"][K] : never;

/** A group event as a typed client's handler receives it: `type` narrows `data`. */
export type ServerGroupEvent<E extends EventMaps> = {
  [K in keyof E["server"] & string]: {
    type: K;
    v?: number;
    id?: string;
    group: string;
    seq?: number;
    data: E["server"][K];
  };
}[keyof E["server"] & string];

export interface RequestOptions {
  timeout?: number;
  v?: number;
}

type SendArgs<E extends EventMaps, K, O> = IsUntyped<E> extends true
  ? [data?: Record<string, unknown>, options?: O]
  : [data: ClientEventData<E, K>, options?: O];

type HandlerEvent<E extends EventMaps, D> = IsUntyped<E> extends true ? GroupEvent<D> : ServerGroupEvent<E>;

export declare class RealtimeClient<E extends EventMaps = UntypedEvents> {
  constructor(url: string, options?: RealtimeClientOptions);
  readonly url: string;
  readonly state: ConnectionState;
  /** The last `rt.welcome`. */
  readonly welcome: Welcome | null;
  readonly user: UserSummary | null;
  /** Versions agreed by `rt.hello` (`{type: version}`). */
  readonly eventVersions: Record<string, number> | null;
  /** Consecutive reconnect attempts (reset after a stable connection). */
  readonly attempt: number;
  /** Frames waiting for a connection. */
  readonly queued: number;

  on<K extends keyof ClientEvents>(event: K, listener: (detail: ClientEvents[K]) => void): () => void;
  once<K extends keyof ClientEvents>(event: K, listener: (detail: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(event: K, listener: (detail: ClientEvents[K]) => void): void;

  connect(): Promise<Welcome>;
  close(code?: number, reason?: string): void;
  /** close() and remove the online/visibility listeners. */
  destroy(): void;
  /** Skip the backoff wait and reconnect now. */
  retryNow(): void;

  /** Returns true when sent now, false when queued. */
  send<K extends ClientEventType<E>>(type: K, ...args: SendArgs<E, K, { v?: number }>): boolean;
  /** The `rt.ack` data, or a rejection with the `rt.error` code. `T` is the ack's type. */
  request<T = any, K extends ClientEventType<E> = ClientEventType<E>>(
    type: K,
    ...args: SendArgs<E, K, RequestOptions>
  ): Promise<T>;

  subscribe<D = any>(
    group: string,
    handler?: (event: HandlerEvent<E, D>) => void,
    options?: SubscribeOptions,
  ): Subscription<D>;
  positions(): Record<string, { seq: number | null; epoch: string | null }>;
  presence(group: string, options?: { timeout?: number }): Promise<PresenceState>;
  typing(group: string, data?: Record<string, unknown>): boolean;
}

export default RealtimeClient;
