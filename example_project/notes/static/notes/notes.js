// The Notes page: one shared document per note, edited in CodeMirror 6 through its
// stock Yjs binding (y-codemirror.next), kept in step by realtime's DocumentProvider.
import * as Y from "yjs";
import { DocumentProvider } from "/static/realtime/collab.js";
import {
  EditorState,
  EditorView,
  defaultKeymap,
  drawSelection,
  keymap,
  yCollab,
  yUndoManagerKeymap,
} from "/static/notes/vendor/editor.js";
import { avatar, client, el, me } from "/static/chat/app.js";

const COLORS = ["#4f46e5", "#0891b2", "#db2777", "#ea580c", "#16a34a", "#7c3aed", "#0d9488"];
function colorOf(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return COLORS[hash % COLORS.length];
}

const section = document.getElementById("note");
if (section) {
  const group = section.dataset.group;
  const doc = new Y.Doc();
  const text = doc.getText("body");
  const provider = new DocumentProvider(client, group, doc);
  const color = colorOf(me);
  provider.awareness.setLocalStateField("user", { name: me, color, colorLight: color + "33" });

  const readOnly = section.dataset.readOnly === "1";
  const view = new EditorView({
    parent: document.getElementById("editor"),
    state: EditorState.create({
      doc: text.toString(),
      extensions: [
        keymap.of([...yUndoManagerKeymap, ...defaultKeymap]),
        drawSelection(),
        EditorView.lineWrapping,
        EditorState.readOnly.of(readOnly),
        EditorView.editable.of(!readOnly),
        yCollab(text, provider.awareness),
      ],
    }),
  });

  const status = document.getElementById("doc-status");
  const showStatus = () => {
    const state = client.state !== "open" ? "offline" : provider.synced ? "synced" : "syncing";
    status.dataset.state = state;
    status.textContent =
      state === "offline" ? "offline: edits are kept and sent on reconnect" : state === "synced" ? (provider.writable ? "saved" : "read-only") : "syncing…";
    document.body.dataset.doc = state;
  };
  provider.on("status", showStatus).on("synced", showStatus);
  client.on("state", showStatus);
  provider.on("error", (error) => console.warn("note:", error.code, error.message));

  // Who is here: presence of the document's group.
  const here = document.getElementById("here");
  const members = new Map();
  const drawHere = () => {
    here.replaceChildren(
      ...[...members.keys()].sort().map((name) => {
        const chip = el("span", { class: "chip", "data-user": name }, avatar(name), name);
        chip.style.borderColor = colorOf(name);
        return chip;
      }),
    );
  };
  const refreshPresence = async () => {
    try {
      const state = await client.presence(group);
      members.clear();
      for (const member of state.members ?? []) members.set(member.username, member);
      drawHere();
    } catch {
      /* not subscribed yet: the next sync refreshes it */
    }
  };
  provider.on("synced", refreshPresence);
  client.on("presence", ({ type, group: g, member }) => {
    if (g !== group || !member) return;
    if (type === "join") members.set(member.username, member);
    else members.delete(member.username);
    drawHere();
  });

  // For the console and the browser tests.
  window.notes = { doc, text, provider, view };
}
