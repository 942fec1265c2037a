// qrgate dashboard page: renders the server's pushed state (server-sent events), draws its charts as inline SVG.
// No outside assets, no build step.  The state's shape is documented in sync/dashboard/model.py.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const FEED_ROWS = 80;
const SERVER_SILENT_MS = 15000;
let state = null;
let offset = 0;            // server clock minus this browser's, seconds
let lastMessage = Date.now();
let serverDown = false;
let session = null;       // {account, role, csrf} from /api/session
const gateCards = new Map();
let reasonWords = {};     // reason code -> words (the state's reason_words, sync/dashboard/words.py)
const feedSeen = new Set();

const $ = (id) => document.getElementById(id);
const now = () => Date.now() / 1000 + offset;
const words = (code) => reasonWords[code] || code.replaceAll("_", " ");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function hms(t) {
  if (!t) return "–";
  const d = new Date(t * 1000);
  return d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
}

function hm(t) {
  return new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", hour12: false});
}

function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, now() - t);
  if (s < 1.5) return "just now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function niceMax(v) {
  if (v <= 5) return 5;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// -- the connection -----------------------------------------------------------------------------------------
function connect() {
  const es = new EventSource("/events");
  es.addEventListener("state", (e) => { heard(); render(JSON.parse(e.data)); });
  es.addEventListener("scan", (e) => { heard(); addScan(JSON.parse(e.data), true); });
  es.addEventListener("ping", (e) => { heard(); offset = JSON.parse(e.data).now - Date.now() / 1000; });
  es.onerror = () => { serverDown = true; showStale(); checkSession(); };
}

// -- the session -----------------------------------------------------------------------------------------------
async function checkSession() {
  try {
    const r = await fetch("/api/session", {cache: "no-store"});
    if (r.status === 401) { window.location.assign("/login"); return null; }
    if (!r.ok) return null;
    session = await r.json();
    $("account").textContent = `${session.account} (${session.role})`;
    $("admin-submit").disabled = session.role !== "admin";
    return session;
  } catch (err) {
    return null;
  }
}

function post(path, body) {
  return fetch(path, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": session.csrf},
                      body: JSON.stringify(body)});
}

async function logout() {
  if (session) await post("/api/logout", {});
  window.location.assign("/login");
}

function heard() {
  lastMessage = Date.now();
  if (serverDown) { serverDown = false; showStale(); }
}

function showStale() {
  const brokerDown = state && state.stale;
  const stale = serverDown || brokerDown;
  document.body.classList.toggle("stale", Boolean(stale));
  $("stale").hidden = !stale;
  if (serverDown) {
    $("stale-text").textContent = "The dashboard server cannot be reached (is `gate dashboard` running?).";
  } else if (brokerDown) {
    // the dashboard's own link is down: say so, and not that every gate is (it cannot hear them, that is all)
    $("stale-text").textContent = `The dashboard is disconnected from the broker ${state.link.broker} since ` +
      `${hms(state.link.since)} (${ago(state.link.since)}): the gates' states are unknown until it reconnects, ` +
      "each card says when its gate was last seen.";
  }
  const link = $("link");
  link.className = "pill " + (stale ? "bad" : "ok");
  link.textContent = serverDown ? "server unreachable" : brokerDown ? "STALE: dashboard disconnected" : "LIVE";
}

// -- rendering ---------------------------------------------------------------------------------------------
function render(s) {
  state = s;
  reasonWords = s.reason_words || reasonWords;
  offset = s.now - Date.now() / 1000;
  showStale();
  renderArbiter(s.arbiter);
  renderCapacity(s);
  renderAreas(s.areas || []);
  renderVenueChart(s.venue);
  renderReasons(s.venue.reasons);
  renderGates(s.gates);
  renderConflicts(s.conflicts);
  renderAdminLog(s.revocations, s.overrides);
  if (s.feed) {
    for (const row of s.feed.slice().reverse()) addScan(row, false);
  }
  const c = s.counters || {};
  $("counters").textContent = `dashboard: ${c.scans || 0} scans received, ${c.stream_items || 0} stream items, ` +
    `${c.bad_messages || 0} bad messages, ${c.catchups || 0} catch-ups`;
}

function renderArbiter(a) {
  const node = $("arbiter");
  const ok = a.state === "online";
  node.className = "pill " + (ok ? "ok" : a.state === "unknown" ? "unknown" : "bad");
  node.textContent = `arbiter ${a.state}` + (a.head != null ? ` · stream #${a.head}` : "");
  node.title = a.known === false && a.last_state && a.last_state !== "unknown"
    ? `last heard ${ago(a.heard)}: ${a.last_state}` : "the arbiter's retained status";
}

function renderCapacity(s) {
  const cap = s.capacity;
  $("cap-admitted").textContent = cap.admitted.toLocaleString();
  $("cap-issued").textContent = cap.issued ? cap.issued.toLocaleString() : "?";
  $("cap-pct").textContent = cap.issued ? `${(100 * cap.admitted / cap.issued).toFixed(1)} %` : "– (capacity not set)";
  $("cap-double").textContent = cap.double;
  $("double-box").className = cap.double ? "alarm" : "";
  $("cap-revoked").textContent = s.revoked;
  $("rate").textContent = s.gates.reduce((n, g) => n + g.per_minute, 0);
  const online = s.gates.filter((g) => g.state === "online").length;
  $("gates-online").textContent = s.stale && s.gates.length ? `? / ${s.gates.length}` : `${online} / ${s.gates.length}`;
  $("gates-online").parentElement.className = online < s.gates.length ? "warn" : "";
  const bar = $("cap-bar");
  bar.replaceChildren(svg("rect", {x: 0, y: 0, width: 300, height: 18, rx: 4, class: "track"}));
  const share = cap.issued ? Math.min(1, cap.admitted / cap.issued) : 0;
  bar.append(svg("rect", {x: 0, y: 0, width: (300 * share).toFixed(1), height: 18, rx: 4, class: "cap"}));
}

function renderAreas(areas) {
  $("areas-box").hidden = !areas.length;
  $("areas").replaceChildren(...areas.map((a) => el("tr", {"data-list": a.list,
      class: [a.conflicts ? "has-conflicts" : "", a.full ? "full" : ""].filter(Boolean).join(" ") || null},
    el("td", {}, a.list),
    el("td", {class: "inside"}, a.inside.toLocaleString(),
      ...(a.capacity ? [el("span", {class: "capacity"}, ` / ${a.capacity.toLocaleString()}`)] : []),
      ...(a.full ? [el("span", {class: "tag full"}, "FULL")] : [])),
    el("td", {class: "admitted"}, a.admitted.toLocaleString()), el("td", {class: "conflicts"}, a.conflicts))));
}

function renderVenueChart(v) {
  const chart = $("venue-chart");
  const W = 640, H = 170, left = 30, bottom = 18, top = 8;
  const n = v.admitted.length;
  const totals = v.admitted.map((a, i) => a + v.rejected[i]);
  const max = niceMax(Math.max(1, ...totals));
  const bw = (W - left) / n;
  const y = (val) => H - bottom - (H - bottom - top) * val / max;
  const parts = [];
  for (const f of [0, 0.5, 1]) {
    parts.push(svg("line", {x1: left, x2: W, y1: y(max * f), y2: y(max * f), class: "grid"}));
    parts.push(svg("text", {x: left - 4, y: y(max * f) + 3, "text-anchor": "end"}, +(max * f).toFixed(1)));
  }
  v.admitted.forEach((a, i) => {
    const x = left + i * bw + 1, r = v.rejected[i];
    if (a) parts.push(svg("rect", {x, y: y(a), width: bw - 2, height: y(0) - y(a), class: "in"}));
    if (r) parts.push(svg("rect", {x, y: y(a + r), width: bw - 2, height: y(a) - y(a + r), class: "out"}));
    if (i % 10 === 9 || i === n - 1) {
      const last = i === n - 1;
      parts.push(svg("text", {x: last ? W : left + (i + 0.5) * bw, y: H - 4, "text-anchor": last ? "end" : "middle"},
        last ? "now" : hm(v.minutes[i])));
    }
  });
  chart.replaceChildren(...parts);
}

function renderReasons(reasons) {
  const chart = $("reasons-chart");
  const entries = Object.entries(reasons).slice(0, 7);
  if (!entries.length) {
    chart.replaceChildren(svg("text", {x: 0, y: 20, class: "label"}, "No rejections in the last hour."));
    return;
  }
  const max = Math.max(...entries.map(([, n]) => n));
  const parts = [];
  entries.forEach(([why, count], i) => {
    const y = 4 + i * 23;
    parts.push(svg("text", {x: 0, y: y + 12, class: "label", "data-reason": why}, words(why)));
    parts.push(svg("rect", {x: 120, y, width: 150, height: 16, rx: 3, class: "track"}));
    parts.push(svg("rect", {x: 120, y, width: Math.max(2, 150 * count / max), height: 16, rx: 3, class: "out"}));
    parts.push(svg("text", {x: 274, y: y + 12, class: "label"}, count));
  });
  chart.replaceChildren(...parts);
}

function clockClass(offsetS) {
  if (offsetS === null || offsetS === undefined) return ["unknown", "bad"];
  const a = Math.abs(offsetS);
  const text = `${offsetS >= 0 ? "+" : "−"}${a < 10 ? a.toFixed(3) : a.toFixed(0)} s`;
  return [text, a < 0.5 ? "good" : a < 2 ? "warn" : "bad"];
}

function gateCard(g) {
  let card = gateCards.get(g.gate);
  if (!card) {
    card = el("div", {class: "gate", "data-gate": g.gate},
      el("div", {class: "head"}, el("span", {class: "name", title: g.gate}, g.gate), el("span", {class: "state"})),
      el("div", {class: "meta"}),
      el("div", {class: "nums"}),
      svg("svg", {viewBox: "0 0 120 26", preserveAspectRatio: "none", class: "spark"}),
      el("div", {class: "why"}));
    gateCards.set(g.gate, card);
  }
  return card;
}

function renderGates(gates) {
  const box = $("gates");
  if (!gates.length) return;
  const counts = {};
  const cards = gates.map((g) => {
    counts[g.state] = (counts[g.state] || 0) + 1;
    const card = gateCard(g);
    card.classList.remove("online", "offline", "fault", "silent", "unknown");
    card.classList.add(g.state);
    card.dataset.state = g.state;
    card.dataset.heard = g.heard;
    card.dataset.lastState = g.last_state || "unknown";
    const why = g.state === "offline" ? (g.reason === "stopped" ? " (stopped)" : " (lost)") :
      g.state === "fault" ? ` (${g.detail})` : "";
    const node = card.querySelector(".state");
    node.textContent = g.state + why;
    node.title = g.known === false && g.last_state && g.last_state !== "unknown"
      ? `last heard as ${g.last_state} (${ago(g.heard)}); the dashboard has not heard its status since` : "";
    const [clock, quality] = clockClass(g.clock_offset);
    card.querySelector(".meta").replaceChildren(
      el("span", {}, g.state === "offline" ? "offline since" : g.state === "unknown" ? "last seen" : "last heard"),
      el("span", {}, "clock"),
      el("span", {}, "outbox"),
      el("b", {class: "ago"}, ago(g.heard)), el("b", {class: quality, title: "arbiter minus gate"}, clock),
      el("b", {class: g.outbox > 0 ? "warn" : "", title: "entries the arbiter has not confirmed"}, g.outbox));
    card.querySelector(".nums").replaceChildren(
      el("span", {class: "rate"}, g.per_minute, el("small", {}, " /min")),
      el("span", {class: "in"}, `in ${g.admitted}`),
      el("span", {class: "out"}, `out ${g.rejected}`),
      g.dropped ? el("span", {class: "out", title: "scan messages the gate could not publish"}, `${g.dropped} unsent`) : "");
    drawSpark(card.querySelector("svg"), g.spark_in, g.spark_out);
    const reasons = Object.entries(g.reasons).map(([k, n]) => `${words(k)} ${n}`).join(" · ");
    card.querySelector(".why").textContent = reasons || "no rejections in the last hour";
    return card;
  });
  box.replaceChildren(...cards);
  const order = ["online", "silent", "fault", "offline", "unknown"];
  const summary = order.filter((k) => counts[k]).map((k) => `${counts[k]} ${k}`).join(", ");
  $("gate-summary").textContent = `(${summary})`;
  const down = gates.filter((g) => g.state !== "online").map((g) => g.gate);
  const pill = $("gates-pill");
  if (state && state.stale) {  // the dashboard cannot hear them: it says nothing about the gates themselves
    pill.className = "pill unknown";
    pill.textContent = `${gates.length} gate${gates.length === 1 ? "" : "s"}: state unknown (dashboard disconnected)`;
    return;
  }
  pill.className = "pill " + (down.length ? (counts.offline ? "bad" : "warn") : "ok");
  pill.textContent = down.length ? `${down.length} of ${gates.length} gates not online: ${down.slice(0, 4).join(", ")}` +
    (down.length > 4 ? "…" : "") : gates.length === 1 ? "the gate is online" : `all ${gates.length} gates online`;
}

function drawSpark(node, ins, outs) {
  const max = Math.max(1, ...ins.map((a, i) => a + outs[i]));
  const bw = 120 / ins.length;
  const parts = [];
  ins.forEach((a, i) => {
    const r = outs[i], h = 26 * a / max, hr = 26 * r / max;
    if (a) parts.push(svg("rect", {x: i * bw + 0.5, y: 26 - h, width: bw - 1, height: h, class: "in"}));
    if (r) parts.push(svg("rect", {x: i * bw + 0.5, y: 26 - h - hr, width: bw - 1, height: hr, class: "out"}));
  });
  if (!parts.length) parts.push(svg("line", {x1: 0, x2: 120, y1: 25.5, y2: 25.5, class: "grid"}));
  node.replaceChildren(...parts);
}

function renderConflicts(conflicts) {
  const box = $("conflicts");
  const open = conflicts.filter((c) => c.state === "open").length;
  box.classList.toggle("has-open", open > 0);
  if (!conflicts.length) { box.replaceChildren(el("p", {class: "empty"}, "None.")); return; }
  box.replaceChildren(...conflicts.map((c) => c.kind === "list" ? listConflict(c) : el("div",
    {class: `conflict ${c.state}`, "data-ticket": c.ticket, "data-event": c.event, "data-kind": "double"},
    el("div", {}, el("span", {class: "tag"}, c.state === "open" ? "DOUBLE ENTRY" : "void"),
      el("span", {class: "what"}, `${c.event} / ${c.ticket}`)),
    el("div", {class: "who"},
      el("span", {}, "first"), el("span", {}, `${c.first.gate} at ${hms(c.first.at)}`),
      el("span", {}, "again"), el("span", {}, `${c.late.gate} at ${hms(c.late.at)} (gate was offline)`),
      el("span", {}, "found"), el("span", {}, `${hms(c.arbiter_at)} by the arbiter`)))));
}

// an entry a gate let through offline that the arbiter would have refused ("entered at b-in while already
// inside since a-in"): listed like a double entry, with the reason in words
function listConflict(c) {
  const rows = [el("span", {}, "why"), el("span", {class: "words", "data-reason": c.reason}, c.summary)];
  if (c.first) rows.push(el("span", {}, "inside since"), el("span", {}, `${c.first.gate} at ${hms(c.first.at)}`));
  rows.push(el("span", {}, "entered"), el("span", {}, `${c.late.gate} at ${hms(c.late.at)} (gate was offline)`),
    el("span", {}, "found"), el("span", {}, `${hms(c.arbiter_at)} by the arbiter`));
  return el("div", {class: `conflict ${c.state} list`, "data-ticket": c.ticket, "data-event": c.event,
                    "data-list": c.list, "data-kind": "list"},
    el("div", {}, el("span", {class: "tag"}, "LIST CONFLICT"),
      el("span", {class: "what"}, `${c.event} / ${c.ticket} on ${c.list}: ${words(c.reason)}`)),
    el("div", {class: "who"}, ...rows));
}

function renderAdminLog(revocations, overrides) {
  const rows = [
    ...revocations.map((r) => ({t: r.at, kind: "revoked", text: `${r.event}/${r.ticket} by ${r.admin || r.by}: ${r.reason || "-"}`})),
    ...overrides.map((o) => ({t: o.at, kind: o.action, text: `${o.event}/${o.ticket} by ${o.admin}: ${o.reason || "-"}`})),
  ].sort((a, b) => b.t - a.t);
  const list = $("admin-log");
  if (!rows.length) { list.replaceChildren(el("li", {class: "empty"}, "None.")); return; }
  list.replaceChildren(...rows.slice(0, 30).map((r) =>
    el("li", {}, el("span", {class: "kind"}, r.kind), `${hms(r.t)} ${r.text}`)));
}

function addScan(row, live) {
  if (feedSeen.has(row.scan_id)) return;
  feedSeen.add(row.scan_id);
  const ticket = row.ticket_id ? `${row.event}/${row.ticket_id}` + (row.seat ? ` · ${row.seat}` : "") : "–";
  let detail = row.reason ? (row.words || words(row.reason)) : "";
  if (row.first_gate) detail += ` · first at ${row.first_gate} ${hms(row.first_at)}`;
  if (row.detail && !row.first_gate) detail += (detail ? " · " : "") + row.detail;
  const tr = el("tr", {"data-scan": row.scan_id, "data-gate": row.gate_id, "data-outcome": row.outcome,
                       class: live ? "new" : null},
    el("td", {}, hms(row.received)), el("td", {}, row.gate_id),
    el("td", {}, el("span", {class: `oc ${row.outcome}`}, row.outcome),
      row.provisional ? el("span", {class: "prov", title: "decided while the arbiter was out of reach"}, "offline") : ""),
    el("td", {title: ticket}, ticket), el("td", {title: detail}, detail));
  const body = $("feed");
  body.prepend(tr);
  while (body.rows.length > FEED_ROWS) {
    feedSeen.delete(body.lastElementChild.dataset.scan);
    body.lastElementChild.remove();
  }
  if (live) flashGate(row.gate_id, row.outcome === "ADMIT");
}

function flashGate(gate, admitted) {
  const card = gateCards.get(gate);
  if (!card) return;
  const cls = admitted ? "flash-in" : "flash-out";
  card.classList.add(cls);
  setTimeout(() => card.classList.remove(cls), 150);
}

// -- ticket lookup and admin actions --------------------------------------------------------------------------
async function lookup(ev) {
  ev.preventDefault();
  const ticket = $("lookup-ticket").value.trim(), event = $("lookup-event").value.trim();
  const box = $("lookup");
  box.replaceChildren(el("p", {class: "empty"}, "Looking up…"));
  try {
    const q = new URLSearchParams({ticket});
    if (event) q.set("event", event);
    const r = await fetch(`/api/ticket?${q}`, {cache: "no-store"});
    if (r.status === 401) { window.location.assign("/login"); return; }
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || r.statusText);
    if (!data.rows.length) { box.replaceChildren(el("p", {class: "empty"}, `Nothing known about ${ticket}.`)); return; }
    box.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "time"), el("th", {}, "where"), el("th", {}, "what"))),
      el("tbody", {}, ...data.rows.map((row) => el("tr", {class: row.kind === "conflict" || row.conflict ? "conflict-row" : null,
                                                           "data-kind": row.kind},
        el("td", {}, hms(row.time)), el("td", {}, row.gate || row.source), el("td", {}, row.summary))))));
  } catch (err) {
    box.replaceChildren(el("p", {class: "result bad"}, `Lookup failed: ${err.message}`));
  }
}

async function act(ev) {
  ev.preventDefault();
  const action = $("admin-action").value;
  const body = {action, event: $("admin-event").value, ticket: $("admin-ticket").value,
                reason: $("admin-reason").value};
  const out = $("admin-result");
  out.className = "result";
  out.textContent = "Sending…";
  try {
    const r = await post(action === "revoke" ? "/api/revoke" : "/api/override", body);
    const data = await r.json();
    out.className = "result " + (data.ok ? "ok" : "bad");
    out.dataset.answer = data.answer;
    const what = action === "revoke" ? "revoked" : action === "admit" ? "admitted" : "un-redeemed";
    out.textContent = data.ok ? `Done: ${body.ticket} ${what}` + (data.seq ? ` (stream #${data.seq})` : "")
                              : `Not done (${data.answer}): ${data.detail || r.statusText}`;
    if (r.status === 401) window.location.assign("/login");
  } catch (err) {
    out.className = "result bad";
    out.textContent = `Not sent: ${err.message}`;
  }
}

function tick() {
  $("clock").textContent = hms(now());
  if (state && state.stale && !serverDown) showStale();  // "since HH:MM:SS (N s ago)" keeps counting
  for (const card of gateCards.values()) {
    const node = card.querySelector(".ago");
    if (node) node.textContent = ago(Number(card.dataset.heard));
  }
  if (!serverDown && Date.now() - lastMessage > SERVER_SILENT_MS) { serverDown = true; showStale(); }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("logout").addEventListener("click", logout);
  $("lookup-form").addEventListener("submit", lookup);
  $("admin-form").addEventListener("submit", act);
  $("admin-action").addEventListener("change", () => {
    $("admin-event").required = $("admin-action").value !== "revoke";
  });
  setInterval(tick, 1000);
  if (await checkSession()) connect();
});
