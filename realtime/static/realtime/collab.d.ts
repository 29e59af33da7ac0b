// Types for collab.js: a Yjs document kept in step with a realtime shared document.
import type * as Y from "yjs";
import type { Awareness } from "y-protocols/awareness";
import type { RealtimeClient, RealtimeError, Subscription } from "./realtime.js";

export interface DocumentProviderOptions {
  /** The awareness to relay (default: a new one for the doc). */
  awareness?: Awareness;
  /** Local updates are merged and sent at most this often, in ms (default 100). */
  flushInterval?: number;
  /** Cursor and selection changes are sent at most this often, in ms (default 100). */
  awarenessInterval?: number;
}

export interface DocumentStatus {
  synced: boolean;
  writable: boolean | null;
}

export declare class DocumentProvider {
  constructor(
    client: RealtimeClient,
    group: string,
    doc?: Y.Doc,
    options?: DocumentProviderOptions,
  );
  readonly client: RealtimeClient;
  readonly group: string;
  readonly doc: Y.Doc;
  readonly awareness: Awareness;
  readonly subscription: Subscription;
  /** True once a sync exchange completed on the current connection. */
  readonly synced: boolean;
  /** False for a read-only user; null before the first sync. */
  readonly writable: boolean | null;
  on(name: "synced", fn: (detail: { writable: boolean }) => void): this;
  on(name: "status", fn: (status: DocumentStatus) => void): this;
  on(name: "error", fn: (error: RealtimeError) => void): this;
  off(name: "synced" | "status" | "error", fn: (...args: any[]) => void): this;
  /** Leave the document: this user's cursor disappears for the others. */
  destroy(): void;
}

/** A y-protocols sync message: varUint kind (0, 1, 2), varUint8Array payload. */
export declare function encodeSync(kind: 0 | 1 | 2, payload: Uint8Array): Uint8Array;
export declare function decodeSync(message: Uint8Array): [number, Uint8Array];
export declare function toBase64(bytes: Uint8Array): string;
export declare function fromBase64(text: string): Uint8Array;
