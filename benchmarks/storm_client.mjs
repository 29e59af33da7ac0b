// Load client for storm.py: one Node process runs a share of the clients, each a real
// RealtimeClient (realtime.js) on the `ws` package, so reconnects follow the client's
// own schedule (backoff, jitter, resubscribe with `since`).
//
// argv[2] is a JSON config: {urls, count, offset, groups, perClient, capacity,
// concurrency, mode}. Commands arrive on stdin, one per line:
//   down <url> / up <url>   the balancer's view of a server (a load balancer's health
//                           check): a client whose server is down connects to the next
//                           server that is up (mode "other"); mode "same" always
//                           reconnects to its own server, up or not
//   mark <t> <url>          a storm starts at wall-clock ms <t> on server <url>: attempts
//                           and recovery are measured from there
//   final <json>            events the publisher sent per group: report once caught up
//   report                  report now
//   exit
// Lines on stdout are JSON: {"ready": ...} once every client is subscribed, then
// {"recovered": ...} when every client hit by the storm is back, and {"stats": ...}.
import WebSocket from "ws";

import { RealtimeClient } from "../realtime/static/realtime/realtime.js";
import { balancer, listen, newStorm, now, out, stormStats } from "./storm_shared.mjs";

const cfg = JSON.parse(process.argv[2]);
const lb = balancer(cfg);

// The storms so far; each records when the clients' attempts started, closes arrived
// and clients came back.
let storm = null; // the latest of storms: {at, attempts: [ms since the storm], ...}
const storms = [];
const failures = { refused: 0, handshake: 0, timeouts: 0 };
const closes = {};
const errorSamples = [];

// Every socket the clients open: routed by the balancer, its failures told apart
// (a refused connection, a failed handshake, the client's own connect timeout).
class BalancedSocket extends WebSocket {
  constructor(url, protocols) {
    super(lb.route(url), protocols, { perMessageDeflate: false });
    this.on("error", (err) => {
      if (err.code === "ECONNREFUSED") failures.refused++;
      else if (this.aborted) return; // realtime.js gave up (connect timeout): counted there
      else {
        failures.handshake++;
        if (errorSamples.length < 5) errorSamples.push(err.message);
      }
    });
  }

  close(...args) {
    if (this.readyState === WebSocket.CONNECTING) this.aborted = true;
    super.close(...args);
  }
}

// -- one client ------------------------------------------------------------------------

const clients = [];

// Per client and group: the seqs delivered to the app (must be one by one, once each)
// and the seqs seen on the wire (a seq arriving twice is counted, whatever the client
// library then does with it).
function track(c, group, start) {
  const g = {
    group,
    start, // seq of the first ack: the first event expected is start + 1
    last: start,
    lost: 0,
    dups: 0,
    wireDups: 0,
    wire: new Uint8Array(cfg.capacity),
    ackSeq: null, // head of the group at the resubscribe after the storm
    recoveredAck: null,
  };
  c.groups.set(group, g);
  return g;
}

function makeClient(i) {
  const url = cfg.urls[(cfg.offset + i) % cfg.urls.length];
  const client = new RealtimeClient(url, {
    WebSocket: BalancedSocket,
    autoConnect: false,
  });
  const c = { client, groups: new Map(), hit: false, recoveredAt: null };
  clients.push(c);
  client.on("message", (frame) => {
    if (typeof frame.seq !== "number") return;
    const g = c.groups.get(frame.group);
    if (!g) return;
    const k = frame.seq - g.start;
    if (k > 0 && k < g.wire.length) {
      if (g.wire[k]) g.wireDups++;
      g.wire[k] = 1;
    }
  });
  client.on("reconnecting", (detail) => {
    closes[detail.code] = (closes[detail.code] || 0) + 1;
    if (storm && detail.code === 4503) storm.closesMs.push(now() - storm.at);
    if (detail.code === 4008) failures.timeouts++;
    if (!storm) return;
    if (!c.hit) {
      c.hit = true;
      c.tries = 0;
      storm.hit++;
    } else if (c.recoveredAt != null) storm.back--; // back, then lost again: not back
    c.recoveredAt = null;
    for (const g of c.groups.values()) g.ackSeq = g.recoveredAck = null;
  });
  client.on("subscribed", (ack) => {
    const g = c.groups.get(ack.group);
    if (!g || !c.hit) return;
    g.ackSeq = ack.seq;
    g.recoveredAck = ack.recovered === true;
    check(c);
  });
  // A live gap (an event ahead of the next seq) makes the client resubscribe from its
  // position: the replay fills the gap, and the events it held arrive a second time.
  client.on("gap", () => {
    if (storm) storm.gaps++;
  });
  // A subscribe refused for a passing reason is sent again (and replayed again).
  client.on("subscription-retry", ({ error }) => {
    if (storm) storm.subscribeRetries[error.code] = (storm.subscribeRetries[error.code] || 0) + 1;
  });
  // Each attempt of a client hit by the storm; after its first, a retry (the first
  // attempt failed: refused, timed out, closed before the welcome).
  client.on("connecting", () => {
    if (!storm || !c.hit) return;
    const t = now() - storm.at;
    storm.attempts.push(t);
    if (++c.tries > 1) storm.retries.push(t);
  });
  client.on("open", () => {
    if (storm && c.hit && c.openedAt == null) {
      c.openedAt = now();
      storm.openedMs.push(c.openedAt - storm.at);
    }
  });
  client.on("recovery-failed", () => {
    if (storm) storm.recoveryFailed++;
  });
  return c;
}

// A client hit by the storm is back once every group was resubscribed, the acks said
// recovered, and the replay reached the head the ack reported.
function check(c) {
  if (!c.hit || c.recoveredAt != null) return;
  for (const g of c.groups.values()) {
    if (g.ackSeq == null || !g.recoveredAck || g.last < g.ackSeq) return;
  }
  c.recoveredAt = now();
  storm.back++;
  if (storm.back === storm.hit && storm.back >= storm.expected) announceRecovered();
}

// When each client of the storm was back, in ms after its start.
function settleStorm() {
  if (!storm) return;
  storm.recoveredMs = clients.filter((c) => c.hit && c.recoveredAt != null).map((c) => c.recoveredAt - storm.at);
}

function announceRecovered() {
  out({ recovered: { hit: storm.hit, expected: storm.expected, at: now() } });
}

function subscribeAll(c, i) {
  const groups = [];
  for (let k = 0; k < cfg.perClient; k++) {
    groups.push(cfg.groups[(cfg.offset + i + k) % cfg.groups.length]);
  }
  return Promise.all(
    groups.map((group) => {
      let g = null;
      const sub = c.client.subscribe(group, (frame) => {
        if (!g) return;
        if (frame.seq <= g.last) g.dups++;
        else {
          g.lost += frame.seq - g.last - 1;
          g.last = frame.seq;
        }
        if (c.hit) check(c);
        if (finals) caughtUp();
      });
      return sub.ready.then((ack) => {
        g = track(c, group, ack.seq);
      });
    }),
  );
}

// -- end of the run --------------------------------------------------------------------

let finals = null;
let reported = false;

function caughtUp() {
  for (const c of clients) {
    for (const g of c.groups.values()) if (g.last < g.start + finals[g.group]) return;
  }
  report();
}

function report() {
  if (reported) return;
  reported = true;
  settleStorm();
  let lost = 0;
  let dups = 0;
  let wireDups = 0;
  let behind = 0;
  let undeliveredNotBack = 0;
  let hitNotBack = 0;
  let notRecovered = 0;
  for (const c of clients) {
    const away = c.hit && c.recoveredAt == null;
    for (const g of c.groups.values()) {
      dups += g.dups;
      wireDups += g.wireDups;
      lost += g.lost; // seqs skipped in delivery
      // Events not delivered by the end: lost, unless the client is still away
      // (not reconnected by the deadline), which is counted apart.
      const end = finals ? g.start + finals[g.group] : g.last;
      if (g.last < end) {
        behind++;
        if (away) undeliveredNotBack += end - g.last;
        else lost += end - g.last;
      }
      if (c.hit && g.recoveredAck === false) notRecovered++;
    }
    if (c.hit && c.recoveredAt == null) hitNotBack++;
  }
  const usage = process.cpuUsage();
  out({
    stats: {
      clients: clients.length,
      storms: stormStats(storms),
      hitNotBack,
      notRecovered,
      lost,
      dups,
      wireDups,
      behind,
      undeliveredNotBack,
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
      const i = next++;
      const c = makeClient(i);
      const subscribed = subscribeAll(c, i);
      c.client.connect().catch(() => {});
      try {
        await subscribed;
      } catch {
        failed++;
      }
    }
  }
  await Promise.all(Array.from({ length: cfg.concurrency }, worker));
  out({ ready: { count: clients.length - failed, failed, start, end: now() } });
}

listen(lb, {
  // The clients on <url> now are the ones the storm must bring back.
  mark(at, url) {
    // The socket a client is on: realtime.js keeps it as _ws (a benchmark may peek).
    const expected = clients.filter((c) => c.client._ws?.url === url).length;
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
    for (const c of clients) c.client.close();
    process.exit(0);
  },
});
main();
