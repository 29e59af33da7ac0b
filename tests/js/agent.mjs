// The client side of the shared client scenarios (tests/support/client_scenarios.py):
// a few operations on one RealtimeClient and a record of what it delivered, driven by
// pytest through Node (agent_node.mjs) or a Chromium page (page.evaluate). The Python
// client has the same agent in tests/support/client_agents.py.

/** An agent for `RealtimeClient` (the class, so Node and the browser pass theirs). */
export function makeAgent(RealtimeClient) {
  let client = null;
  const rec = { opens: 0, events: {}, failures: [], closed: [] };

  const ops = {
    async connect({ url, auth = null, options = {} }) {
      const opts = { reconnectDelay: 100, maxReconnectDelay: 1000, connectTimeout: 5000, ...options, autoConnect: false };
      if (auth?.kind === "ticket") {
        opts.ticketUrl = auth.ticketUrl;
        opts.ticketHeaders = { Authorization: `Token ${auth.token}` };
      } else if (auth?.kind === "token") {
        opts.token = auth.token;
      }
      client = new RealtimeClient(url, opts);
      client.on("state", ({ state }) => {
        if (state === "open") rec.opens += 1;
      });
      client.on("recovery-failed", (f) =>
        rec.failures.push({ group: f.group, since: f.since, seq: f.seq, epoch: f.epoch, reason: f.reason ?? null }),
      );
      const closed = new Promise((resolve) => client.once("closed", resolve));
      try {
        await client.connect();
        return { user: client.user?.username ?? null };
      } catch (error) {
        const detail = await closed;
        return { error: error.code ?? String(error), closeCode: detail.code ?? null };
      }
    },

    async subscribe({ group, since = null, epoch = null }) {
      const events = (rec.events[group] = []);
      const options = {};
      if (since !== null) options.since = since;
      if (epoch !== null) options.epoch = epoch;
      const sub = client.subscribe(group, (event) => events.push([event.seq, event.data.n]), options);
      try {
        const ack = await sub.ready;
        return { ack: { group: ack.group, seq: ack.seq, epoch: ack.epoch, recovered: ack.recovered } };
      } catch (error) {
        return { error: error.code ?? String(error) };
      }
    },

    async request({ type, data }) {
      try {
        return { ok: await client.request(type, data) };
      } catch (error) {
        return { error: error.code ?? String(error) };
      }
    },

    async snapshot() {
      return {
        state: client.state,
        connections: rec.opens,
        user: client.user?.username ?? null,
        events: rec.events,
        failures: rec.failures,
      };
    },

    async close() {
      client?.close();
      return {};
    },
  };

  return {
    call(op, args = {}) {
      if (!(op in ops)) throw new Error(`unknown agent operation ${op}`);
      return ops[op](args);
    },
  };
}
