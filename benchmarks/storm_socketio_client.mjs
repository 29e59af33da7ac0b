// Load client for storm.py --peer socketio: the same storm against python-socketio.
// Each client is a real socket.io-client (its own Manager, websocket transport only)
// with the library's default reconnection schedule (1 s doubling to 5 s, randomisation
// 0.5, connect timeout 20 s). On each connect it emits "subscribe" for its rooms and
// waits for the acks. The config, the commands on stdin and the lines on stdout are the
// ones of storm_client.mjs.
//
// socket.io over the Redis adapter keeps no history: what a room got while a client was
// away is gone. Events carry {group, n} with n counting up per group from 0, so each
// client tells apart, per group, a duplicate, an event out of order, the events it
// missed while it was away (not recoverable) and any other missing event (lost).
import { io } from "socket.io-client";

import { balancer, listen, newStorm, now, out, stormStats } from "./storm_shared.mjs";

const cfg = JSON.parse(process.argv[2]);
const lb = balancer(cfg);

let storm = null;
const storms = [];
const failures = { refused: 0, handshake: 0, timeouts: 0 };
const closes = {};
const errorSamples = [];
const clients = [];
const managerErrors = new WeakSet();

// A connection error as the Manager reports it: engine.io wraps the ws error event.
function classify(err) {
  if (err.message === "timeout") return "timeouts";
  const cause = err.description?.error ?? err.description;
  const text = `${cause?.code ?? ""} ${cause?.message ?? ""} ${err.message}`;
  return /ECONNREFUSED/.test(text) ? "refused" : "handshake";
}

function track(c, group) {
  const g = {
    group,
    last: -1, // the highest n delivered
    seen: new Uint8Array(cfg.capacity),
    awaySinceLast: false, // the client was away since the last event it got
    lost: 0,
    missedAway: 0,
    dups: 0,
    outOfOrder: 0,
  };
  c.groups.set(group, g);
  return g;
}

function makeClient(i) {
  const own = cfg.urls[(cfg.offset + i) % cfg.urls.length];
  const socket = io(lb.route(own), {
    transports: ["websocket"],
    forceNew: true, // a Manager (a connection) per client, as in separate browsers
    autoConnect: false,
  });
  const manager = socket.io;
  const c = { socket, groups: new Map(), hit: false, recoveredAt: null, url: own, away: false };
  for (let k = 0; k < cfg.perClient; k++) track(c, cfg.groups[(cfg.offset + i + k) % cfg.groups.length]);
  clients.push(c);
  c.url = manager.uri;

  // The balancer picks the server before each attempt: the Manager opens a new engine
  // on its `uri` for every reconnection.
  manager.on("reconnect_attempt", () => {
    manager.uri = c.url = lb.route(own);
    if (!storm || !c.hit) return;
    const t = now() - storm.at;
    storm.attempts.push(t);
    if (++c.tries > 1) storm.retries.push(t);
  });
  manager.on("error", (err) => {
    managerErrors.add(err);
    const kind = classify(err);
    failures[kind]++;
    if (kind === "handshake" && errorSamples.length < 5) errorSamples.push(String(err.description?.message ?? err.message));
  });

  // The server refused the namespace's CONNECT (the Manager's errors arrive here too,
  // counted above).
  socket.on("connect_error", (err) => {
    if (managerErrors.has(err)) return;
    failures.handshake++;
    if (errorSamples.length < 5) errorSamples.push(String(err.message));
  });

  socket.on("disconnect", (reason) => {
    closes[reason] = (closes[reason] || 0) + 1;
    c.away = true;
    c.generation = (c.generation || 0) + 1;
    for (const g of c.groups.values()) g.awaySinceLast = true;
    if (!storm) return;
    storm.closesMs.push(now() - storm.at);
    if (!c.hit) {
      c.hit = true;
      c.tries = 0;
      storm.hit++;
    } else if (c.recoveredAt != null) storm.back--; // back, then lost again: not back
    c.recoveredAt = null;
    // The server said goodbye: socket.io-client does not reconnect by itself then.
    if (reason === "io server disconnect") socket.connect();
  });

  socket.on("connect", () => {
    if (storm && c.hit && c.openedAt == null) {
      c.openedAt = now();
      storm.openedMs.push(c.openedAt - storm.at);
    }
    const generation = c.generation || 0;
    const acks = [...c.groups.keys()].map((group) => socket.emitWithAck("subscribe", group));
    c.subscribed = Promise.all(acks).then(
      () => {
        if (generation !== (c.generation || 0)) return;
        c.away = false;
        if (storm && c.hit && c.recoveredAt == null) {
          c.recoveredAt = now();
          storm.back++;
          if (storm.back === storm.hit && storm.back >= storm.expected) announceRecovered();
        }
        if (c.onReady) c.onReady();
      },
      () => {}, // the connection went away before the acks: the next connect resubscribes
    );
  });

  socket.on("event", (data) => {
    const g = c.groups.get(data.group);
    if (!g) return;
    const n = data.n;
    if (n >= 0 && n < g.seen.length) {
      if (g.seen[n]) {
        g.dups++;
        return;
      }
      g.seen[n] = 1;
    }
    if (n < g.last) g.outOfOrder++;
    else {
      const skipped = n - g.last - 1;
      if (g.awaySinceLast) g.missedAway += skipped;
      else g.lost += skipped;
      g.last = n;
    }
    g.awaySinceLast = false;
    if (finals) caughtUp();
  });
  return c;
}

function settleStorm() {
  if (!storm) return;
  storm.recoveredMs = clients.filter((c) => c.hit && c.recoveredAt != null).map((c) => c.recoveredAt - storm.at);
}

function announceRecovered() {
  out({ recovered: { hit: storm.hit, expected: storm.expected, at: now() } });
}

// -- end of the run --------------------------------------------------------------------

let finals = null;
let reported = false;

function caughtUp() {
  for (const c of clients) {
    for (const g of c.groups.values()) if (g.last < finals[g.group] - 1) return;
  }
  report();
}

function report() {
  if (reported) return;
  reported = true;
  settleStorm();
  const totals = { lost: 0, missedAway: 0, dups: 0, outOfOrder: 0, behind: 0, undeliveredNotBack: 0 };
  let hitNotBack = 0;
  for (const c of clients) {
    const away = c.hit && c.recoveredAt == null;
    for (const g of c.groups.values()) {
      totals.dups += g.dups;
      totals.outOfOrder += g.outOfOrder;
      totals.lost += g.lost;
      totals.missedAway += g.missedAway;
      // The tail not delivered by the end: still away, missed while away, or lost.
      const end = finals ? finals[g.group] - 1 : g.last;
      if (g.last < end) {
        totals.behind++;
        if (away) totals.undeliveredNotBack += end - g.last;
        else if (g.awaySinceLast) totals.missedAway += end - g.last;
        else totals.lost += end - g.last;
      }
    }
    if (away) hitNotBack++;
  }
  const usage = process.cpuUsage();
  out({
    stats: {
      clients: clients.length,
      storms: stormStats(storms),
      hitNotBack,
      notRecovered: 0,
      lost: totals.lost,
      missedAway: totals.missedAway,
      dups: totals.dups,
      wireDups: totals.dups,
      outOfOrder: totals.outOfOrder,
      behind: totals.behind,
      undeliveredNotBack: totals.undeliveredNotBack,
      failures,
      closes,
      errorSamples,
      cpu_s: (usage.user + usage.system) / 1e6,
    },
  });
}

// -- main ------------------------------------------------------------------------------

async function main() {
  const start = now();
  let next = 0;
  let failed = 0;
  // A bounded number of handshakes in flight while the clients first arrive.
  async function worker() {
    while (next < cfg.count) {
      const c = makeClient(next++);
      const ready = new Promise((resolve, reject) => {
        c.onReady = resolve;
        setTimeout(() => reject(new Error("not subscribed in 30 s")), 30000).unref();
      });
      c.socket.connect();
      try {
        await ready;
      } catch {
        failed++;
      }
      c.onReady = null;
    }
  }
  await Promise.all(Array.from({ length: cfg.concurrency }, worker));
  out({ ready: { count: clients.length - failed, failed, start, end: now() } });
}

listen(lb, {
  mark(at, url) {
    const expected = clients.filter((c) => c.socket.connected && c.url === url).length;
    settleStorm();
    storm = newStorm(at, url, expected);
    storms.push(storm);
    for (const c of clients) {
      c.hit = false;
      c.openedAt = null;
    }
    if (expected === 0) announceRecovered();
  },
  final(sent) {
    finals = sent;
    caughtUp();
  },
  report,
  exit() {
    for (const c of clients) c.socket.disconnect();
    process.exit(0);
  },
});
main();
