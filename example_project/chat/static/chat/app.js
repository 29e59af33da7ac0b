// Shared by every page: one RealtimeClient, the connection banner, the bell.
import { RealtimeClient } from "/static/realtime/realtime.js";

export const me = JSON.parse(document.getElementById("me").textContent);

// The session cookie authenticates the WebSocket (same origin): nothing to configure.
export const client = new RealtimeClient(document.body.dataset.ws, {
  reconnectDelay: 300,
  maxReconnectDelay: 5000,
  typingEvent: "chat.typing",
  typingInterval: 2000,
});
window.rtClient = client; // for the console (and the browser tests)

// -- helpers -------------------------------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((child) => child != null));
  return node;
}

const COLORS = ["#4f46e5", "#0891b2", "#db2777", "#ea580c", "#16a34a", "#7c3aed", "#0d9488"];

export function avatar(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  const node = el("span", { class: "avatar", title: name }, name.slice(0, 1).toUpperCase());
  node.style.background = COLORS[hash % COLORS.length];
  return node;
}

export function clock(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.split("=")[1]) : "";
}

/** fetch() a JSON endpoint of this site with the session cookie (and CSRF token). */
export async function api(url, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${url}: HTTP ${response.status}`);
  return response.json();
}

// -- connection banner ---------------------------------------------------------------

const banner = document.getElementById("banner");
let hideTimer;

export function showBanner(text, kind, { hideAfter } = {}) {
  clearTimeout(hideTimer);
  banner.textContent = text;
  banner.className = `banner show ${kind}`;
  if (hideAfter) hideTimer = setTimeout(() => (banner.className = "banner"), hideAfter);
}

let wasOpen = false;
client.on("state", ({ state }) => {
  document.body.dataset.rt = state;
  if (state === "open") {
    if (wasOpen) showBanner("Reconnected: you are up to date.", "back", { hideAfter: 3000 });
    wasOpen = true;
  } else if (state === "reconnecting" && wasOpen) {
    showBanner("Connection lost. Reconnecting…", "down");
  } else if (state === "closed") {
    showBanner("Disconnected. Reload the page to reconnect.", "dead");
  }
});

// -- the bell ------------------------------------------------------------------------

const badge = document.getElementById("bell-count");
const bell = document.getElementById("bell");
let unread = 0;

export function setUnread(count) {
  unread = Math.max(0, count);
  badge.textContent = unread > 99 ? "99+" : String(unread);
  badge.dataset.count = String(unread);
}

async function refreshUnread() {
  try {
    setUnread((await api("/inbox/unread-count/")).unread);
  } catch (error) {
    console.warn("unread count:", error);
  }
}

// On every (re)connect: pushes missed while offline are waiting in the inbox.
client.on("open", refreshUnread);

// Events of the personal group (notify_user) arrive outside any subscription.
client.on("event", (frame) => {
  if (!frame.group?.startsWith("user.")) return;
  setUnread(unread + 1);
  bell.classList.remove("ring");
  void bell.offsetWidth; // restart the animation
  bell.classList.add("ring");
  document.dispatchEvent(new CustomEvent("notification", { detail: frame }));
});
