// Unit tests of realtime.js against an in-process fake socket: `node --test`.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { RealtimeClient, RealtimeError, State, backoffDelay } from "../../realtime/static/realtime/realtime.js";
import { fakeWebSocket, nextEvent, until } from "./fake_socket.mjs";

// Clients of the current test: closed after it, so a failed assertion cannot leave a
// client reconnecting (and the runner waiting) forever.
const live = [];
afterEach(() => {
  for (const client of live.splice(0)) client.destroy();
});

function setup(options = {}) {
  const fake = fakeWebSocket();
  const client = new RealtimeClient("ws://test/ws/", {
    WebSocket: fake.WebSocket,
    reconnectDelay: 10,
    maxReconnectDelay: 40,
    random: () => 0.5,
    ...options,
  });
  live.push(client);
  return { fake, client };
}

async function opened(options) {
  const { fake, client } = setup(options);
  const socket = await fake.socket(0);
  const open = nextEvent(client, "open");
  socket.welcome();
  await open;
  return { fake, client, socket };
}

test("backoffDelay: full jitter under an exponential ceiling capped at the max", () => {
  const opts = (r) => ({ baseDelay: 100, maxDelay: 1000, random: () => r });
  assert.equal(backoffDelay(0, opts(0)), 0);
  assert.equal(backoffDelay(0, opts(0.999)), 99);
  assert.equal(backoffDelay(1, opts(0.999)), 199);
  assert.equal(backoffDelay(3, opts(0.5)), 400);
  assert.equal(backoffDelay(4, opts(0.999)), 999); // 1600 capped at 1000
  assert.equal(backoffDelay(60, opts(0.5)), 500);
  for (let attempt = 0; attempt < 12; attempt++) {
    for (let i = 0; i < 50; i++) {
      const delay = backoffDelay(attempt, { baseDelay: 100, maxDelay: 1000 });
      assert.ok(delay >= 0 && delay < Math.min(1000, 100 * 2 ** attempt), `${attempt}: ${delay}`);
    }
  }
});

test("state machine: connecting, open, reconnecting, open again, closed", async () => {
  const { fake, client } = setup();
  const states = [];
  client.on("state", ({ state }) => states.push(state));
  assert.equal(client.state, State.CONNECTING);
  const first = await fake.socket(0);
  first.welcome();
  assert.equal(client.state, State.OPEN);
  first.serverClose(1006);
  assert.equal(client.state, State.RECONNECTING);
  const second = await fake.socket(1);
  assert.equal(client.state, State.CONNECTING);
  second.welcome();
  assert.equal(client.state, State.OPEN);
  client.close();
  assert.equal(client.state, State.CLOSED);
  assert.equal(second.closedByClient, 1000);
  assert.deepEqual(states, ["open", "reconnecting", "connecting", "open", "closed"]);
  await new Promise((r) => setTimeout(r, 60)); // longer than any backoff delay here
  assert.equal(fake.sockets.length, 2);
});

test("backoff grows per failed attempt and resets after a stable connection", async () => {
  const { fake, client } = setup({ reconnectDelay: 8, maxReconnectDelay: 1000, random: () => 0.999, stableAfter: 30 });
  const delays = [];
  client.on("reconnecting", ({ delay }) => delays.push(delay));
  for (let i = 0; i < 3; i++) (await fake.socket(i)).serverClose(1006);
  await fake.socket(3);
  assert.deepEqual(delays, [7, 15, 31]);
  const socket = fake.sockets[3];
  socket.welcome();
  await until(() => client.attempt === 0, { what: "attempt reset" });
  socket.serverClose(1006);
  assert.equal(delays.at(-1), 7);
  client.close();
});

test("attempt cap: gives up after maxReconnectAttempts", async () => {
  const { fake, client } = setup({ maxReconnectAttempts: 2 });
  const done = client.connect();
  (await fake.socket(0)).serverClose(1006);
  (await fake.socket(1)).serverClose(1006);
  const closed = nextEvent(client, "closed");
  (await fake.socket(2)).serverClose(1006);
  assert.equal((await closed).willRetry, false);
  await assert.rejects(done, RealtimeError);
  assert.equal(client.state, State.CLOSED);
});

test("4401 and 4403 are final without a way to refresh credentials", async () => {
  for (const code of [4401, 4403]) {
    const { fake, client } = setup({ token: "bad" });
    const socket = await fake.socket(0);
    socket.welcome({ auth_required: true });
    await socket.waitFrame("rt.auth");
    const closed = nextEvent(client, "closed");
    socket.push({ type: "rt.error", data: { code: "not_authenticated", message: "bad token" } });
    socket.serverClose(code);
    const detail = await closed;
    assert.equal(detail.code, code);
    assert.equal(detail.willRetry, false);
    assert.equal(detail.error.code, "not_authenticated");
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(fake.sockets.length, 1);
  }
});

test("4401 with a ticket source: one prompt retry with a fresh ticket, then stop", async () => {
  let tickets = 0;
  const { fake, client } = setup({ getTicket: async () => `t${++tickets}`, reconnectDelay: 1000 });
  const first = await fake.socket(0);
  assert.equal(first.url, "ws://test/ws/?ticket=t1");
  first.serverClose(4401);
  const second = await fake.socket(1, 500); // prompt despite the 1 s backoff base
  assert.equal(second.url, "ws://test/ws/?ticket=t2");
  const closed = nextEvent(client, "closed");
  second.serverClose(4401);
  assert.equal((await closed).willRetry, false);
  assert.equal(fake.sockets.length, 2);
});

test("4401 after a stable session is retried again with a fresh ticket", async () => {
  let tickets = 0;
  const { fake, client } = setup({ getTicket: () => `t${++tickets}`, stableAfter: 20 });
  (await fake.socket(0)).welcome();
  fake.sockets[0].serverClose(4401);
  const again = await fake.socket(1);
  again.welcome();
  await until(() => client._authFailures === 0, { what: "stable connection" });
  again.serverClose(4401);
  (await fake.socket(2)).welcome();
  assert.equal(client.state, State.OPEN);
  client.close();
});

test("4401 right after a welcome twice in a row is final even with a ticket source", async () => {
  let tickets = 0;
  const { fake, client } = setup({ getTicket: () => `t${++tickets}` });
  (await fake.socket(0)).welcome();
  fake.sockets[0].serverClose(4401);
  const again = await fake.socket(1);
  again.welcome();
  const closed = nextEvent(client, "closed");
  again.serverClose(4401);
  assert.equal((await closed).willRetry, false);
  assert.equal(fake.sockets.length, 2);
});

test("4403 is final even with a ticket source", async () => {
  const { fake, client } = setup({ getTicket: () => "t" });
  const socket = await fake.socket(0);
  socket.welcome();
  const closed = nextEvent(client, "closed");
  socket.serverClose(4403);
  assert.equal((await closed).willRetry, false);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(fake.sockets.length, 1);
});

test("4503 and 4507 reconnect promptly", async () => {
  for (const code of [4503, 4507]) {
    const { fake, client } = setup({ reconnectDelay: 60000, random: () => 0.001 });
    const socket = await fake.socket(0);
    socket.welcome();
    // Push the attempt counter up first: a prompt retry ignores it.
    client.attempt = 10;
    const reconnecting = nextEvent(client, "reconnecting");
    socket.serverClose(code);
    assert.ok((await reconnecting).delay <= 60, `delay for ${code}`);
    await fake.socket(1, 1000);
    client.close();
  }
});

test("ticketUrl: POST with CSRF cookie header before every connect", async () => {
  const calls = [];
  globalThis.document = { cookie: "other=1; csrftoken=abc%3D" };
  try {
    let n = 0;
    const fetch = async (url, init) => {
      calls.push({ url, init });
      return { ok: true, status: 200, json: async () => ({ ticket: `tk${++n}`, expires_in: 30 }) };
    };
    const { fake, client } = setup({ ticketUrl: "/realtime/ticket/", fetch, ticketHeaders: { Authorization: "Token x" } });
    const first = await fake.socket(0);
    assert.equal(first.url, "ws://test/ws/?ticket=tk1");
    first.welcome();
    first.serverClose(1006);
    assert.equal((await fake.socket(1)).url, "ws://test/ws/?ticket=tk2");
    assert.equal(calls.length, 2);
    assert.equal(calls[0].url, "/realtime/ticket/");
    assert.equal(calls[0].init.method, "POST");
    assert.equal(calls[0].init.credentials, "same-origin");
    assert.equal(calls[0].init.headers["X-CSRFToken"], "abc=");
    assert.equal(calls[0].init.headers.Authorization, "Token x");
    client.close();
  } finally {
    delete globalThis.document;
  }
});

test("ticket endpoint refusal (403) is final; a 500 is retried", async () => {
  let status = 500;
  const fetch = async () => ({ ok: status < 400, status, json: async () => ({ ticket: "t" }) });
  const { fake, client } = setup({ ticketUrl: "/t/", fetch });
  await nextEvent(client, "reconnecting");
  status = 403;
  const closed = await nextEvent(client, "closed");
  assert.equal(closed.willRetry, false);
  assert.equal(closed.error.code, "not_authenticated");
  assert.equal(fake.sockets.length, 0);
});

test("answers rt.ping with rt.pong, echoing the id", async () => {
  const { socket, client } = await opened();
  socket.push({ type: "rt.ping" });
  socket.push({ type: "rt.ping", id: "p1" });
  const pongs = socket.sent.filter((f) => f.type === "rt.pong");
  assert.deepEqual(pongs, [{ type: "rt.pong" }, { type: "rt.pong", id: "p1" }]);
  client.close();
});

test("heartbeat: a silent server is dropped after heartbeat + grace and the client reconnects", async () => {
  const { fake, client } = setup({ heartbeatGrace: 40 });
  const socket = await fake.socket(0);
  socket.welcome({ heartbeat: 0.02 });
  // Frames keep the connection alive.
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 30));
    socket.push({ type: "rt.ping" });
  }
  assert.equal(fake.sockets.length, 1);
  const reconnecting = await nextEvent(client, "reconnecting", { timeout: 1000 });
  assert.equal(reconnecting.code, 4408);
  assert.equal(socket.closedByClient, 1000);
  await fake.socket(1);
  client.close();
});

test("connect timeout: no welcome in time means a retry", async () => {
  const { fake, client } = setup({ connectTimeout: 30 });
  await fake.socket(0);
  assert.equal((await nextEvent(client, "reconnecting")).code, 4008);
  await fake.socket(1);
  client.close();
});

test("connect timeout is jittered: clients that started together do not give up together", async () => {
  // A restarted server's clients all start an attempt within the prompt-reconnect
  // window; with one fixed timeout, those it cannot answer in time would all retry in
  // one wave. Each waits connectTimeout plus up to half of it again, at random.
  const early = setup({ connectTimeout: 40, random: () => 0 });
  const late = setup({ connectTimeout: 40, random: () => 0.99 }); // 40 + 19 ms
  const t0 = performance.now();
  const [earlyGaveUp, lateGaveUp] = [early, late].map(({ client }) =>
    nextEvent(client, "reconnecting").then((detail) => ({ detail, ms: performance.now() - t0 })),
  );
  const first = await earlyGaveUp;
  assert.equal(first.detail.code, 4008);
  assert.equal(late.client.state, State.CONNECTING); // still waiting at 40 ms
  const second = await lateGaveUp;
  assert.equal(second.detail.code, 4008);
  assert.ok(second.ms >= 59 - 1, `gave up after ${second.ms} ms, before its 59 ms`);
});

test("request: resolves with ack data, rejects with rt.error code and errors, times out", async () => {
  const { socket, client } = await opened();
  const ok = client.request("test.echo", { text: "hi" });
  const frame = await socket.waitFrame("test.echo");
  assert.deepEqual(frame.data, { text: "hi" });
  socket.push({ type: "rt.ack", id: frame.id, data: { text: "hi" } });
  assert.deepEqual(await ok, { text: "hi" });

  const bad = client.request("test.echo", {});
  const badFrame = await socket.waitFrame((f) => f.type === "test.echo" && f.id !== frame.id);
  socket.push({
    type: "rt.error",
    id: badFrame.id,
    data: { code: "invalid", message: "invalid data", errors: { text: ["required"] } },
  });
  await assert.rejects(bad, (error) => {
    assert.ok(error instanceof RealtimeError);
    assert.equal(error.code, "invalid");
    assert.deepEqual(error.errors, { text: ["required"] });
    return true;
  });

  await assert.rejects(client.request("test.echo", { text: "x" }, { timeout: 20 }), { code: "timeout" });
  client.close();
});

test("a request in flight when the connection drops rejects with connection_lost", async () => {
  const { socket, client } = await opened();
  const pending = client.request("test.echo", { text: "x" });
  await socket.waitFrame("test.echo");
  socket.serverClose(1006);
  await assert.rejects(pending, { code: "connection_lost" });
  client.close();
});

test("offline queue: sends and requests made while disconnected flush in order after the welcome", async () => {
  const { fake, client } = setup({ autoConnect: false });
  assert.equal(client.send("a", { n: 1 }), false);
  const reply = client.request("b", { n: 2 });
  client.send("c", { n: 3 });
  assert.equal(client.queued, 3);
  client.connect();
  const socket = await fake.socket(0);
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(socket.sent, []); // nothing before the welcome
  socket.welcome();
  assert.deepEqual(
    socket.sent.map((f) => f.type),
    ["a", "b", "c"],
  );
  socket.push({ type: "rt.ack", id: socket.sent[1].id, data: { ok: 1 } });
  assert.deepEqual(await reply, { ok: 1 });
  assert.equal(client.queued, 0);
  client.close();
});

test("offline queue waits for the rt.auth ack when a token is used", async () => {
  const { fake, client } = setup({ token: "tok" });
  client.send("app.thing", {});
  const socket = await fake.socket(0);
  socket.welcome({ auth_required: true });
  const auth = await socket.waitFrame("rt.auth");
  assert.deepEqual(auth.data, { token: "tok" });
  assert.deepEqual(
    socket.sent.map((f) => f.type),
    ["rt.auth"],
  );
  assert.equal(client.state, State.CONNECTING);
  const open = nextEvent(client, "open");
  socket.push({ type: "rt.ack", id: auth.id, data: { user: { id: 1, username: "alice" } } });
  await open;
  assert.deepEqual(client.user, { id: 1, username: "alice" });
  assert.deepEqual(
    socket.sent.map((f) => f.type),
    ["rt.auth", "app.thing"],
  );
  client.close();
});

test("no rt.auth when the handshake already found the user", async () => {
  const { fake, client } = setup({ token: "tok" });
  const socket = await fake.socket(0);
  socket.welcome({ user: { id: 1, username: "alice" } });
  assert.equal(client.state, State.OPEN);
  assert.equal(
    socket.sent.find((f) => f.type === "rt.auth"),
    undefined,
  );
  client.close();
});

test("offline queue overflow: drop-oldest (default) rejects the dropped request", async () => {
  const { client } = setup({ autoConnect: false, queueSize: 2 });
  const overflowed = [];
  client.on("queue-overflow", (frame) => overflowed.push(frame.type));
  const first = client.request("one");
  client.send("two");
  client.send("three");
  await assert.rejects(first, { code: "queue_overflow" });
  assert.deepEqual(overflowed, ["one"]);
  assert.equal(client.queued, 2);
});

test("offline queue overflow: reject policy throws on send and rejects a request", async () => {
  const { client } = setup({ autoConnect: false, queueSize: 1, queueOverflow: "reject" });
  client.send("one");
  assert.throws(() => client.send("two"), { code: "queue_overflow" });
  await assert.rejects(client.request("three"), { code: "queue_overflow" });
  assert.equal(client.queued, 1);
});

test("rt.hello declares event versions after the welcome", async () => {
  const { fake, client } = setup({ events: { "chat.message": 1 } });
  const socket = await fake.socket(0);
  socket.welcome();
  const hello = await socket.ack("rt.hello", { protocol: 1, events: { "chat.message": 1 } });
  assert.deepEqual(hello.data, { events: { "chat.message": 1 } });
  assert.equal(socket.sent[0].type, "rt.hello");
  await until(() => client.eventVersions !== null, { what: "hello ack" });
  assert.deepEqual(client.eventVersions, { "chat.message": 1 });
  client.close();
});

test("subscribe: ordered delivery, duplicates dropped, gap filled by resubscribing with since", async () => {
  const { socket, client } = await opened();
  const got = [];
  const gaps = [];
  client.on("gap", (g) => gaps.push(g));
  const sub = client.subscribe("room.1", (event) => got.push(event.seq));
  const subscribe = await socket.ack("rt.subscribe", { group: "room.1", seq: 3, epoch: "e1", recovered: true });
  assert.deepEqual(subscribe.data, { group: "room.1" });
  assert.deepEqual(await sub.ready, { group: "room.1", seq: 3, epoch: "e1", recovered: true });
  const event = (seq) => ({ type: "chat.message", group: "room.1", seq, data: { seq } });
  socket.push(event(4));
  socket.push(event(4)); // duplicate
  socket.push(event(3)); // older than the ack
  socket.push(event(6)); // gap: 5 is missing
  socket.push(event(7));
  assert.deepEqual(got, [4]);
  assert.deepEqual(gaps, [{ group: "room.1", seq: 4 }]);
  const resub = await socket.ack(
    "rt.subscribe",
    { group: "room.1", seq: 7, epoch: "e1", recovered: true },
    { match: (f) => f.data.since === 4 },
  );
  assert.deepEqual(resub.data, { group: "room.1", since: 4, epoch: "e1" });
  // The replay follows the ack: 5 fills the gap, 6 and 7 were buffered (and replayed).
  socket.push(event(5));
  socket.push(event(6));
  socket.push(event(7));
  socket.push(event(8));
  assert.deepEqual(got, [4, 5, 6, 7, 8]);
  assert.equal(sub.seq, 8);
  client.close();
});

test("a late event fills its own gap without waiting for the replay", async () => {
  const { socket, client } = await opened();
  const got = [];
  client.subscribe("g", (event) => got.push(event.seq));
  await socket.ack("rt.subscribe", { group: "g", seq: 0, epoch: "e", recovered: true });
  socket.push({ type: "x", group: "g", seq: 2 });
  socket.push({ type: "x", group: "g", seq: 1 });
  assert.deepEqual(got, [1, 2]);
  client.close();
});

test("reconnect resubscribes with since and epoch; missed events arrive once", async () => {
  const { fake, socket, client } = await opened();
  const got = [];
  client.subscribe("room.1", (event) => got.push(event.seq));
  await socket.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: "e1", recovered: true });
  socket.push({ type: "m", group: "room.1", seq: 1 });
  socket.serverClose(1006);
  const again = await fake.socket(1);
  again.welcome();
  const resub = await again.ack("rt.subscribe", { group: "room.1", seq: 3, epoch: "e1", recovered: true });
  assert.deepEqual(resub.data, { group: "room.1", since: 1, epoch: "e1" });
  for (const seq of [2, 3, 3, 4]) again.push({ type: "m", group: "room.1", seq });
  assert.deepEqual(got, [1, 2, 3, 4]);
  client.close();
});

test("recovered: false emits recovery-failed and continues from the ack's seq", async () => {
  const { fake, socket, client } = await opened();
  const got = [];
  const failures = [];
  client.on("recovery-failed", (f) => failures.push(["client", f]));
  client.subscribe("room.1", (event) => got.push(event.seq), {
    onRecoveryFailed: (f) => failures.push(["sub", f]),
  });
  await socket.ack("rt.subscribe", { group: "room.1", seq: 5, epoch: "e1", recovered: true });
  assert.deepEqual(failures, []); // a first subscribe never "fails" recovery
  socket.serverClose(1006);
  const again = await fake.socket(1);
  again.welcome();
  await again.ack("rt.subscribe", { group: "room.1", seq: 50, epoch: "e2", recovered: false });
  const expected = { group: "room.1", since: 5, seq: 50, epoch: "e2" };
  assert.deepEqual(failures, [
    ["client", expected],
    ["sub", expected],
  ]);
  again.push({ type: "m", group: "room.1", seq: 50 });
  again.push({ type: "m", group: "room.1", seq: 51 });
  assert.deepEqual(got, [51]);
  assert.equal(client.positions()["room.1"].epoch, "e2");
  client.close();
});

test("subscribe with a stored since/epoch resumes from it", async () => {
  const { socket, client } = await opened();
  client.subscribe("g", () => {}, { since: 10, epoch: "e" });
  const frame = await socket.waitFrame("rt.subscribe");
  assert.deepEqual(frame.data, { group: "g", since: 10, epoch: "e" });
  client.close();
});

test("two handlers share one server subscription; the last unsubscribe leaves the group", async () => {
  const { socket, client } = await opened();
  const a = [];
  const b = [];
  const subA = client.subscribe("g", (e) => a.push(e.seq));
  const subB = client.subscribe("g", (e) => b.push(e.seq));
  await socket.ack("rt.subscribe", { group: "g", seq: 0, epoch: "e", recovered: true });
  assert.equal(socket.sent.filter((f) => f.type === "rt.subscribe").length, 1);
  socket.push({ type: "m", group: "g", seq: 1 });
  subA.unsubscribe();
  socket.push({ type: "m", group: "g", seq: 2 });
  assert.deepEqual(a, [1]);
  assert.deepEqual(b, [1, 2]);
  assert.equal(
    socket.sent.find((f) => f.type === "rt.unsubscribe"),
    undefined,
  );
  subB.unsubscribe();
  const unsub = await socket.waitFrame("rt.unsubscribe");
  assert.deepEqual(unsub.data, { group: "g" });
  client.close();
});

test("a refused subscribe rejects ready and reports subscription-error", async () => {
  const { socket, client } = await opened();
  const errors = [];
  const sub = client.subscribe("room.secret", () => {}, { onError: (e) => errors.push(e.code) });
  const frame = await socket.waitFrame("rt.subscribe");
  const reported = nextEvent(client, "subscription-error");
  socket.push({ type: "rt.error", id: frame.id, data: { code: "forbidden", message: "no" } });
  await assert.rejects(sub.ready, { code: "forbidden" });
  assert.equal((await reported).group, "room.secret");
  assert.deepEqual(errors, ["forbidden"]);
  assert.equal(sub.active, false);
  assert.deepEqual(client.positions(), {});
  client.close();
});

test("presence: request helper, join/leave frames to client and subscription listeners", async () => {
  const { socket, client } = await opened();
  const seen = [];
  client.on("presence", (p) => seen.push(["client", p.type, p.member.username]));
  const sub = client.subscribe("room.1", () => {}, {
    onPresence: (p) => seen.push(["sub", p.type, p.group]),
  });
  await socket.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: null, recovered: true });
  const state = sub.presence();
  const members = { group: "room.1", members: [{ id: 1, username: "alice" }], anonymous: 0, connections: 1 };
  const frame = await socket.ack("rt.presence", members);
  assert.deepEqual(frame.data, { group: "room.1" });
  assert.deepEqual(await state, members);
  socket.push({ type: "rt.presence.join", group: "room.1", data: { id: 2, username: "bob" } });
  socket.push({ type: "rt.presence.leave", group: "room.1", data: { id: 2, username: "bob" } });
  assert.deepEqual(seen, [
    ["client", "join", "bob"],
    ["sub", "join", "room.1"],
    ["client", "leave", "bob"],
    ["sub", "leave", "room.1"],
  ]);
  client.close();
});

test("typing: the configured event type, throttled per group, never queued", async () => {
  const { client: offline } = setup({ autoConnect: false });
  assert.equal(offline.typing("room.1"), false);
  assert.equal(offline.queued, 0);
  const { socket, client } = await opened({ typingEvent: "chat.typing", typingInterval: 50 });
  assert.equal(client.typing("room.1", { draft: true }), true);
  assert.equal(client.typing("room.1"), false);
  assert.equal(client.typing("room.2"), true);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(client.typing("room.1"), true);
  const typing = socket.sent
    .filter((f) => f.type === "chat.typing")
    .map((f) => [f.group, f.data]);
  assert.deepEqual(typing, [["room.1", { draft: true }], ["room.2", {}], ["room.1", {}]]);
  client.close();
});

test("online and visibility events skip the backoff wait", async () => {
  const win = new EventTarget();
  win.document = new EventTarget();
  win.document.visibilityState = "visible";
  const { fake, client } = setup({ window: win, reconnectDelay: 60000, random: () => 0.99 });
  (await fake.socket(0)).serverClose(1006);
  assert.equal(client.state, State.RECONNECTING);
  win.dispatchEvent(new Event("online"));
  (await fake.socket(1, 500)).serverClose(1006);
  assert.equal(client.state, State.RECONNECTING);
  win.document.dispatchEvent(new Event("visibilitychange"));
  await fake.socket(2, 500);
  client.destroy();
});

test("events of groups without a subscription (the personal group) reach 'event' listeners", async () => {
  const { socket, client } = await opened();
  const events = [];
  client.on("event", (e) => events.push(e.type));
  socket.push({ type: "invoice.paid", group: "user.1", seq: 1, data: {} });
  socket.push({ type: "direct", data: {} });
  assert.deepEqual(events, ["invoice.paid", "direct"]);
  client.close();
});

test("relative URLs resolve against location in a browser", async () => {
  globalThis.location = { href: "https://example.com/app/page" };
  try {
    const fake = fakeWebSocket();
    const client = new RealtimeClient("/ws/", { WebSocket: fake.WebSocket });
    assert.equal((await fake.socket(0)).url, "wss://example.com/ws/");
    client.close();
  } finally {
    delete globalThis.location;
  }
});

// -- no silent loss: transient subscribe failures, epochs, rt.reset ------------------

const subscribes = (socket) => socket.sent.filter((f) => f.type === "rt.subscribe");

function refuse(socket, frame, code) {
  socket.push({ type: "rt.error", id: frame.id, data: { code, message: code } });
}

test("a subscribe answered server_error is retried; the retry's ack starts delivery", async () => {
  const { socket, client } = await opened();
  const got = [];
  const errors = [];
  const retries = [];
  client.on("subscription-error", (e) => errors.push(e.error.code));
  client.on("subscription-retry", (r) => retries.push([r.group, r.error.code, r.attempt]));
  const sub = client.subscribe("room.1", (event) => got.push(event.seq), { onError: (e) => errors.push(e.code) });
  refuse(socket, await socket.waitFrame("rt.subscribe"), "server_error");
  const retry = await socket.waitFrame((f) => f.type === "rt.subscribe" && f.id !== subscribes(socket)[0].id);
  assert.deepEqual(retry.data, { group: "room.1" });
  assert.deepEqual(retries, [["room.1", "server_error", 1]]);
  assert.equal(sub.active, true);
  await socket.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: "e1", recovered: true }, { match: (f) => f.id === retry.id });
  assert.deepEqual(await sub.ready, { group: "room.1", seq: 0, epoch: "e1", recovered: true });
  for (const seq of [1, 2]) socket.push({ type: "m", group: "room.1", seq });
  assert.deepEqual(got, [1, 2]);
  assert.deepEqual(errors, []);
  assert.equal(subscribes(socket).length, 2);
  client.close();
});

test("a gap-filling resubscribe hit by server_error keeps its position and is retried", async () => {
  const { socket, client } = await opened();
  const got = [];
  client.subscribe("room.1", (event) => got.push(event.seq));
  await socket.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: "e1", recovered: true });
  socket.push({ type: "m", group: "room.1", seq: 1 });
  socket.push({ type: "m", group: "room.1", seq: 3 }); // 2 is missing
  const fill = await socket.waitFrame((f) => f.type === "rt.subscribe" && f.data.since === 1);
  refuse(socket, fill, "server_error");
  const retry = await socket.waitFrame((f) => f.type === "rt.subscribe" && f.id !== fill.id && f.data.since === 1);
  assert.deepEqual(retry.data, { group: "room.1", since: 1, epoch: "e1" });
  await socket.ack("rt.subscribe", { group: "room.1", seq: 3, epoch: "e1", recovered: true }, { match: (f) => f.id === retry.id });
  for (const seq of [2, 3]) socket.push({ type: "m", group: "room.1", seq });
  assert.deepEqual(got, [1, 2, 3]);
  client.close();
});

test("unavailable is retried with exponential backoff and jitter, then events flow", async () => {
  const { socket, client } = await opened({ reconnectDelay: 20, maxReconnectDelay: 1000, random: () => 0.999 });
  const got = [];
  const delays = [];
  client.on("subscription-retry", (r) => delays.push(r.delay));
  const sub = client.subscribe("room.1", (event) => got.push(event.seq));
  let frame = await socket.waitFrame("rt.subscribe");
  for (let i = 0; i < 3; i++) {
    const refusedAt = Date.now();
    const retrying = nextEvent(client, "subscription-retry");
    refuse(socket, frame, "unavailable");
    await retrying;
    assert.equal(subscribes(socket).length, i + 1); // not resent at once
    const previous = frame.id;
    frame = await socket.waitFrame((f) => f.type === "rt.subscribe" && Number(f.id) > Number(previous));
    // Timers never fire early; allow a millisecond of clock rounding.
    assert.ok(Date.now() - refusedAt >= delays[i] - 1, `retry ${i} after ${Date.now() - refusedAt} ms < ${delays[i]}`);
  }
  assert.deepEqual(delays, [19, 39, 79]); // 0.999 of 20, 40, 80
  await socket.ack("rt.subscribe", { group: "room.1", seq: 4, epoch: "e1", recovered: true }, { match: (f) => f.id === frame.id });
  await sub.ready;
  socket.push({ type: "m", group: "room.1", seq: 5 });
  assert.deepEqual(got, [5]);
  // A success resets the backoff: the next transient failure waits the base delay again.
  socket.push({ type: "m", group: "room.1", seq: 7 }); // gap: resubscribe
  const fill = await socket.waitFrame((f) => f.type === "rt.subscribe" && f.data.since === 5);
  const retrying = nextEvent(client, "subscription-retry");
  refuse(socket, fill, "unavailable");
  assert.equal((await retrying).delay, 19);
  client.close();
});

test("every transient code is retried; every other code ends the subscription once", async () => {
  for (const code of ["server_error", "unavailable", "rate_limited", "shutting_down"]) {
    const { socket, client } = await opened();
    const sub = client.subscribe("g", () => {});
    refuse(socket, await socket.waitFrame("rt.subscribe"), code);
    await until(() => subscribes(socket).length === 2, { what: `retry after ${code}` });
    assert.equal(sub.active, true, code);
    client.close();
  }
  for (const code of ["forbidden", "bad_envelope", "not_authenticated", "unknown_type", "invalid", "too_large", "no_such_code"]) {
    const { socket, client } = await opened();
    const errors = [];
    const retries = [];
    client.on("subscription-retry", (r) => retries.push(r));
    const sub = client.subscribe("g", () => {}, { onError: (e) => errors.push(e.code) });
    refuse(socket, await socket.waitFrame("rt.subscribe"), code);
    await assert.rejects(sub.ready, { code });
    assert.deepEqual(errors, [code]);
    assert.equal(sub.active, false);
    await new Promise((r) => setTimeout(r, 100)); // past the largest backoff (40 ms)
    assert.equal(subscribes(socket).length, 1, code);
    assert.deepEqual(retries, [], code);
    client.close();
  }
});

test("a slow subscribe is not sent again on the same socket: its late ack completes it", async () => {
  // Under load (a reconnect storm) a subscribe can take longer than requestTimeout;
  // a second one would make the server join, read history and replay twice.
  const { socket, client } = await opened({ requestTimeout: 30 });
  const sub = client.subscribe("g", () => {});
  const first = await socket.waitFrame("rt.subscribe");
  await new Promise((r) => setTimeout(r, 100)); // well past requestTimeout
  assert.equal(subscribes(socket).length, 1);
  await socket.ack("rt.subscribe", { group: "g", seq: 0, epoch: "e", recovered: true }, { match: (f) => f.id === first.id });
  assert.deepEqual(await sub.ready, { group: "g", seq: 0, epoch: "e", recovered: true });
  client.close();
});

test("a retry pending when the connection drops is replaced by the reconnect's resubscribe", async () => {
  const { fake, socket, client } = await opened({ reconnectDelay: 200, maxReconnectDelay: 200, random: () => 0.99 });
  client.subscribe("g", () => {});
  await socket.ack("rt.subscribe", { group: "g", seq: 0, epoch: "e", recovered: true });
  socket.push({ type: "m", group: "g", seq: 1 });
  socket.push({ type: "m", group: "g", seq: 3 });
  refuse(socket, await socket.waitFrame((f) => f.type === "rt.subscribe" && f.data.since === 1), "server_error");
  await nextEvent(client, "subscription-retry"); // a retry is now waiting ~200 ms
  socket.serverClose(1006);
  client.retryNow(); // skip the reconnect backoff
  const again = await fake.socket(1);
  again.welcome();
  const resub = await again.waitFrame("rt.subscribe");
  assert.deepEqual(resub.data, { group: "g", since: 1, epoch: "e" });
  await new Promise((r) => setTimeout(r, 300)); // past the old retry's time
  assert.equal(subscribes(again).length, 1);
  assert.equal(subscribes(socket).length, 2); // the first subscribe and the refused fill
  client.close();
});

test("a new epoch in the ack resets the position: its events 1..n follow 1..m of the old", async () => {
  // A correct server says recovered: false; the client must not trust `recovered: true`
  // either when the epoch is not the one its `since` belongs to.
  for (const recovered of [false, true]) {
    const { fake, socket, client } = await opened();
    const got = [];
    const failures = [];
    client.on("recovery-failed", (f) => failures.push(f));
    const sub = client.subscribe("room.1", (event) => got.push(`${event.data.epoch}:${event.seq}`));
    await socket.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: "e1", recovered: true });
    for (const seq of [1, 2, 3, 4, 5]) socket.push({ type: "m", group: "room.1", seq, data: { epoch: "e1" } });
    socket.serverClose(1006);
    const again = await fake.socket(1);
    again.welcome();
    const resub = await again.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: "e2", recovered });
    assert.deepEqual(resub.data, { group: "room.1", since: 5, epoch: "e1" });
    assert.deepEqual(client.positions()["room.1"], { seq: 0, epoch: "e2" });
    for (const seq of [1, 2, 3]) again.push({ type: "m", group: "room.1", seq, data: { epoch: "e2" } });
    assert.deepEqual(got, ["e1:1", "e1:2", "e1:3", "e1:4", "e1:5", "e2:1", "e2:2", "e2:3"], `recovered: ${recovered}`);
    assert.deepEqual(failures, [{ group: "room.1", since: 5, seq: 0, epoch: "e2" }]);
    assert.equal(sub.seq, 3);
    client.close();
  }
});

test("events held ahead of a gap are dropped when the fill's ack names a new epoch", async () => {
  const { socket, client } = await opened();
  const got = [];
  client.subscribe("room.1", (event) => got.push(`${event.data.epoch}:${event.seq}`));
  await socket.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: "e1", recovered: true });
  const push = (epoch, seq) => socket.push({ type: "m", group: "room.1", seq, data: { epoch } });
  for (const seq of [1, 2, 4, 5]) push("e1", seq); // 3 lost: 4 and 5 are held
  await socket.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: "e2", recovered: false }, { match: (f) => f.data.since === 2 });
  for (const seq of [1, 2, 3, 4, 5, 6]) push("e2", seq);
  assert.deepEqual(got, ["e1:1", "e1:2", "e2:1", "e2:2", "e2:3", "e2:4", "e2:5", "e2:6"]);
  client.close();
});

test("rt.reset sets the position, reports a failed recovery, and the next events flow", async () => {
  const { fake, socket, client } = await opened();
  const got = [];
  const failures = [];
  client.on("recovery-failed", (f) => failures.push(["client", f]));
  client.subscribe("room.1", (event) => got.push(`${event.data.epoch}:${event.seq}`), {
    onRecoveryFailed: (f) => failures.push(["sub", f]),
  });
  await socket.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: "e1", recovered: true });
  for (const seq of [1, 2, 3, 4, 5]) socket.push({ type: "m", group: "room.1", seq, data: { epoch: "e1" } });
  socket.push({ type: "rt.reset", group: "room.1", data: { epoch: "e2", seq: 0, reason: "epoch_changed" } });
  const expected = { group: "room.1", since: 5, seq: 0, epoch: "e2", reason: "epoch_changed" };
  assert.deepEqual(failures, [
    ["client", expected],
    ["sub", expected],
  ]);
  assert.deepEqual(client.positions()["room.1"], { seq: 0, epoch: "e2" });
  for (const seq of [1, 2, 3]) socket.push({ type: "m", group: "room.1", seq, data: { epoch: "e2" } });
  assert.deepEqual(got, ["e1:1", "e1:2", "e1:3", "e1:4", "e1:5", "e2:1", "e2:2", "e2:3"]);
  // A reset within the epoch (history trimmed): continue after its seq.
  socket.push({ type: "rt.reset", group: "room.1", data: { epoch: "e2", seq: 9, reason: "history_trimmed" } });
  socket.push({ type: "m", group: "room.1", seq: 9, data: { epoch: "e2" } });
  socket.push({ type: "m", group: "room.1", seq: 10, data: { epoch: "e2" } });
  assert.deepEqual(got.slice(8), ["e2:10"]);
  assert.equal(failures.length, 4);
  // The reconnect resumes from the reset position.
  socket.serverClose(1006);
  const again = await fake.socket(1);
  again.welcome();
  assert.deepEqual((await again.waitFrame("rt.subscribe")).data, { group: "room.1", since: 10, epoch: "e2" });
  client.close();
});

test("rt.reset drops the events held ahead of a gap", async () => {
  const { socket, client } = await opened();
  const got = [];
  client.subscribe("room.1", (event) => got.push(`${event.data.epoch}:${event.seq}`));
  await socket.ack("rt.subscribe", { group: "room.1", seq: 0, epoch: "e1", recovered: true });
  const push = (epoch, seq) => socket.push({ type: "m", group: "room.1", seq, data: { epoch } });
  for (const seq of [1, 2, 4, 5]) push("e1", seq); // 4 and 5 held; a fill is in flight
  socket.push({ type: "rt.reset", group: "room.1", data: { epoch: "e2", seq: 0, reason: "epoch_changed" } });
  for (const seq of [1, 2, 3]) push("e2", seq);
  await socket.ack("rt.subscribe", { group: "room.1", seq: 3, epoch: "e2", recovered: false }, { match: (f) => f.data.since === 2 });
  for (const seq of [4, 5, 6]) push("e2", seq);
  assert.deepEqual(got, ["e1:1", "e1:2", "e2:1", "e2:2", "e2:3", "e2:4", "e2:5", "e2:6"]);
  client.close();
});

test("rt.reset of a group without history, and of the personal group, reports a failed recovery", async () => {
  const { socket, client } = await opened();
  const got = [];
  const failures = [];
  const events = [];
  client.on("recovery-failed", (f) => failures.push(f));
  client.on("event", (e) => events.push(e.type));
  client.subscribe("live.1", (event) => got.push(event.data.n));
  await socket.ack("rt.subscribe", { group: "live.1", seq: null, epoch: null, recovered: true });
  socket.push({ type: "m", group: "live.1", data: { n: 1 } });
  socket.push({ type: "rt.reset", group: "live.1", data: { epoch: null, seq: null, reason: "layer_restarted" } });
  socket.push({ type: "m", group: "live.1", data: { n: 2 } });
  socket.push({ type: "rt.reset", group: "user.7", data: { epoch: "e9", seq: 4, reason: "history_trimmed" } });
  socket.push({ type: "rt.future", group: "live.1", data: { n: 3 } }); // unknown protocol frame
  assert.deepEqual(got, [1, 2]);
  assert.deepEqual(events, ["m", "m"]); // protocol frames are not application events
  assert.deepEqual(failures, [
    { group: "live.1", since: null, seq: null, epoch: null, reason: "layer_restarted" },
    { group: "user.7", since: null, seq: 4, epoch: "e9", reason: "history_trimmed" },
  ]);
  client.close();
});

test("transient subscribe failures end the subscription after maxReconnectAttempts retries", async () => {
  const { socket, client } = await opened({ maxReconnectAttempts: 2 });
  const sub = client.subscribe("g", () => {});
  const refused = new Set();
  for (let i = 0; i < 3; i++) {
    const frame = await socket.waitFrame((f) => f.type === "rt.subscribe" && !refused.has(f.id));
    refused.add(frame.id);
    refuse(socket, frame, "server_error");
  }
  await assert.rejects(sub.ready, { code: "server_error" });
  assert.equal(sub.active, false);
  assert.equal(subscribes(socket).length, 3);
  client.close();
});

test("a gap fill refused for good ends the subscription and leaves the group", async () => {
  const { socket, client } = await opened();
  const sub = client.subscribe("g", () => {});
  await socket.ack("rt.subscribe", { group: "g", seq: 0, epoch: "e", recovered: true });
  socket.push({ type: "m", group: "g", seq: 2 }); // 1 is missing
  const reported = nextEvent(client, "subscription-error");
  refuse(socket, await socket.waitFrame((f) => f.type === "rt.subscribe" && f.data.since === 0), "forbidden");
  assert.equal((await reported).error.code, "forbidden");
  assert.equal(sub.active, false);
  assert.deepEqual((await socket.waitFrame("rt.unsubscribe")).data, { group: "g" });
  client.close();
});
