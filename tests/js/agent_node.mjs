// The scenario agent under Node: one JSON command a line on stdin
// ({"id", "op", "args"}), one JSON answer a line on stdout ({"id", "result"} or
// {"id", "error"}). Ends when stdin closes.
import { createInterface } from "node:readline";

import { RealtimeClient } from "../../realtime/static/realtime/realtime.js";
import { makeAgent } from "./agent.mjs";
import "./harness.mjs"; // a WebSocket for Node versions without one

const agent = makeAgent(RealtimeClient);
const input = createInterface({ input: process.stdin });

input.on("line", async (line) => {
  const { id, op, args } = JSON.parse(line);
  let answer;
  try {
    answer = { id, result: await agent.call(op, args) };
  } catch (error) {
    answer = { id, error: error?.stack ?? String(error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
input.on("close", () => process.exit(0));
