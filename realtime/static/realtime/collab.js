// realtime collab: a Yjs document (and its awareness) kept in step with a shared
// document on the server, over a RealtimeClient (docs/collab.md).
//
// The frames carry y-protocols messages in base64: `doc.sync` a sync message (step 1,
// step 2, update), `doc.awareness` an awareness update. Any Yjs editor binding works
// on `provider.doc` and `provider.awareness` unchanged.
//
// Imports the bare specifiers "yjs" and "y-protocols/awareness": resolved by a bundler,
// by Node, or in a page without a build step by an import map.
import * as Y from "yjs";
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from "y-protocols/awareness";

const STEP1 = 0;
const STEP2 = 1;
const UPDATE = 2;

function writeUint(out, value) {
  while (value > 0x7f) {
    out.push(0x80 | (value & 0x7f));
    value = Math.floor(value / 128);
  }
  out.push(value);
}

/** A y-protocols sync message: varUint kind, varUint8Array payload. */
export function encodeSync(kind, payload) {
  const head = [];
  writeUint(head, kind);
  writeUint(head, payload.length);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/** `[kind, payload]` of a sync message. */
export function decodeSync(message) {
  let pos = 0;
  const read = () => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (pos >= message.length) throw new Error("truncated sync message");
      const byte = message[pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  };
  const kind = read();
  const length = read();
  if (pos + length !== message.length) throw new Error("malformed sync message");
  return [kind, message.subarray(pos, pos + length)];
}

export function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

export function fromBase64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

// An update that changes nothing: no structs, no deletions.
const isEmpty = (update) => update.length <= 2 && update.every((b) => b === 0);

/**
 * Keeps `doc` in step with the shared document `group` ("doc.{slug}").
 *
 * Events (`on(name, fn)`): `synced` (after each completed sync exchange), `status`
 * (`{synced, writable}`), `error` (a refused message, with the RealtimeError).
 */
export class DocumentProvider {
  constructor(client, group, doc = new Y.Doc(), options = {}) {
    this.client = client;
    this.group = group;
    this.doc = doc;
    this.awareness = options.awareness ?? new Awareness(doc);
    // Local updates are merged and sent at most this often (ms), cursors likewise:
    // fast typing stays within the connection's rate limit.
    this.flushInterval = options.flushInterval ?? 100;
    this.awarenessInterval = options.awarenessInterval ?? 100;
    this.synced = false;
    this.writable = null; // unknown until the first sync
    this._listeners = new Map();
    this._pending = [];
    this._flushTimer = null;
    this._retryTimer = null;
    this._retries = 0;
    this._announceTimer = null;
    this._syncing = 0; // the latest sync exchange; older answers are stale
    this._destroyed = false;

    this._onDocUpdate = (update, origin) => {
      if (origin === this) return;
      // Offline or not yet in step: the next sync exchange sends it (step 2).
      if (!this.synced || !this.writable) return;
      this._pending.push(update);
      if (this._flushTimer == null) {
        this._flushTimer = setTimeout(() => this._flush(), this.flushInterval);
      }
    };
    this._onAwareness = ({ added, updated, removed }, origin) => {
      if (origin === this) {
        // Someone new: tell them where we are (they cannot ask).
        if (added.length) this._announce();
        return;
      }
      const mine = [...added, ...updated, ...removed].includes(this.doc.clientID);
      if (mine) this._announce();
    };
    this._onSubscribed = (ack) => {
      if (ack?.group === this.group) this._sync();
    };
    // Presence says who is here: a user who left (even from a process that crashed,
    // once presence notices) takes their cursors along. Awareness names the user with
    // the id the server stamped, so the match cannot be forged.
    this._onPresence = ({ type, group: g, member }) => {
      if (type !== "leave" || g !== this.group || member?.id == null) return;
      const gone = [];
      for (const [id, state] of this.awareness.getStates()) {
        if (id !== this.doc.clientID && state?.user?.id === member.id) gone.push(id);
      }
      if (gone.length) removeAwarenessStates(this.awareness, gone, this);
    };
    this._onState = ({ state }) => {
      if (state === "open") return;
      this._setSynced(false);
      // Remote cursors are stale while offline; they come back with the next sync.
      const others = [...this.awareness.getStates().keys()].filter((id) => id !== this.doc.clientID);
      if (others.length) removeAwarenessStates(this.awareness, others, this);
    };

    doc.on("update", this._onDocUpdate);
    this.awareness.on("update", this._onAwareness);
    client.on("subscribed", this._onSubscribed);
    client.on("state", this._onState);
    client.on("presence", this._onPresence);
    this.subscription = client.subscribe(group, (frame) => this._onFrame(frame), {
      onRecoveryFailed: () => this._sync(), // relays may have been lost: sync again
      onError: (error) => this._emit("error", error),
    });
  }

  on(name, fn) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(fn);
    return this;
  }

  off(name, fn) {
    this._listeners.get(name)?.delete(fn);
    return this;
  }

  _emit(name, ...args) {
    for (const fn of [...(this._listeners.get(name) ?? [])]) {
      try {
        fn(...args);
      } catch (error) {
        reportError(error);
      }
    }
  }

  _setSynced(synced) {
    if (this.synced === synced) return;
    this.synced = synced;
    this._emit("status", { synced, writable: this.writable });
  }

  _onFrame(frame) {
    const m = frame.data?.m;
    if (typeof m !== "string") return;
    if (frame.type === "doc.sync") {
      const [kind, payload] = decodeSync(fromBase64(m));
      if (kind === STEP2 || kind === UPDATE) Y.applyUpdate(this.doc, payload, this);
    } else if (frame.type === "doc.awareness") {
      applyAwarenessUpdate(this.awareness, fromBase64(m), this);
    }
  }

  // The y-protocols exchange: our step 1, the server's step 2 and step 1 in the ack,
  // then our step 2 with whatever it lacks (what was typed offline, or refused).
  async _sync() {
    if (this._destroyed) return;
    const attempt = ++this._syncing;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    try {
      const ack = await this.client.request("doc.sync", {
        group: this.group,
        m: toBase64(encodeSync(STEP1, Y.encodeStateVector(this.doc))),
      });
      if (attempt !== this._syncing) return;
      this.writable = ack.writable;
      let serverVector = null;
      for (const m of ack.m) {
        const [kind, payload] = decodeSync(fromBase64(m));
        if (kind === STEP2) Y.applyUpdate(this.doc, payload, this);
        else if (kind === STEP1) serverVector = payload;
      }
      this._pending = []; // step 2 below carries them
      if (this.writable && serverVector) {
        const missing = Y.encodeStateAsUpdate(this.doc, serverVector);
        if (!isEmpty(missing)) {
          await this.client.request("doc.sync", { group: this.group, m: toBase64(encodeSync(STEP2, missing)) });
        }
      }
      if (attempt !== this._syncing) return;
      this._retries = 0;
      this._setSynced(true);
      this._emit("synced", { writable: this.writable });
      if (this.awareness.getLocalState() !== null) this._sendAwareness();
    } catch (error) {
      if (attempt === this._syncing) this._failed(error);
    }
  }

  _flush() {
    this._flushTimer = null;
    if (!this._pending.length) return;
    const update = this._pending.length === 1 ? this._pending[0] : Y.mergeUpdates(this._pending);
    this._pending = [];
    if (!this.synced) return; // the next sync sends it
    this.client
      .request("doc.sync", { group: this.group, m: toBase64(encodeSync(UPDATE, update)) })
      .catch((error) => this._failed(error));
  }

  // A refused or lost update stays in the doc: a later sync exchange sends it again.
  _failed(error) {
    this._emit("error", error);
    if (error?.code === "forbidden" && this.writable) {
      this.writable = false;
      this._emit("status", { synced: this.synced, writable: false });
    }
    if (error?.code === "connection_lost" || this._destroyed) return; // resynced on reconnect
    if (this._retryTimer != null) return;
    const delay = Math.min(30000, 500 * 2 ** this._retries++);
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      if (this.client.state === "open") this._sync();
    }, delay);
  }

  _sendAwareness() {
    if (this.client.state !== "open") return;
    const m = toBase64(encodeAwarenessUpdate(this.awareness, [this.doc.clientID]));
    this.client.send("doc.awareness", { group: this.group, m });
  }

  // At most one awareness frame per `awarenessInterval`, with the latest state.
  _announce() {
    if (this._announceTimer != null) return;
    this._announceTimer = setTimeout(() => {
      this._announceTimer = null;
      if (this.synced) this._sendAwareness();
    }, this.awarenessInterval);
  }

  /** Leave the document: our cursor disappears for the others. */
  destroy() {
    if (this._destroyed) return;
    this._destroyed = true;
    clearTimeout(this._flushTimer);
    clearTimeout(this._retryTimer);
    clearTimeout(this._announceTimer);
    removeAwarenessStates(this.awareness, [this.doc.clientID], "local");
    this.doc.off("update", this._onDocUpdate);
    this.awareness.off("update", this._onAwareness);
    this.client.off("subscribed", this._onSubscribed);
    this.client.off("state", this._onState);
    this.client.off("presence", this._onPresence);
    this.subscription.unsubscribe();
  }
}
