// realtime.js: the browser / Node client of the realtime protocol, version 1.
//
// One dependency-free ES module, no build step. See docs/client.md for the guide and
// docs/protocol.md for the wire protocol it speaks.

export const VERSION = "0.1.0";
export const PROTOCOL = 1;

/** Connection states; `client.state` is one of these. */
export const State = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
});

// Close codes that mean "come back right away" (shutting down, slow consumer).
const PROMPT_CLOSE_CODES = new Set([4503, 4507]);

// Subscribe failures that say nothing about the request itself: the same subscribe can
// succeed later, so it is retried with backoff instead of ending the subscription.
const TRANSIENT_SUBSCRIBE_CODES = new Set([
  "server_error",
  "unavailable",
  "rate_limited",
  "shutting_down",
  "timeout",
  "connection_lost",
]);

const DEFAULTS = {
  reconnectDelay: 500,
  maxReconnectDelay: 30000,
  maxReconnectAttempts: Infinity,
  stableAfter: 10000,
  connectTimeout: 10000,
  heartbeatGrace: 5000,
  requestTimeout: 10000,
  queueSize: 100,
  queueOverflow: "drop-oldest",
  typingEvent: "typing",
  typingInterval: 3000,
  csrfCookieName: "csrftoken",
  csrfHeaderName: "X-CSRFToken",
  autoConnect: true,
};

/** An `rt.error` from the server, or a client-side failure (`code` says which). */
export class RealtimeError extends Error {
  constructor(message, { code = "error", errors, frame } = {}) {
    super(message);
    this.name = "RealtimeError";
    this.code = code;
    if (errors !== undefined) this.errors = errors;
    if (frame !== undefined) this.frame = frame;
  }
}

/**
 * Delay in ms before reconnect attempt `attempt` (0-based): exponential backoff with
 * full jitter, a uniform pick in [0, min(maxDelay, baseDelay * 2 ** attempt)).
 */
export function backoffDelay(attempt, { baseDelay = 500, maxDelay = 30000, random = Math.random } = {}) {
  const ceiling = Math.min(maxDelay, baseDelay * 2 ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}

function reportError(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}

function readCookie(name) {
  if (typeof document === "undefined" || typeof document.cookie !== "string") return null;
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      return decodeURIComponent(part.slice(eq + 1).trim());
    }
  }
  return null;
}

function resolveUrl(url) {
  url = String(url);
  if (/^wss?:\/\//i.test(url)) return url;
  if (/^https?:\/\//i.test(url)) return url.replace(/^http/i, "ws");
  if (typeof location !== "undefined" && location.href) {
    const resolved = new URL(url, location.href);
    resolved.protocol = resolved.protocol === "https:" ? "wss:" : "ws:";
    return resolved.toString();
  }
  throw new TypeError(`expected an absolute ws:// or wss:// URL, got ${url}`);
}

/** One `subscribe()` call: `unsubscribe()` ends it, `ready` settles on the first ack. */
export class Subscription {
  constructor(client, channel, handler, options) {
    this.client = client;
    this.group = channel.group;
    this.handler = handler;
    this.options = options;
    this.active = true;
    this._channel = channel;
    this.ready = channel.ready;
  }

  /** Last seq delivered for this group (null before the first ack). */
  get seq() {
    return this._channel.seq;
  }

  get epoch() {
    return this._channel.epoch;
  }

  /** Who is in the group (the `rt.presence` ack). */
  presence(options) {
    return this.client.presence(this.group, options);
  }

  /** Tell the group this user is typing (see `RealtimeClient.typing`). */
  typing(data) {
    return this.client.typing(this.group, data);
  }

  unsubscribe() {
    if (!this.active) return;
    this.active = false;
    this.client._removeSubscription(this);
  }
}

// The client's view of one group: position (seq/epoch), out-of-order buffer, listeners.
class Channel {
  constructor(group, since, epoch) {
    this.group = group;
    this.seq = since ?? null;
    this.epoch = epoch ?? null;
    this.subs = new Set();
    this.pending = new Map(); // seq -> frame, events that arrived ahead of a gap
    this.resyncing = false;
    this.acked = false;
    this.attempt = 0; // the latest rt.subscribe sent; older answers are stale
    this.failures = 0; // consecutive transient subscribe failures (the backoff exponent)
    this.retryTimer = null;
    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this.ready.catch(() => {}); // unobserved failures are reported as events instead
  }
}

export class RealtimeClient {
  /**
   * @param {string} url  ws://, wss://, or (in a browser) a path such as "/ws/"
   * @param {object} options  see docs/client.md
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    this.state = State.CLOSED;
    this.welcome = null;
    this.user = null;
    this.eventVersions = null;
    this.attempt = 0;
    this._listeners = new Map();
    this._channels = new Map();
    this._queue = [];
    this._requests = new Map(); // id -> {resolve, reject, timer, sent}
    this._nextId = 1;
    this._ws = null;
    this._ready = false; // welcome (and auth ack) received on the current socket
    this._wanted = false; // the user wants a connection (connect() and not close())
    this._authFailures = 0;
    this._lastError = null;
    this._timers = { retry: null, connect: null, heartbeat: null, stable: null };
    this._typingSent = new Map();
    this._waiters = [];
    this._WebSocket = this.options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== "function") {
      throw new TypeError(
        "no WebSocket: pass {WebSocket} (Node 20 needs --experimental-websocket for the global)",
      );
    }
    this._installEnvironmentListeners();
    if (this.options.autoConnect) this.connect().catch(() => {});
  }

  // -- events ----------------------------------------------------------------------

  /** Listen to `event`; returns a function that removes the listener. */
  on(event, listener) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
  }

  once(event, listener) {
    const off = this.on(event, (...args) => {
      off();
      listener(...args);
    });
    return off;
  }

  _emit(event, ...args) {
    for (const listener of [...(this._listeners.get(event) ?? [])]) {
      try {
        listener(...args);
      } catch (error) {
        reportError(error);
      }
    }
  }

  _setState(state, detail) {
    const previous = this.state;
    this.state = state;
    this._emit("state", { state, previous, ...detail });
    this._emit(state, detail);
  }

  // -- connection ------------------------------------------------------------------

  /** Start connecting (no-op when already connecting or open). Resolves on `open`;
   * rejects when the client gives up (auth refused, attempt cap, `close()`). */
  connect() {
    const promise = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    if (this.state === State.OPEN) this._settleWaiters(null);
    else if (!this._wanted || this.state === State.CLOSED) {
      this._wanted = true;
      this.attempt = 0;
      this._authFailures = 0;
      this._open();
    }
    return promise;
  }

  _settleWaiters(error) {
    const waiters = this._waiters;
    this._waiters = [];
    for (const waiter of waiters) {
      if (error) waiter.reject(error);
      else waiter.resolve(this.welcome);
    }
  }

  /** Close for good: no reconnect until `connect()` is called again. Queued frames
   * stay queued; requests awaiting an ack reject with code `connection_lost`. */
  close(code = 1000, reason = "") {
    this._wanted = false;
    this._clearTimer("retry");
    const ws = this._ws;
    this._teardown();
    if (ws) {
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
    if (this.state !== State.CLOSED) {
      this._setState(State.CLOSED, { code, reason, willRetry: false });
    }
    this._settleWaiters(new RealtimeError("client closed", { code: "closed" }));
  }

  /** Forget the environment listeners (online/visibility) and close. */
  destroy() {
    this.close();
    this._removeEnvironmentListeners?.();
  }

  async _open() {
    this._clearTimer("retry");
    this._setState(State.CONNECTING, { attempt: this.attempt });
    const generation = (this._generation = (this._generation ?? 0) + 1);
    let url;
    try {
      url = resolveUrl(this.url);
    } catch (error) {
      this._afterClose({ code: 1006, reason: error.message, error }, { terminal: true });
      return;
    }
    try {
      const ticket = await this._fetchTicket();
      if (ticket != null) {
        url += (url.includes("?") ? "&" : "?") + "ticket=" + encodeURIComponent(ticket);
      }
    } catch (error) {
      if (generation !== this._generation || !this._wanted) return;
      this._lastError = error;
      // Refused by the ticket endpoint: signed out, a new ticket will not help. Any
      // other failure (network, HTTP 5xx) is retried like a failed connection.
      const refused = error.code === "not_authenticated";
      this._emit("error", error);
      this._afterClose(
        { code: refused ? 4401 : 1006, reason: error.message, error },
        { terminal: refused },
      );
      return;
    }
    if (generation !== this._generation || !this._wanted) return;
    let ws;
    try {
      ws = new this._WebSocket(url, this.options.protocols);
    } catch (error) {
      this._afterClose({ code: 1006, reason: error.message, error }, { terminal: true });
      return;
    }
    this._ws = ws;
    this._ready = false;
    this._lastError = null;
    // Jittered (up to half as long again): the clients of a restarted server start
    // their attempts together; a fixed timeout would make those the overloaded server
    // cannot answer in time give up, and come back, together again.
    const timeout = this.options.connectTimeout;
    const jitter = Math.floor((this.options.random ?? Math.random)() * (timeout / 2));
    this._armTimer("connect", timeout + jitter, () => {
      this._abort(4008, "connect timeout");
    });
    ws.onopen = () => {
      if (this._ws === ws) this._emit("socket-open");
    };
    ws.onmessage = (event) => {
      if (this._ws === ws) this._onMessage(event.data);
    };
    ws.onerror = () => {
      // A close event follows; it carries the code.
    };
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._teardown();
      this._afterClose({ code: event.code, reason: event.reason, error: this._lastError });
    };
  }

  async _fetchTicket() {
    const { getTicket, ticketUrl } = this.options;
    if (getTicket) return await getTicket();
    if (!ticketUrl) return null;
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    const headers = { Accept: "application/json" };
    const csrf = readCookie(this.options.csrfCookieName);
    if (csrf) headers[this.options.csrfHeaderName] = csrf;
    let extra = this.options.ticketHeaders;
    if (typeof extra === "function") extra = await extra();
    Object.assign(headers, extra ?? {});
    const response = await fetchImpl(ticketUrl, {
      method: "POST",
      credentials: "same-origin",
      headers,
    });
    if (response.status === 401 || response.status === 403) {
      throw new RealtimeError(`ticket endpoint refused: HTTP ${response.status}`, {
        code: "not_authenticated",
      });
    }
    if (!response.ok) {
      throw new RealtimeError(`ticket endpoint failed: HTTP ${response.status}`, {
        code: "ticket_failed",
      });
    }
    const body = await response.json();
    if (!body || typeof body.ticket !== "string") {
      throw new RealtimeError("ticket endpoint answered without a ticket", { code: "ticket_failed" });
    }
    return body.ticket;
  }

  _canRefreshAuth() {
    const { getTicket, ticketUrl, token } = this.options;
    return Boolean(getTicket || ticketUrl || typeof token === "function");
  }

  // Give up on the current socket without waiting for its close handshake: a half-open
  // connection may never deliver a close event.
  _abort(code, reason) {
    const ws = this._ws;
    if (!ws) return;
    this._teardown();
    try {
      ws.close(1000);
    } catch {
      // nothing to close
    }
    this._afterClose({ code, reason, error: this._lastError });
  }

  _teardown() {
    const ws = this._ws;
    this._ws = null;
    this._ready = false;
    this._generation = (this._generation ?? 0) + 1;
    if (ws) ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    for (const name of ["connect", "heartbeat", "stable"]) this._clearTimer(name);
    for (const channel of this._channels.values()) {
      channel.resyncing = false;
      channel.pending.clear();
      // The next welcome resubscribes every channel: a retry must not add a second.
      this._clearRetry(channel);
    }
    // A sent frame's fate is unknown once the socket is gone: never resend it.
    for (const [id, request] of this._requests) {
      if (request.sent) {
        this._requests.delete(id);
        clearTimeout(request.timer);
        request.reject(new RealtimeError("connection lost before the reply", { code: "connection_lost" }));
      }
    }
  }

  _afterClose(detail, { terminal = false } = {}) {
    const code = detail.code;
    if (!this._wanted) return;
    if (code === 4403) {
      // Forbidden: the server refused this user; fresh credentials for the same user
      // will not change that.
      terminal = true;
    } else if (code === 4401) {
      this._authFailures += 1;
      // One fresh credential may fix it (an expired ticket); a second refusal before
      // a connection proved stable means it will not.
      if (!this._canRefreshAuth() || this._authFailures > 1) terminal = true;
    }
    if (!terminal && this.attempt >= this.options.maxReconnectAttempts) terminal = true;
    if (terminal) {
      this._wanted = false;
      this._setState(State.CLOSED, { ...detail, willRetry: false });
      this._settleWaiters(
        detail.error instanceof RealtimeError
          ? detail.error
          : new RealtimeError(`connection closed (${code})`, { code: "closed" }),
      );
      return;
    }
    // Shutting down / slow consumer / fresh credentials: come back promptly (still
    // jittered, so a whole server's clients do not return at the same instant).
    const prompt = PROMPT_CLOSE_CODES.has(code) || code === 4401;
    const delay = backoffDelay(prompt ? 0 : this.attempt, this._backoffOptions());
    this.attempt += 1;
    this._setState(State.RECONNECTING, { ...detail, willRetry: true, attempt: this.attempt, delay });
    this._armTimer("retry", delay, () => this._open());
  }

  _backoffOptions() {
    return {
      baseDelay: this.options.reconnectDelay,
      maxDelay: this.options.maxReconnectDelay,
      random: this.options.random ?? Math.random,
    };
  }

  /** Reconnect now if waiting for a backoff timer (the page came back online). */
  retryNow() {
    if (this.state === State.RECONNECTING && this._wanted) this._open();
  }

  _installEnvironmentListeners() {
    const win = this.options.window ?? (typeof window !== "undefined" ? window : undefined);
    if (!win || typeof win.addEventListener !== "function") return;
    const doc = win.document;
    const onOnline = () => this.retryNow();
    const onVisible = () => {
      if (doc?.visibilityState === "visible") this.retryNow();
    };
    win.addEventListener("online", onOnline);
    doc?.addEventListener?.("visibilitychange", onVisible);
    this._removeEnvironmentListeners = () => {
      win.removeEventListener("online", onOnline);
      doc?.removeEventListener?.("visibilitychange", onVisible);
    };
  }

  _armTimer(name, ms, fn) {
    this._clearTimer(name);
    this._timers[name] = setTimeout(() => {
      this._timers[name] = null;
      fn();
    }, ms);
  }

  _clearTimer(name) {
    if (this._timers[name] != null) {
      clearTimeout(this._timers[name]);
      this._timers[name] = null;
    }
  }

  _armHeartbeat() {
    const interval = this.welcome?.heartbeat;
    if (typeof interval !== "number" || !(interval > 0)) return;
    this._armTimer("heartbeat", interval * 1000 + this.options.heartbeatGrace, () => {
      this._abort(4408, "heartbeat timeout: nothing from the server");
    });
  }

  // -- receiving -------------------------------------------------------------------

  _onMessage(raw) {
    if (typeof raw !== "string") return; // the server only sends text
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (this.welcome && this._ws) this._armHeartbeat();
    this._emit("message", frame);
    switch (frame.type) {
      case "rt.welcome":
        return this._onWelcome(frame.data ?? {});
      case "rt.ping": {
        // The pong echoes the ping's id and data: the server's nonce proves receipt.
        const pong = frame.id ? { type: "rt.pong", id: frame.id } : { type: "rt.pong" };
        if (frame.data !== undefined) pong.data = frame.data;
        return this._sendNow(pong);
      }
      case "rt.pong":
        return this._settle(frame, true);
      case "rt.ack":
        return this._settle(frame, true);
      case "rt.error":
        return this._onError(frame);
      case "rt.presence.join":
      case "rt.presence.leave":
        return this._onPresence(frame);
      case "rt.reset":
        return this._onReset(frame);
      default:
        // Other rt. types are protocol frames of a newer server: never app events.
        if (typeof frame.type === "string" && frame.type.startsWith("rt.")) return;
        if (frame.group != null) return this._onGroupEvent(frame);
        this._emit("event", frame);
    }
  }

  _onWelcome(welcome) {
    this.welcome = welcome;
    this.user = welcome.user ?? null;
    this._armHeartbeat();
    this._emit("welcome", welcome);
    const token = this.options.token;
    if (token && !welcome.user) {
      const ws = this._ws;
      Promise.resolve(typeof token === "function" ? token() : token)
        .then((value) => {
          if (this._ws !== ws) throw new RealtimeError("socket replaced", { code: "connection_lost" });
          return this._request("rt.auth", { token: value }, { direct: true });
        })
        .then((ack) => {
          this.user = ack?.user ?? null;
          this._emit("auth", ack);
          this._onReady();
        })
        .catch((error) => {
          // A refused token closes the socket (4401); the close decides what follows.
          if (error.code !== "connection_lost") this._lastError = error;
        });
      return;
    }
    this._onReady();
  }

  _onReady() {
    if (!this._ws) return;
    this._clearTimer("connect");
    this._ready = true;
    this._armTimer("stable", this.options.stableAfter, () => {
      this.attempt = 0;
      this._authFailures = 0;
    });
    const { events } = this.options;
    if (events && Object.keys(events).length) {
      this._request("rt.hello", { events }, { direct: true }).then(
        (ack) => {
          this.eventVersions = ack?.events ?? null;
          this._emit("hello", ack);
        },
        (error) => this._emit("error", error),
      );
    }
    for (const channel of this._channels.values()) this._sendSubscribe(channel);
    const queued = this._queue;
    this._queue = [];
    for (const item of queued) {
      if (item.id && !this._requests.has(item.id)) continue; // timed out while queued
      this._transmit(item.frame);
    }
    this._setState(State.OPEN, { welcome: this.welcome });
    this._settleWaiters(null);
  }

  _settle(frame, ok) {
    const request = frame.id != null ? this._requests.get(frame.id) : undefined;
    if (!request) return false;
    this._requests.delete(frame.id);
    clearTimeout(request.timer);
    if (ok) request.resolve(frame.data);
    else {
      const data = frame.data ?? {};
      request.reject(
        new RealtimeError(data.message ?? "request failed", { code: data.code, errors: data.errors, frame }),
      );
    }
    return true;
  }

  _onError(frame) {
    if (this._settle(frame, false)) return;
    const data = frame.data ?? {};
    const error = new RealtimeError(data.message ?? "server error", { code: data.code, errors: data.errors, frame });
    this._lastError = error; // a close usually follows; its event carries this
    this._emit("error", error);
  }

  _onPresence(frame) {
    const presence = {
      type: frame.type === "rt.presence.join" ? "join" : "leave",
      group: frame.group,
      member: frame.data,
    };
    this._emit("presence", presence);
    const channel = this._channels.get(frame.group);
    for (const sub of channel?.subs ?? []) {
      if (sub.options.onPresence) this._call(sub.options.onPresence, presence);
    }
  }

  _call(fn, ...args) {
    try {
      fn(...args);
    } catch (error) {
      reportError(error);
    }
  }

  _onGroupEvent(frame) {
    const channel = this._channels.get(frame.group);
    if (!channel) {
      this._emit("event", frame); // e.g. the personal group user.<pk>
      return;
    }
    if (typeof frame.seq !== "number" || channel.seq == null) {
      this._deliver(channel, frame);
      return;
    }
    if (frame.seq <= channel.seq) return; // duplicate (replay and live overlap)
    if (frame.seq > channel.seq + 1 || channel.resyncing) {
      channel.pending.set(frame.seq, frame);
      if (!channel.resyncing) this._resync(channel);
      this._drain(channel);
      return;
    }
    channel.seq = frame.seq;
    this._deliver(channel, frame);
    this._drain(channel);
  }

  _drain(channel) {
    for (const seq of [...channel.pending.keys()]) {
      if (seq <= channel.seq) channel.pending.delete(seq);
    }
    let next;
    while ((next = channel.pending.get(channel.seq + 1))) {
      channel.pending.delete(next.seq);
      channel.seq = next.seq;
      this._deliver(channel, next);
    }
  }

  _deliver(channel, frame) {
    this._emit("event", frame);
    for (const sub of [...channel.subs]) {
      if (sub.active && sub.handler) this._call(sub.handler, frame);
    }
  }

  // A live gap: resubscribe from the last seq seen so history fills it in order.
  _resync(channel) {
    channel.resyncing = true;
    this._emit("gap", { group: channel.group, seq: channel.seq });
    this._sendSubscribe(channel);
  }

  // The server could not deliver every event after this connection's position: the
  // group's history restarted, a live gap outran it, or (no history) the channel layer
  // was down. Continue after (epoch, seq) and let the app refetch.
  _onReset(frame) {
    if (typeof frame.group !== "string") return;
    const data = frame.data ?? {};
    const channel = this._channels.get(frame.group);
    const since = channel ? channel.seq : null;
    if (channel) this._setPosition(channel, data.epoch, data.seq);
    this._recoveryFailed(channel, {
      group: frame.group,
      since,
      seq: data.seq ?? null,
      epoch: data.epoch ?? null,
      reason: data.reason,
    });
  }

  // Held events belong to the old position (maybe an old epoch, whose seqs mean other
  // events): keeping them would deliver them in place of the new position's events.
  _setPosition(channel, epoch, seq) {
    channel.epoch = epoch ?? null;
    channel.seq = seq ?? null;
    channel.pending.clear();
  }

  _recoveryFailed(channel, failure) {
    this._emit("recovery-failed", failure);
    for (const sub of channel?.subs ?? []) {
      if (sub.options.onRecoveryFailed) this._call(sub.options.onRecoveryFailed, failure);
    }
  }

  // -- subscriptions ---------------------------------------------------------------

  /**
   * Join `group`; `handler(frame)` gets each event (`{type, v, group, seq, data}`) once,
   * in seq order, across reconnects. Options: `since`/`epoch` (resume from a stored
   * position), `onPresence`, `onRecoveryFailed`, `onError`.
   */
  subscribe(group, handler, options = {}) {
    if (typeof group !== "string" || !group) throw new TypeError("group must be a non-empty string");
    let channel = this._channels.get(group);
    const isNew = !channel;
    if (isNew) {
      channel = new Channel(group, options.since, options.epoch);
      this._channels.set(group, channel);
    }
    const sub = new Subscription(this, channel, handler, options);
    channel.subs.add(sub);
    if (isNew && this._ready) this._sendSubscribe(channel);
    return sub;
  }

  /** Groups subscribed to, with their positions: `{group: {seq, epoch}}`. */
  positions() {
    const out = {};
    for (const [group, channel] of this._channels) out[group] = { seq: channel.seq, epoch: channel.epoch };
    return out;
  }

  // Always from the channel's current position, so a retry or a resubscribe after a
  // reconnect still recovers what was missed.
  _sendSubscribe(channel) {
    this._clearRetry(channel);
    const attempt = ++channel.attempt;
    const data = { group: channel.group };
    const since = channel.seq;
    const epoch = channel.epoch;
    if (since != null) {
      data.since = since;
      if (epoch != null) data.epoch = epoch;
    }
    // No timeout: the server answers every subscribe in order, and a silent connection
    // is dropped by the heartbeat. Sending it again on the same socket while the
    // server is still at work (a reconnect storm) would only make it work twice.
    this._request("rt.subscribe", data, { direct: true, timeout: Infinity }).then(
      (ack) => this._onSubscribed(channel, since, epoch, ack ?? {}),
      (error) => this._onSubscribeError(channel, attempt, error),
    );
  }

  _onSubscribed(channel, since, epoch, ack) {
    if (this._channels.get(channel.group) !== channel) return; // unsubscribed meanwhile
    channel.resyncing = false;
    channel.failures = 0;
    const ackEpoch = ack.epoch ?? null;
    // `since` counts events of `epoch`; in another epoch the same numbers name other
    // events, so a changed epoch is a failed recovery whatever `recovered` says.
    // (Without a stored epoch there is nothing to compare: `recovered` decides.)
    const epochChanged = epoch != null && ackEpoch !== epoch;
    if (since != null && (ack.recovered === false || epochChanged)) {
      this._setPosition(channel, ackEpoch, ack.seq);
      this._recoveryFailed(channel, { group: channel.group, since, seq: ack.seq ?? null, epoch: ackEpoch });
    } else if (since == null) {
      this._setPosition(channel, ackEpoch, ack.seq);
    } else {
      // Recovered: replayed events follow the ack, starting after `since`.
      channel.epoch = ackEpoch;
    }
    if (!channel.acked) {
      channel.acked = true;
      channel._resolveReady(ack);
    }
    this._emit("subscribed", ack);
    this._drain(channel);
  }

  _onSubscribeError(channel, attempt, error) {
    if (this._channels.get(channel.group) !== channel) return; // unsubscribed meanwhile
    if (attempt !== channel.attempt) return; // a newer subscribe is on its way
    const transient = TRANSIENT_SUBSCRIBE_CODES.has(error.code);
    // Not connected: the next welcome resubscribes every channel.
    if (transient && (error.code === "connection_lost" || !this._ready)) return;
    if (transient && channel.failures < this.options.maxReconnectAttempts) {
      const delay = backoffDelay(channel.failures, this._backoffOptions());
      channel.failures += 1;
      channel.retryTimer = setTimeout(() => {
        channel.retryTimer = null;
        if (this._ready && this._channels.get(channel.group) === channel) this._sendSubscribe(channel);
      }, delay);
      this._emit("subscription-retry", { group: channel.group, error, attempt: channel.failures, delay });
      return;
    }
    this._channels.delete(channel.group);
    // A refused gap fill leaves the server's earlier subscription in place: leave it.
    if (channel.acked && this._ready) {
      this._request("rt.unsubscribe", { group: channel.group }, { direct: true }).catch(() => {});
    }
    const detail = { group: channel.group, error };
    channel._rejectReady(error);
    for (const sub of channel.subs) {
      sub.active = false;
      if (sub.options.onError) this._call(sub.options.onError, error);
    }
    this._emit("subscription-error", detail);
  }

  _clearRetry(channel) {
    if (channel.retryTimer != null) {
      clearTimeout(channel.retryTimer);
      channel.retryTimer = null;
    }
  }

  _removeSubscription(sub) {
    const channel = this._channels.get(sub.group);
    if (!channel || !channel.subs.delete(sub) || channel.subs.size) return;
    this._channels.delete(sub.group);
    this._clearRetry(channel);
    if (this._ready) {
      this._request("rt.unsubscribe", { group: sub.group }, { direct: true }).catch(() => {});
    }
  }

  // -- sending ---------------------------------------------------------------------

  /**
   * Send an event without waiting for a reply. Sent now when open, else queued and
   * sent in order after the next welcome. Returns true when sent now.
   */
  send(type, data = {}, options = {}) {
    const frame = this._frame(type, data, options.v, undefined);
    if (this._ready) {
      this._transmit(frame);
      return true;
    }
    this._enqueue({ frame });
    return false;
  }

  /** Send an event with an `id`; resolves with the `rt.ack` data, rejects with a
   * RealtimeError (`rt.error` code, `timeout`, `connection_lost`, `queue_overflow`). */
  request(type, data = {}, options = {}) {
    return this._request(type, data, options);
  }

  _request(type, data, { timeout, v, direct = false } = {}) {
    const id = String(this._nextId++);
    const frame = this._frame(type, data, v, id);
    return new Promise((resolve, reject) => {
      const ms = timeout ?? this.options.requestTimeout;
      const request = { resolve, reject, sent: false, timer: null };
      if (ms != null && ms !== Infinity) {
        request.timer = setTimeout(() => {
          if (this._requests.get(id) !== request) return;
          this._requests.delete(id);
          reject(new RealtimeError(`no reply to ${type} within ${ms} ms`, { code: "timeout" }));
        }, ms);
      }
      this._requests.set(id, request);
      if (direct ? this._ws : this._ready) {
        request.sent = true;
        this._transmit(frame);
      } else {
        this._enqueue({ frame, id });
      }
    });
  }

  _frame(type, data, v, id) {
    if (typeof type !== "string" || !type) throw new TypeError("type must be a non-empty string");
    const frame = { type };
    if (v != null) frame.v = v;
    if (id != null) frame.id = id;
    if (data != null) frame.data = data;
    return frame;
  }

  _enqueue(item) {
    const limit = this.options.queueSize;
    if (this._queue.length >= limit) {
      const rejectNew = this.options.queueOverflow === "reject" || limit <= 0;
      const dropped = rejectNew ? item : this._queue.shift();
      this._emit("queue-overflow", dropped.frame);
      const request = dropped.id ? this._requests.get(dropped.id) : undefined;
      const error = new RealtimeError(`offline queue is full (${limit} frames)`, { code: "queue_overflow" });
      if (request) {
        this._requests.delete(dropped.id);
        clearTimeout(request.timer);
        request.reject(error);
      } else if (rejectNew) {
        throw error;
      }
      if (rejectNew) return;
    }
    this._queue.push(item);
  }

  _transmit(frame) {
    if (frame.id) {
      const request = this._requests.get(frame.id);
      if (request) request.sent = true;
    }
    this._sendNow(frame);
  }

  _sendNow(frame) {
    if (!this._ws) return;
    try {
      this._ws.send(JSON.stringify(frame));
    } catch (error) {
      this._emit("error", error);
    }
  }

  /** Number of frames waiting for a connection. */
  get queued() {
    return this._queue.length;
  }

  // -- presence and typing ---------------------------------------------------------

  /** Who is in `group` (subscribe first): resolves with `{group, members, anonymous,
   * connections}`. */
  presence(group, options = {}) {
    return this._request("rt.presence", { group }, options);
  }

  /**
   * Tell `group` this user is typing: sends the app's typing event (option
   * `typingEvent`, default "typing") to `group` (in the envelope), at most once per
   * `typingInterval` ms per group, and only while open (stale typing is never queued).
   * Returns true when a frame was sent.
   */
  typing(group, data = {}) {
    if (!this._ready) return false;
    const now = Date.now();
    const last = this._typingSent.get(group);
    if (last != null && now - last < this.options.typingInterval) return false;
    this._typingSent.set(group, now);
    // The group travels in the envelope: the server relays ephemeral events to it.
    this._transmit({ type: this.options.typingEvent, group, data: { ...data } });
    return true;
  }
}

export default RealtimeClient;
