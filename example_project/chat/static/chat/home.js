// The notifications page: the inbox API's list, live updates, mark read.
import { api, avatar, client, el, setUnread } from "./app.js";

const list = document.getElementById("notes");

function describe(note) {
  const data = note.data ?? {};
  if (note.type === "chat.mention") {
    return {
      who: data.author,
      title: `${data.author} mentioned you in #${data.room}`,
      text: data.text,
      href: `/chat/${data.room}/`,
    };
  }
  return { who: "?", title: note.type, text: JSON.stringify(data), href: null };
}

function renderNote(note) {
  const { who, title, text, href } = describe(note);
  const item = el(
    "li",
    { class: `note${note.read ? "" : " unread"}`, "data-id": note.id },
    avatar(who),
    el(
      "div",
      { class: "body" },
      el("strong", {}, title),
      el("div", { class: "text muted" }, `“${text}”`),
      el("time", { dateTime: note.created_at }, new Date(note.created_at).toLocaleString()),
    ),
  );
  const actions = el("div", {});
  if (href) actions.append(el("a", { href, class: "open" }, "Open"));
  if (!note.read) {
    const button = el("button", { class: "ghost mark-read" }, "Mark read");
    button.addEventListener("click", () => markRead(note, item, button));
    actions.append(button);
  }
  item.append(actions);
  return item;
}

async function markRead(note, item, button) {
  await api(`/inbox/${note.id}/read/`, { method: "POST" });
  item.classList.remove("unread");
  button.remove();
  setUnread((await api("/inbox/unread-count/")).unread);
}

async function load() {
  const page = await api("/inbox/?page_size=30");
  list.replaceChildren(...page.results.map(renderNote));
  if (!page.results.length) {
    list.append(el("li", { class: "empty" }, "Nothing yet. Ask someone to @mention you in the chat."));
  }
}

document.getElementById("read-all").addEventListener("click", async () => {
  await api("/inbox/read-all/", { method: "POST" });
  setUnread(0);
  await load();
});

// A live notification is already stored (persist=True stores before it pushes).
document.addEventListener("notification", load);
load();
let opened = 0;
client.on("open", () => opened++ && load()); // after a reconnect: what came meanwhile
