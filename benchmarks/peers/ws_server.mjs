// Node `ws` peer for fanout.py: the group fan-out a Node developer would write by hand.
//
// Usage: node ws_server.mjs PORT REDIS_URL
//
// One process of several: a client sends {"type":"subscribe","group":g} and gets
// {"type":"ack","group":g} once this process listens to g's Redis channel (the group's
// name), so nothing published after the ack is missed. Whatever is published there is
// sent as-is, the same string, to every member socket of this process. No history,
// no auth, no heartbeat: the least a working multi-process fan-out needs.
import { createClient } from "redis";
import { WebSocketServer } from "ws";

const [port, redisUrl] = process.argv.slice(2);
const subscriber = createClient({ url: redisUrl });
subscriber.on("error", (err) => process.stderr.write(`redis: ${err.message}\n`));
await subscriber.connect();

const groups = new Map(); // group -> Set of sockets
const listening = new Map(); // group -> Promise of the Redis SUBSCRIBE

function deliver(message, group) {
  const members = groups.get(group);
  if (members) for (const ws of members) ws.send(message);
}

async function join(ws, group) {
  let members = groups.get(group);
  if (!members) groups.set(group, (members = new Set()));
  members.add(ws);
  ws.groups.add(group);
  if (!listening.has(group)) listening.set(group, subscriber.subscribe(group, deliver));
  await listening.get(group);
}

function leave(ws) {
  for (const group of ws.groups) {
    const members = groups.get(group);
    members.delete(ws);
    if (members.size === 0) {
      groups.delete(group);
      listening.delete(group);
      subscriber.unsubscribe(group).catch(() => {});
    }
  }
}

const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(port), perMessageDeflate: false });
wss.on("connection", (ws) => {
  ws.groups = new Set();
  ws.on("message", async (raw) => {
    let frame;
    try {
      frame = JSON.parse(raw.toString());
    } catch {
      return ws.close(1003, "not JSON");
    }
    if (frame.type === "subscribe" && typeof frame.group === "string") {
      try {
        await join(ws, frame.group);
      } catch {
        return ws.close(1011, "redis unavailable");
      }
      ws.send(JSON.stringify({ type: "ack", group: frame.group }));
    }
  });
  ws.on("close", () => leave(ws));
  ws.on("error", () => {});
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    wss.close();
    for (const ws of wss.clients) ws.terminate();
    subscriber.destroy();
    process.exit(0);
  });
}
