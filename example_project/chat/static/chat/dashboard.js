// The dashboard: every process with viewers pushes its figures once a second.
import { client, el } from "./app.js";

const WINDOW = 60; // seconds on the chart
const processes = new Map(); // name -> {tick, seenAt}
const points = new Map(); // whole second -> {connections, rate}
const chart = document.getElementById("chart");
const SVG = "http://www.w3.org/2000/svg";
let ticks = 0;

function live() {
  const now = Date.now();
  return [...processes.values()].filter((p) => now - p.seenAt < 3500).map((p) => p.tick);
}

function totals(list) {
  return {
    connections: list.reduce((sum, t) => sum + t.connections, 0),
    rate: list.reduce((sum, t) => sum + t.messages_per_second, 0),
    messages: list.reduce((sum, t) => sum + t.messages, 0),
  };
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function niceCeiling(value) {
  const steps = [1, 2, 5, 10];
  let scale = 1;
  while (true) {
    for (const step of steps) if (step * scale >= value) return step * scale;
    scale *= 10;
  }
}

function drawChart() {
  // Drawn in the element's own pixels, so text is never stretched.
  const width = Math.max(300, Math.round(chart.clientWidth || 600)), height = 220;
  const left = 34, bottom = 20, top = 8;
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const now = Math.floor(Date.now() / 1000);
  const series = [];
  for (let s = now - WINDOW + 1; s <= now; s++) series.push(points.get(s) ?? null);
  const peak = niceCeiling(Math.max(1, ...series.filter(Boolean).flatMap((p) => [p.connections, p.rate])));
  const x = (i) => left + (i / (WINDOW - 1)) * (width - left - 4);
  const y = (v) => top + (1 - v / peak) * (height - top - bottom);
  const nodes = [];
  const grid = svg("g", { class: "grid" });
  for (const fraction of [0, 0.5, 1]) {
    const value = peak * fraction;
    grid.append(svg("line", { x1: left, x2: width, y1: y(value), y2: y(value) }));
    const label = svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" });
    label.textContent = Number.isInteger(value) ? value : value.toFixed(1);
    grid.append(label);
  }
  for (const [i, text] of [[0, `-${WINDOW}s`], [WINDOW - 1, "now"]]) {
    const label = svg("text", { x: x(i), y: height - 4, "text-anchor": i ? "end" : "start" });
    label.textContent = text;
    grid.append(label);
  }
  nodes.push(grid);
  for (const [key, color] of [["connections", "#4f46e5"], ["rate", "#f59e0b"]]) {
    const coords = series.map((p, i) => (p ? `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}` : null)).filter(Boolean);
    if (coords.length) {
      nodes.push(svg("polyline", { points: coords.join(" "), fill: "none", stroke: color, "stroke-width": 2.5, "stroke-linejoin": "round", "data-series": key }));
    }
  }
  chart.replaceChildren(...nodes);
}

function duration(seconds) {
  const s = Math.floor(seconds);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function renderFigures() {
  const list = live();
  const sum = totals(list);
  document.getElementById("f-connections").textContent = sum.connections;
  document.getElementById("f-rate").textContent = sum.rate.toFixed(1);
  document.getElementById("f-messages").textContent = sum.messages;
  document.getElementById("f-processes").textContent = list.length;
  document.getElementById("procs").replaceChildren(
    ...list.sort((a, b) => a.process.localeCompare(b.process)).map((t) =>
      el("tr", {}, ...[t.process, t.connections, t.viewers, t.messages, t.messages_per_second.toFixed(1), (t.deliveries_per_second ?? 0).toFixed(1), duration(t.uptime)].map((v) => el("td", {}, String(v)))),
    ),
  );
}

client.subscribe("dashboard", (frame) => {
  if (frame.type !== "dashboard.tick") return;
  const tick = frame.data;
  processes.set(tick.process, { tick, seenAt: Date.now() });
  const second = Math.floor(Date.now() / 1000);
  points.set(second, totals(live()));
  for (const s of points.keys()) if (s <= second - WINDOW) points.delete(s);
  renderFigures();
  drawChart();
window.addEventListener("resize", drawChart);
  document.body.dataset.ticks = String(++ticks);
});
drawChart();
window.addEventListener("resize", drawChart);
