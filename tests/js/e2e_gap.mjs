// A live gap: an event reaches history but not the live path (pytest writes it to
// Redis directly). The next live event shows the server the gap; it writes the
// missing event from history first, so the client gets 1, 2, 3 in order, exactly
// once, without a gap of its own to fill.
import assert from "node:assert/strict";

import { RealtimeClient } from "../../realtime/static/realtime/realtime.js";
import { config, main, recorder, step, until } from "./harness.mjs";

const group = "public.gap";

main(async () => {
  const client = new RealtimeClient(`${config.url}/ws/`);
  const gaps = [];
  const failures = [];
  client.on("gap", (gap) => gaps.push(gap));
  client.on("recovery-failed", (failure) => failures.push(failure));
  await client.connect();
  const got = recorder(client, group);
  await got.sub.ready;

  await client.request("test.say", { group, text: "one", n: 1 });
  await until(() => got.events.length === 1, { what: "event 1" });
  const { seq } = await step("lose-one", { group });
  assert.equal(seq, 2);
  await client.request("test.say", { group, text: "three", n: 3 });
  await until(() => got.events.length === 3, { what: "gap filled" });
  assert.deepEqual(got.seqs(), [1, 2, 3]);
  assert.deepEqual(got.ns(), [1, 2, 3]);
  assert.deepEqual(gaps, []);

  await client.request("test.say", { group, text: "four", n: 4 });
  await until(() => got.events.length === 4, { what: "event 4" });
  assert.deepEqual(got.seqs(), [1, 2, 3, 4]);
  assert.deepEqual(failures, []);
  client.close();
});
