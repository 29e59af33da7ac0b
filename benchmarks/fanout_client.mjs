// Load client for fanout.py: one process holds a share of the WebSocket clients.
//
// argv[2] is a JSON config: {urls, count, offset, mode ("realtime" | "baseline" |
// "socketio" | "node"), group, events, concurrency}. "socketio" speaks Engine.IO 4 /
// Socket.IO 5 by hand over the same `ws` sockets, so every stack costs the client alike. Lines on stdout are JSON: {"ready": ...} once every
// socket is subscribed, {"stats": ...} when all events arrived or on "report" from
// stdin. Latency is measured against the publisher's clock in each event (same
// machine), and kept as a log-scale histogram so a run of millions stays cheap.
import { performance } from "node:perf_hooks";
import readline from "node:readline";
import WebSocket from "ws";

const cfg = JSON.parse(process.argv[2]);
const M = cfg.events;
const now = () => performance.timeOrigin + performance.now();
const SCALE = 300; // buckets per e-fold of (1 + ms): 0.3 % resolution
const hist = new Uint32Array(4000);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const conns = [];
let received = 0;
let dups = 0;
let reordered = 0;
let firstRecv = 0;
let lastRecv = 0;
let errors = 0;
let readyCount = 0;
let reported = false;
const closes = {};
const expected = () => conns.length * M;

function record(conn, data) {
  const t = now();
  const n = data.n;
  if (n < 0 || n >= M) return;
  if (conn.seen[n]) {
    dups++;
    return;
  }
  conn.seen[n] = 1;
  if (n < conn.last) reordered++;
  conn.last = n;
  received++;
  if (!firstRecv) firstRecv = t;
  lastRecv = t;
  const ms = t - data.t * 1000;
  const b = Math.floor(Math.log1p(ms > 0 ? ms : 0) * SCALE);
  hist[b < hist.length ? b : hist.length - 1]++;
  if (received === expected()) report();
}

function report() {
  if (reported) return;
  reported = true;
  const sparse = [];
  for (let i = 0; i < hist.length; i++) if (hist[i]) sparse.push([i, hist[i]]);
  const usage = process.cpuUsage();
  out({
    stats: {
      received,
      dups,
      reordered,
      expected: expected(),
      firstRecv,
      lastRecv,
      errors,
      closes,
      hist: sparse,
      scale: SCALE,
      cpu_s: (usage.user + usage.system) / 1e6,
      // Bytes read from the servers by every socket (handshakes included).
      bytes: conns.reduce((sum, c) => sum + (c.ws._socket ? c.ws._socket.bytesRead : c.bytes || 0), 0),
    },
  });
}

// Engine.IO packet type, then Socket.IO's: "0{..}" open, "2" ping (answered "3"),
// "40{..}" connected, "430[..]" the ack of our subscribe (id 0), "42[name, data]" an event.
function socketio(ws, conn, text, subscribed) {
  if (text === "2") ws.send("3");
  else if (text.startsWith("42")) {
    const [name, data] = JSON.parse(text.slice(2));
    if (name === "event") record(conn, data);
  } else if (text.startsWith("430")) subscribed();
  else if (text.startsWith("40")) ws.send(`420${JSON.stringify(["subscribe", cfg.group])}`);
  else if (text.startsWith("0")) ws.send("40");
  else if (text.startsWith("44")) {
    errors++;
    if (errors <= 5) process.stderr.write(`connect error: ${text}\n`);
  }
}

function open(i) {
  return new Promise((resolve) => {
    const url = cfg.urls[(cfg.offset + i) % cfg.urls.length];
    // No compression unless asked (--deflate): then the client offers
    // permessage-deflate as browsers do ("client_max_window_bits").
    const ws = new WebSocket(url, { perMessageDeflate: cfg.deflate ? {} : false });
    const conn = { ws, seen: new Uint8Array(M), last: -1, ready: false };
    conns.push(conn);
    let settled = false;
    const settle = (ok) => {
      if (!settled) {
        settled = true;
        resolve(ok);
      }
    };
    const subscribed = () => {
      conn.ready = true;
      readyCount++;
      settle(true);
    };
    ws.on("open", () => {
      if (cfg.mode === "realtime") {
        ws.send(
          JSON.stringify({ type: "rt.subscribe", id: "sub", data: { group: cfg.group } }),
        );
      } else if (cfg.mode === "node") {
        ws.send(JSON.stringify({ type: "subscribe", group: cfg.group }));
      }
    });
    if (cfg.mode === "socketio") {
      ws.on("message", (raw) => socketio(ws, conn, raw.toString(), subscribed));
    } else ws.on("message", (raw) => {
      const frame = JSON.parse(raw.toString());
      const type = frame.type;
      if (type === "bench.tick") record(conn, frame.data);
      else if (type === "rt.ping") ws.send(JSON.stringify({ type: "rt.pong", data: frame.data ?? {} }));
      else if ((type === "rt.ack" && frame.id === "sub") || type === "ready" || type === "ack") {
        subscribed();
      } else if (type === "rt.error") {
        errors++;
        if (errors <= 5) process.stderr.write(`rt.error: ${raw}\n`);
      }
    });
    ws.on("close", (code) => {
      closes[code] = (closes[code] || 0) + 1;
      settle(false);
    });
    ws.on("error", (err) => {
      errors++;
      if (errors <= 5) process.stderr.write(`socket error: ${err.message}\n`);
      settle(false);
    });
  });
}

async function main() {
  const start = now();
  let next = 0;
  let failed = 0;
  // A bounded number of handshakes in flight, like browsers arriving together.
  async function worker() {
    while (next < cfg.count) {
      const i = next++;
      if (!(await open(i))) failed++;
    }
  }
  await Promise.all(Array.from({ length: cfg.concurrency }, worker));
  out({ ready: { count: readyCount, failed, start, end: now() } });
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "report") report();
  else if (line === "exit") {
    for (const c of conns) c.ws.terminate();
    process.exit(0);
  }
});
process.stdin.on("end", () => process.exit(0));
main();
