// Compiled by tests/test_client_node.py::test_types_compile: realtime.d.ts is usable.
import RealtimeClient, { RealtimeError, State, backoffDelay, type GroupEvent, type PresenceState } from "../../realtime/static/realtime/realtime.js";
const client = new RealtimeClient("/ws/", { ticketUrl: "/realtime/ticket/", events: { "chat.message": 1 }, queueOverflow: "reject" });
const off = client.on("closed", (d) => console.log(d.code, d.willRetry));
off();
client.on("recovery-failed", (f) => f.group.toUpperCase());
const sub = client.subscribe<{ text: string }>("room.1", (e: GroupEvent<{ text: string }>) => e.data?.text, { onPresence: (p) => p.member.username });
sub.ready.then((ack) => ack.recovered);
const p: Promise<PresenceState> = client.presence("room.1");
client.request<{ seq: number }>("test.say", { text: "x" }, { timeout: 10 }).then((r) => r.seq).catch((e: RealtimeError) => e.code);
const s: string = client.state === State.OPEN ? "y" : "n";
backoffDelay(3, { baseDelay: 1 });
client.send("x", {});
client.typing("room.1");
sub.unsubscribe();
