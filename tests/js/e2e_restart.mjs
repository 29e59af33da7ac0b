// Server A is killed and restarted on the same port while server B (same Redis) keeps
// publishing: the client reconnects, recovers what it missed exactly once and in
// order, and flushes what it queued while offline.
import assert from "node:assert/strict";

import { RealtimeClient } from "../../realtime/static/realtime/realtime.js";
import { config, main, nextEvent, recorder, step, until } from "./harness.mjs";

const { a, b } = config;
const group = "public.news";

main(async () => {
  const client = new RealtimeClient(`${a.url}/ws/`, {
    reconnectDelay: 100,
    maxReconnectDelay: 400,
    connectTimeout: 3000,
  });
  const publisher = new RealtimeClient(`${b.url}/ws/`);
  const states = [];
  client.on("state", ({ state }) => states.push(state));
  await Promise.all([client.connect(), publisher.connect()]);

  const got = recorder(client, group);
  const ack = await got.sub.ready;
  assert.equal(ack.seq, 0);
  const say = (n) => publisher.request("test.say", { group, text: `n${n}`, n });
  await say(1);
  await say(2);
  await until(() => got.events.length === 2, { what: "live events 1, 2" });

  const down = nextEvent(client, "reconnecting");
  await step("kill-a");
  const detail = await down;
  assert.equal(detail.willRetry, true);

  // Offline: queued in order, delivered after the reconnect.
  assert.equal(client.send("test.say", { group, text: "queued", n: 100 }), false);
  const queuedReply = client.request("test.echo", { text: "queued request" }, { timeout: 30000 });
  assert.equal(client.queued, 2);
  for (const n of [3, 4, 5]) await say(n);

  await step("restart-a");
  await until(() => got.events.length === 6, { timeout: 30000, what: "recovered + queued events" });
  assert.deepEqual(await queuedReply, { text: "queued request", user: "" });
  assert.equal(client.queued, 0);
  await say(6);
  await until(() => got.events.length === 7, { what: "live event after recovery" });

  // Every event exactly once, in seq order; the missed 3..5 came from history before
  // the queued frame (flushed after the resubscribe) was published.
  assert.deepEqual(got.ns(), [1, 2, 3, 4, 5, 100, 6]);
  assert.deepEqual(got.seqs(), [1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(states.slice(0, 2), ["open", "reconnecting"]);
  assert.equal(states.at(-1), "open");
  client.close();
  publisher.close();
});
