// Shared helpers of the end-to-end scripts run by tests/e2e/test_client_node.py.
//
// pytest passes the servers and users in RT_TEST (JSON). A script asks pytest to act
// (kill a server, restart it, write history) with step(): one JSON line out on stdout,
// one JSON line back on stdin.
import { createInterface } from "node:readline";

import { until } from "./fake_socket.mjs";
import { MiniWebSocket } from "./mini_ws.mjs";

// Node < 20 has no WebSocket at all (RT_MINI_WS=1 forces the stand-in, to test it).
if (!globalThis.WebSocket || process.env.RT_MINI_WS) globalThis.WebSocket = MiniWebSocket;

export { nextEvent, until, withTimeout } from "./fake_socket.mjs";

export const config = JSON.parse(process.env.RT_TEST ?? "{}");

const replies = [];
let input = null;

export async function step(name, data = {}, timeout = 60000) {
  if (!input) {
    input = createInterface({ input: process.stdin });
    input.on("line", (line) => replies.push(line));
  }
  process.stdout.write(JSON.stringify({ step: name, ...data }) + "\n");
  await until(() => replies.length > 0, { timeout, what: `pytest's reply to step ${name}` });
  return JSON.parse(replies.shift());
}

export function log(...args) {
  process.stderr.write(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ") + "\n");
}

/** Run `fn`, then exit 0; on failure print the error and exit 1 (bounded by `timeout`). */
export function main(fn, { timeout = 90000 } = {}) {
  const watchdog = setTimeout(() => {
    log(`script timed out after ${timeout} ms`);
    process.exit(2);
  }, timeout);
  fn().then(
    () => {
      clearTimeout(watchdog);
      process.stdout.write(JSON.stringify({ done: true }) + "\n");
      process.exit(0);
    },
    (error) => {
      log(error?.stack ?? String(error));
      process.exit(1);
    },
  );
}

/** Record every group event a client delivers: [{seq, n, text}]. */
export function recorder(client, group) {
  const events = [];
  const sub = client.subscribe(group, (event) => events.push({ seq: event.seq, ...event.data }));
  return { events, sub, ns: () => events.map((e) => e.n), seqs: () => events.map((e) => e.seq) };
}
