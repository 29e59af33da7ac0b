// Heartbeat: pongs keep the connection alive past the server's HEARTBEAT_TIMEOUT; a
// frozen server (SIGSTOP: TCP stays up, nothing arrives) is detected after the
// welcome's heartbeat + grace, and the client reconnects when the server thaws.
import assert from "node:assert/strict";

import { RealtimeClient } from "../../realtime/static/realtime/realtime.js";
import { config, main, nextEvent, recorder, step, until } from "./harness.mjs";

const group = "public.hb";

main(async () => {
  const client = new RealtimeClient(`${config.url}/ws/`, {
    heartbeatGrace: 2000,
    connectTimeout: 2000,
    reconnectDelay: 100,
    maxReconnectDelay: 500,
  });
  let pings = 0;
  let lastFrameAt = 0;
  client.on("message", (frame) => {
    lastFrameAt = Date.now();
    if (frame.type === "rt.ping") pings += 1;
  });
  const welcome = await client.connect();
  assert.equal(welcome.heartbeat, 1);
  const got = recorder(client, group);
  await got.sub.ready;

  // The server's HEARTBEAT_TIMEOUT is 3 s: only our pongs keep the socket open.
  await until(() => pings >= 5, { timeout: 15000, what: "5 server pings" });
  assert.equal(client.state, "open");
  assert.equal(client.attempt, 0);

  const silent = nextEvent(client, "reconnecting", { timeout: 15000 });
  await step("freeze");
  const detail = await silent;
  const silence = Date.now() - lastFrameAt;
  assert.equal(detail.code, 4408);
  // Dropped after heartbeat (1 s) + grace (2 s) of silence, not before (timers may
  // fire a little early or late).
  assert.ok(silence >= 2900 && silence < 8000, `dropped after ${silence} ms of silence`);

  const reopened = nextEvent(client, "open", { timeout: 20000 });
  await step("thaw");
  await reopened;
  await client.request("test.say", { group, text: "back", n: 1 });
  await until(() => got.events.length === 1, { what: "event after thaw" });
  assert.deepEqual(got.ns(), [1]);
  client.close();
});
