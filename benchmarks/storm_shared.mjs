// What the two storm load clients share (storm_client.mjs for realtime.js,
// storm_socketio_client.mjs for socket.io-client): the clock, the JSON lines on stdout,
// the balancer and the commands from storm.py on stdin.
import { performance } from "node:perf_hooks";
import readline from "node:readline";

export const now = () => performance.timeOrigin + performance.now();
export const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// The balancer's view of the servers, as a load balancer's health check would have it:
// a client whose server is down connects to the next server that is up (mode "other");
// mode "same" always reconnects to its own server, up or not.
export function balancer(cfg) {
  const down = new Set();
  let turn = 0;
  return {
    down,
    route(url) {
      if (cfg.mode === "same" || !down.has(url)) return url;
      const up = cfg.urls.filter((u) => !down.has(u));
      return up.length ? up[turn++ % up.length] : url;
    },
  };
}

// A storm's record: when the clients' attempts started, closes arrived and clients
// came back, in ms since the SIGTERM.
export function newStorm(at, url, expected) {
  return {
    at: Number(at),
    url,
    expected,
    attempts: [],
    retries: [],
    closesMs: [],
    openedMs: [],
    subscribeRetries: {},
    gaps: 0,
    hit: 0,
    back: 0,
    recoveredMs: [],
    recoveryFailed: 0,
  };
}

// storm.py's commands, one per line: "down <url>", "up <url>" (handled here), then
// "mark <t> <url>", "final <json>", "report" and "exit" passed to the handlers.
export function listen(lb, handlers) {
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    const [command, ...rest] = line.split(" ");
    if (command === "down") lb.down.add(rest.join(" "));
    else if (command === "up") lb.down.delete(rest.join(" "));
    else if (command === "mark") handlers.mark(Number(rest[0]), rest[1]);
    else if (command === "final") handlers.final(JSON.parse(rest.join(" ")));
    else if (command === "report") handlers.report();
    else if (command === "exit") handlers.exit();
  });
  process.stdin.on("end", () => process.exit(0));
}

// What each storm reports, the same for every client flavour.
export function stormStats(storms) {
  return storms.map(({ expected, hit, back, recoveredMs, attempts, retries, closesMs, openedMs, subscribeRetries, gaps, recoveryFailed }) => ({
    expected,
    openedMs,
    subscribeRetries,
    gaps,
    closesMs,
    hit,
    back,
    recoveredMs,
    attempts,
    retries,
    recoveryFailed,
  }));
}
