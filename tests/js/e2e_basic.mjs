// Connect (rt.auth token and ticket), request/ack/error, subscribe + live events,
// presence, rt.hello, a refused subscription: against one real daphne.
import assert from "node:assert/strict";

import { RealtimeClient } from "../../realtime/static/realtime/realtime.js";
import { config, main, nextEvent, recorder, until } from "./harness.mjs";

const { url, http, users } = config;

main(async () => {
  // First-message auth: the handshake carries nothing, rt.auth follows the welcome.
  const alice = new RealtimeClient(`${url}/ws/auth/`, { token: users.alice.token });
  const welcome = await alice.connect();
  assert.equal(welcome.protocol, 1);
  assert.equal(welcome.auth_required, true);
  assert.equal(alice.state, "open");
  assert.equal(alice.user.username, "alice");

  // Ticket: POSTed for with a DRF token, used once in the handshake query.
  const bob = new RealtimeClient(`${url}/ws/auth/`, {
    ticketUrl: `${http}/realtime/ticket/`,
    ticketHeaders: { Authorization: `Token ${users.bob.token}` },
    events: { "test.say": 1 },
  });
  const bobWelcome = await bob.connect();
  assert.equal(bobWelcome.user.username, "bob");
  assert.equal(bobWelcome.auth_required, false);
  await until(() => bob.eventVersions !== null, { what: "rt.hello ack" });
  assert.deepEqual(bob.eventVersions, { "test.say": 1 });

  // request: ack data, rt.error with code and field errors, server_error, unknown_type.
  assert.deepEqual(await alice.request("test.echo", { text: "hi" }), { text: "hi", user: "alice" });
  await assert.rejects(alice.request("test.echo", {}), (error) => {
    assert.equal(error.name, "RealtimeError");
    assert.equal(error.code, "invalid");
    assert.ok(error.errors.text, JSON.stringify(error.errors));
    return true;
  });
  await assert.rejects(alice.request("test.boom", {}), (error) => {
    assert.equal(error.code, "server_error");
    assert.ok(!error.message.includes("passwd"));
    return true;
  });
  await assert.rejects(alice.request("no.such.type", {}), { code: "unknown_type" });
  await assert.rejects(bob.request("test.secret", {}), { code: "forbidden" });
  assert.deepEqual(await alice.request("test.secret", {}), { ok: true });

  // Subscribe and live events, in order, to every subscriber.
  const presence = [];
  alice.on("presence", (p) => presence.push([p.type, p.group, p.member.username]));
  const aliceRoom = recorder(alice, "room.1");
  const ack = await aliceRoom.sub.ready;
  assert.equal(ack.group, "room.1");
  assert.equal(ack.recovered, true);
  const bobRoom = recorder(bob, "room.1");
  await bobRoom.sub.ready;
  await until(() => presence.some(([type, , name]) => type === "join" && name === "bob"), {
    what: "bob's presence.join",
  });
  const state = await alice.presence("room.1");
  assert.deepEqual(state.members.map((m) => m.username).sort(), ["alice", "bob"]);

  for (let n = 1; n <= 5; n++) {
    const reply = await bob.request("test.say", { group: "room.1", text: `m${n}`, n });
    assert.equal(reply.seq, ack.seq + n);
  }
  await until(() => aliceRoom.events.length === 5 && bobRoom.events.length === 5, { what: "5 events each" });
  assert.deepEqual(aliceRoom.ns(), [1, 2, 3, 4, 5]);
  assert.deepEqual(bobRoom.seqs(), aliceRoom.seqs());
  assert.equal(aliceRoom.sub.seq, ack.seq + 5);

  // send(): fire and forget, still delivered.
  assert.equal(alice.send("test.say", { group: "room.1", text: "fire", n: 6 }), true);
  await until(() => bobRoom.events.length === 6, { what: "sent event" });

  // A refused subscription rejects `ready` and ends.
  const secret = bob.subscribe("room.secret", () => {});
  await assert.rejects(secret.ready, { code: "forbidden" });
  assert.equal(secret.active, false);

  // Unsubscribe: no more events for that subscription; presence.leave to the others.
  bobRoom.sub.unsubscribe();
  await until(() => presence.some(([type, , name]) => type === "leave" && name === "bob"), {
    what: "bob's presence.leave",
  });
  await alice.request("test.say", { group: "room.1", text: "after", n: 7 });
  await until(() => aliceRoom.events.length === 7, { what: "event 7" });
  // bob's own echo of a request proves his socket is still live; room.1 stays silent.
  await bob.request("test.echo", { text: "still here" });
  assert.equal(bobRoom.events.length, 6);

  const closed = nextEvent(alice, "closed");
  alice.close();
  assert.equal((await closed).willRetry, false);
  bob.close();
});
