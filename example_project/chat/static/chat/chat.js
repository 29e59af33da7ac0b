// The chat page: messages, typing, read receipts, presence, recovery.
import { api, avatar, clock, client, el, me } from "./app.js";

const room = JSON.parse(document.getElementById("room").textContent);
const group = `room.${room}`;
const log = document.getElementById("log");
const typingLine = document.getElementById("typing");
const peopleList = document.getElementById("people");
const form = document.getElementById("compose");
const input = document.getElementById("text");

const messages = new Map(); // id -> {data, node}
const markers = new Map(Object.entries(JSON.parse(document.getElementById("initial-markers").textContent)));
const typing = new Map(); // username -> timer
const people = new Map(); // username -> member
let maxId = 0;

// -- messages ------------------------------------------------------------------------

function textWithMentions(text) {
  const parts = text.split(/(@[\w.+-]+)/g);
  return parts.map((part) => (part.startsWith("@") ? el("span", { class: "mention" }, part) : part));
}

/** Show a message once, in id order, whether it came live, replayed or over HTTP. */
function render(data) {
  if (messages.has(data.id)) return false;
  const mine = data.author === me;
  const node = el(
    "div",
    { class: `msg${mine ? " mine" : ""}`, "data-id": data.id, "data-author": data.author },
    avatar(data.author),
    el(
      "div",
      {},
      el("div", { class: "meta" }, `${mine ? "You" : data.author} · ${clock(data.created_at)}`),
      el("div", { class: "bubble" }, ...textWithMentions(data.text)),
    ),
  );
  const later = [...messages.keys()].filter((id) => id > data.id).sort((a, b) => a - b)[0];
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  if (later === undefined) log.append(node);
  else log.insertBefore(node, messages.get(later).node);
  messages.set(data.id, { data, node });
  maxId = Math.max(maxId, data.id);
  if (nearBottom || mine) log.scrollTop = log.scrollHeight;
  return true;
}

// -- read receipts: "seen by" under the last message each person has read -----------

let sentRead = markers.get(me) ?? 0;

function renderSeen() {
  for (const node of log.querySelectorAll(".seen")) node.remove();
  const byMessage = new Map();
  for (const [user, id] of markers) {
    if (user === me || !messages.has(id)) continue;
    byMessage.set(id, [...(byMessage.get(id) ?? []), user]);
  }
  for (const [id, users] of byMessage) {
    const { data, node } = messages.get(id);
    const line = el("div", { class: `seen${data.author === me ? " mine-seen" : ""}` }, `Seen by ${users.sort().join(", ")}`);
    node.after(line);
  }
}

/** Tell the room how far I have read: the newest message from someone else. */
function markRead() {
  if (document.visibilityState !== "visible" || client.state !== "open") return;
  const newest = Math.max(0, ...[...messages.values()].filter((m) => m.data.author !== me).map((m) => m.data.id));
  if (newest <= sentRead) return;
  sentRead = newest;
  client.request("chat.read", { room, message_id: newest }).catch(() => {
    sentRead = 0; // try again with the next message
  });
}

function setMarker(user, id) {
  if (id > (markers.get(user) ?? 0)) markers.set(user, id);
}

// -- typing --------------------------------------------------------------------------

function renderTyping() {
  const names = [...typing.keys()].sort();
  typingLine.textContent = !names.length
    ? ""
    : names.length === 1
      ? `${names[0]} is typing…`
      : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
}

function setTyping(user, on) {
  clearTimeout(typing.get(user));
  if (on) typing.set(user, setTimeout(() => setTyping(user, false), 4000));
  else typing.delete(user);
  renderTyping();
}

// -- presence ------------------------------------------------------------------------

function renderPeople() {
  const names = [...people.keys()].sort();
  peopleList.replaceChildren(
    ...names.map((name) => el("li", { "data-user": name }, avatar(name), name === me ? `${name} (you)` : name)),
  );
}

async function refreshPresence() {
  const state = await sub.presence();
  people.clear();
  for (const member of state.members) people.set(member.username, member);
  renderPeople();
}

// -- the subscription: live events, replayed ones after a reconnect -----------------

const sub = client.subscribe(
  group,
  (frame) => {
    const data = frame.data;
    if (frame.type === "chat.message") {
      if (render(data)) {
        setTyping(data.author, false);
        renderSeen();
        markRead();
      }
    } else if (frame.type === "chat.typing") {
      if (data.user?.username !== me) setTyping(data.user.username, true);
    } else if (frame.type === "chat.read") {
      setMarker(data.user, data.message_id);
      renderSeen();
    }
  },
  {
    onPresence: ({ type, member }) => {
      if (type === "join") people.set(member.username, member);
      else people.delete(member.username);
      renderPeople();
    },
    // History could not fill the gap (the server restarted with in-memory history,
    // or the gap outlived HISTORY_TTL): the database has everything, ask it.
    onRecoveryFailed: () => catchUp(),
  },
);

/** Fetch what the page does not have yet from the database (by message id). */
async function catchUp() {
  const state = await api(`/chat/api/rooms/${room}/messages/?after=${maxId}`);
  for (const message of state.messages) render(message);
  for (const [user, id] of Object.entries(state.markers)) setMarker(user, id);
  renderSeen();
  markRead();
}

for (const message of JSON.parse(document.getElementById("initial-messages").textContent)) render(message);
renderSeen();
log.scrollTop = log.scrollHeight;

// Messages sent between rendering the page and the subscription: fetch them once.
sub.ready.then(catchUp);
// Presence after every (re)subscribe: who is here may have changed while away.
client.on("subscribed", (ack) => ack.group === group && refreshPresence());
document.addEventListener("visibilitychange", markRead);

// -- sending -------------------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  // While offline the client queues the frame and sends it after reconnecting.
  client.request("chat.message", { room, text }).catch((error) => {
    input.value = input.value || text;
    typingLine.textContent = `Not sent (${error.code ?? error.message}).`;
  });
});

input.addEventListener("input", () => {
  if (input.value) client.typing(group, { room });
});
