// Close codes that mean "do not retry": 4401 (bad token, inactive user) and 4403
// (forbidden at connect) end the client; a refreshable ticket gets one more try.
import assert from "node:assert/strict";

import { RealtimeClient } from "../../realtime/static/realtime/realtime.js";
import { config, main, nextEvent } from "./harness.mjs";

const { url, http, users } = config;
const fast = { reconnectDelay: 50, maxReconnectDelay: 100 };

async function refused(path, options, code, attempts = 1) {
  const client = new RealtimeClient(`${url}${path}`, { ...fast, autoConnect: false, ...options });
  let connecting = 0;
  client.on("connecting", () => (connecting += 1));
  const closed = nextEvent(client, "closed");
  // connect() may resolve first: the server acks rt.auth before its on_connect hook
  // refuses (4403). Either way the close is final.
  client.connect().catch(() => {});
  const detail = await closed;
  assert.equal(detail.code, code, JSON.stringify(detail));
  assert.equal(detail.willRetry, false);
  assert.equal(client.state, "closed");
  // Several times the largest backoff delay: no further attempt.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(connecting, attempts);
  return detail;
}

main(async () => {
  let detail = await refused("/ws/auth/", { token: "not-a-token" }, 4401);
  assert.equal(detail.error.code, "not_authenticated");
  detail = await refused("/ws/auth/", { token: users.ghost.token }, 4401);
  assert.equal(detail.error.code, "not_authenticated");
  detail = await refused("/ws/staff/", { token: users.bob.token }, 4403);
  assert.equal(detail.error.code, "forbidden");
  // A ticket source can refresh: one more try, then stop.
  await refused("/ws/auth/", { getTicket: () => "forged-ticket" }, 4401, 2);

  // A first ticket that fails (expired, forged) is replaced by a fresh one.
  let calls = 0;
  const client = new RealtimeClient(`${url}/ws/auth/`, {
    ...fast,
    getTicket: async () => {
      calls += 1;
      if (calls === 1) return "forged-ticket";
      const response = await fetch(`${http}/realtime/ticket/`, {
        method: "POST",
        headers: { Authorization: `Token ${users.alice.token}` },
      });
      return (await response.json()).ticket;
    },
  });
  const welcome = await client.connect();
  assert.equal(welcome.user.username, "alice");
  assert.equal(calls, 2);

  // A ticket endpoint that refuses (signed out) ends the client without a socket.
  const signedOut = new RealtimeClient(`${url}/ws/auth/`, {
    ...fast,
    ticketUrl: `${http}/realtime/ticket/`,
  });
  const closed = nextEvent(signedOut, "closed");
  await assert.rejects(signedOut.connect(), { code: "not_authenticated" });
  assert.equal((await closed).willRetry, false);
  client.close();
});
