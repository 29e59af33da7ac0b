// An in-process WebSocket double for unit tests: the test plays the server.

export function fakeWebSocket() {
  const sockets = [];

  class FakeSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      this.closedByClient = null;
      this.frameWaiters = [];
      sockets.push(this);
      queueMicrotask(() => this.onopen?.({}));
    }

    send(text) {
      const frame = JSON.parse(text);
      this.sent.push(frame);
      this.frameWaiters = this.frameWaiters.filter(([match, resolve]) => {
        if (!match(frame)) return true;
        resolve(frame);
        return false;
      });
    }

    close(code) {
      this.closedByClient = code ?? 1005;
    }

    // -- the test's side --

    push(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }

    welcome(extra = {}) {
      this.push({
        type: "rt.welcome",
        data: { protocol: 1, connection_id: "c", heartbeat: 25, user: null, auth_required: false, ...extra },
      });
    }

    serverClose(code, reason = "") {
      this.onclose?.({ code, reason });
    }

    /** Resolve with the first sent frame (already sent or future) matching `match`. */
    waitFrame(match, timeout = 2000) {
      const test = typeof match === "string" ? (f) => f.type === match : match;
      const found = this.sent.find(test);
      if (found) return Promise.resolve(found);
      return withTimeout(
        new Promise((resolve) => this.frameWaiters.push([test, resolve])),
        timeout,
        `frame ${match}`,
      );
    }

    /** Acknowledge the first sent frame of `type` that has not been answered yet. */
    async ack(type, data, { match } = {}) {
      this.answered ??= new Set();
      const frame = await this.waitFrame(
        (f) => f.type === type && !this.answered.has(f.id) && (!match || match(f)),
      );
      this.answered.add(frame.id);
      this.push({ type: "rt.ack", id: frame.id, data });
      return frame;
    }
  }

  return {
    WebSocket: FakeSocket,
    sockets,
    /** The `index`th socket the client opened (waits for it). */
    async socket(index, timeout = 2000) {
      await until(() => sockets.length > index, { timeout, what: `socket #${index}` });
      return sockets[index];
    },
  };
}

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolve with the next `event` emitted by `client` that satisfies `match`. */
export function nextEvent(client, event, { match = () => true, timeout = 5000 } = {}) {
  let off;
  return withTimeout(
    new Promise((resolve) => {
      off = client.on(event, (detail) => {
        if (match(detail)) {
          off();
          resolve(detail);
        }
      });
    }),
    timeout,
    `event ${event}`,
  ).finally(() => off());
}

/** Poll `predicate` until true (bounded). */
export async function until(predicate, { timeout = 5000, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
