// ecgstream ward dashboard: login, ward overview, live alerts (Server-Sent Events), alert detail with the
// 12-lead strip, acknowledge. Plain ES module, no dependencies; talks only to the cloud HTTP API
// (same origin, session cookie). Every value from the server is inserted as text, never as HTML.

import { renderStrip } from "./strip.js";

const PRIORITY_RANK = { high: 0, medium: 1, low: 2 };
const PRIORITY_MARK = { high: "!!!", medium: "!!", low: "!" }; // IEC 60601-1-8 priority markers
const MAX_EPISODES = 300;
const WINDOW_RETRIES = 5;

/** Everything the page knows, rebuilt from the API after login or reconnect. */
const state = {
  user: null,
  ward: new Map(), // patient_id -> ward row
  episodes: new Map(), // episode key -> {key, alerts: Map(alert_id -> alert), latest, ack: {user, at_us}|null, level}
  lastSeq: 0,
  selectedKey: null,
  events: null,
  reconnectTimer: null,
  reconnectDelayMs: 1000,
  wardTimer: null,
  detailToken: 0,
};

const $ = (id) => document.getElementById(id);

// -- HTTP --------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  if (res.status !== 204) {
    const text = await res.text();
    try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && !path.startsWith("/api/auth/")) sessionLost();
    throw err;
  }
  return data;
}

// -- formatting --------------------------------------------------------------------------------

function fmtTime(us) {
  if (us === null || us === undefined) return "—";
  const d = new Date(us / 1000);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

function fmtAgo(us) {
  if (us === null || us === undefined) return "never";
  const s = Math.max(0, Math.round(Date.now() - us / 1000) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

function patientName(patientId) {
  const row = state.ward.get(patientId);
  return (row && row.display_name) || patientId;
}

function alertTitle(a) {
  return `${a.alert_type.replaceAll("_", " ")}`;
}

// -- views -------------------------------------------------------------------------------------

function showLogin(message = "") {
  $("login-view").hidden = false;
  $("dashboard-view").hidden = true;
  $("logout").hidden = true;
  $("whoami").hidden = true;
  $("login-error").textContent = message;
  setConnection("offline");
  $("login-username").focus();
}

function showDashboard() {
  $("login-view").hidden = true;
  $("dashboard-view").hidden = false;
  $("logout").hidden = false;
  $("whoami").hidden = false;
  $("whoami").textContent = `${state.user.username} (${state.user.role})`;
}

function setConnection(kind) {
  const node = $("connection");
  node.dataset.state = kind;
  node.textContent = { live: "live", reconnecting: "reconnecting…", offline: "offline" }[kind] || kind;
  node.title = kind === "live" ? "Receiving alerts live" : "Not receiving live alerts; retrying";
}

// -- ward --------------------------------------------------------------------------------------

const STATE_LABEL = { alarm: "alarm", technical: "technical alarm", ok: "ok", offline: "offline" };

function renderWard() {
  const body = $("ward-body");
  const rows = [...state.ward.values()].sort((a, b) =>
    stateRank(a.state) - stateRank(b.state) || String(a.display_name || a.patient_id).localeCompare(
      String(b.display_name || b.patient_id)));
  body.replaceChildren(...rows.map(wardRow));
  $("ward-empty").hidden = rows.length > 0;
}

function stateRank(s) {
  return { alarm: 0, technical: 1, offline: 2, ok: 3 }[s] ?? 4;
}

function wardRow(p) {
  const last = p.last_alert;
  const lastCell = last
    ? h("button", {
      type: "button", class: `link prio-text-${last.priority}`, "data-testid": "ward-last-alert",
      onclick: () => openAlert(episodeKey(last), last.alert_id),
    }, `${PRIORITY_MARK[last.priority] || ""} ${alertTitle(last)} · ${fmtTime(last.onset_gateway_us)}`)
    : "—";
  const battery = p.battery_pct === null || p.battery_pct === undefined ? "—" : `${p.battery_pct} %`;
  let conn = p.connected === null || p.connected === undefined ? "unknown" : p.connected ? "connected" : "disconnected";
  if (p.lead_off && p.lead_off.length) conn += ` · lead off: ${p.lead_off.join(", ")}`;
  const counts = [];
  if (p.active_clinical) counts.push(`${p.active_clinical} clinical`);
  if (p.active_technical) counts.push(`${p.active_technical} technical`);
  return h("tr", {
    class: `ward-row state-${p.state}`, "data-testid": "ward-row", "data-patient-id": p.patient_id,
    "data-state": p.state,
  },
  h("th", { scope: "row" }, p.display_name || p.patient_id,
    p.display_name && p.display_name !== p.patient_id ? h("span", { class: "muted" }, ` ${p.patient_id}`) : null),
  h("td", {}, h("span", { class: `state-badge state-${p.state}`, "data-testid": "ward-state" },
    STATE_LABEL[p.state] || p.state), counts.length ? h("span", { class: "muted" }, ` (${counts.join(", ")})`) : null),
  h("td", { "data-testid": "ward-hr" },
    p.heart_rate_bpm === null || p.heart_rate_bpm === undefined ? "—" : `${Math.round(p.heart_rate_bpm)} bpm`),
  h("td", {}, lastCell),
  h("td", { class: p.battery_pct !== null && p.battery_pct !== undefined && p.battery_pct < 20 ? "warn" : "",
    "data-testid": "ward-battery" }, battery),
  h("td", { "data-testid": "ward-connection", title: `last seen ${fmtAgo(p.last_seen_us)}` },
    p.device_id ? h("span", {}, conn, h("span", { class: "muted" }, ` ${p.device_id}`)) : "no device"),
  h("td", {}, p.assigned_to || "—"));
}

async function loadWard() {
  const data = await api("/api/ward");
  state.ward = new Map((data.patients || []).map((p) => [p.patient_id, p]));
  renderWard();
  renderAlerts(); // patient names may have changed
}

function scheduleWardRefresh() {
  if (state.wardTimer) return;
  state.wardTimer = setTimeout(async () => {
    state.wardTimer = null;
    try { await loadWard(); } catch (err) { console.warn("ward refresh failed", err); }
  }, 400);
}

// -- alerts ------------------------------------------------------------------------------------

function episodeKey(a) {
  return a.episode_id || a.alert_id;
}

/** Merge alerts (any order, duplicates allowed) into their episodes; returns the keys that changed. */
function mergeAlerts(alerts) {
  const changed = new Set();
  for (const a of alerts) {
    if (!a || !a.alert_id) continue;
    const key = episodeKey(a);
    let ep = state.episodes.get(key);
    if (!ep) {
      ep = { key, alerts: new Map(), latest: a, ack: null, level: 0 };
      state.episodes.set(key, ep);
    }
    ep.alerts.set(a.alert_id, a);
    if ((a.seq ?? 0) >= (ep.latest.seq ?? 0)) ep.latest = a;
    if (a.acknowledged && a.acknowledged_by) {
      ep.ack = { user: a.acknowledged_by, at_us: a.acknowledged_us };
    }
    ep.level = Math.max(ep.level, a.escalation_level || 0);
    if (a.seq) state.lastSeq = Math.max(state.lastSeq, a.seq);
    changed.add(key);
  }
  trimEpisodes();
  return changed;
}

function trimEpisodes() {
  if (state.episodes.size <= MAX_EPISODES) return;
  const oldest = [...state.episodes.values()].sort((a, b) => (a.latest.seq ?? 0) - (b.latest.seq ?? 0));
  for (const ep of oldest.slice(0, state.episodes.size - MAX_EPISODES)) {
    if (ep.key !== state.selectedKey) state.episodes.delete(ep.key);
  }
}

/** An episode is over when its last message cleared it (or the server says it is no longer active). */
function isCleared(ep) {
  return ep.latest.event === "cleared" || ep.latest.episode_active === false;
}

function highestPriority(ep) {
  let best = ep.latest.priority;
  for (const a of ep.alerts.values()) if (PRIORITY_RANK[a.priority] < PRIORITY_RANK[best]) best = a.priority;
  return isCleared(ep) ? ep.latest.priority : best;
}

function sortEpisodes(list) {
  return list.sort((a, b) =>
    Number(isCleared(a)) - Number(isCleared(b)) ||
    Number(Boolean(a.ack)) - Number(Boolean(b.ack)) ||
    PRIORITY_RANK[highestPriority(a)] - PRIORITY_RANK[highestPriority(b)] ||
    (b.latest.seq ?? 0) - (a.latest.seq ?? 0));
}

function alertItem(ep) {
  const a = ep.latest;
  const prio = highestPriority(ep);
  const cleared = isCleared(ep);
  const status = [a.event || "raised", ep.ack ? `acknowledged by ${ep.ack.user}` : "unacknowledged"];
  if (ep.level > 0) status.push(`escalated to level ${ep.level}`);
  const label = `${prio} priority ${a.category} alert: ${alertTitle(a)} for ${patientName(a.patient_id)}, ` +
    `${fmtTime(a.onset_gateway_us)}, ${status.join(", ")}`;
  return h("li", {
    class: `alert-item prio-${prio}${cleared ? " cleared" : ""}${ep.ack ? " acked" : ""}` +
      `${ep.key === state.selectedKey ? " selected" : ""}`,
    "data-testid": "alert-item", "data-alert-id": a.alert_id, "data-episode-id": ep.key, "data-priority": prio,
    "data-category": a.category, "data-event": a.event || "", "data-acknowledged": ep.ack ? "true" : "false",
    "data-patient-id": a.patient_id,
  },
  h("button", { type: "button", class: "alert-open", "data-testid": "alert-open", "aria-label": label,
    "aria-pressed": ep.key === state.selectedKey ? "true" : "false",
    onclick: () => openAlert(ep.key, a.alert_id) },
  h("span", { class: `prio-badge prio-${prio}`, "aria-hidden": "true" }, `${PRIORITY_MARK[prio]} ${prio}`),
  h("span", { class: "alert-main" },
    h("span", { class: "alert-patient" }, patientName(a.patient_id)),
    h("span", { class: "alert-type" }, alertTitle(a)),
    a.message ? h("span", { class: "alert-message" }, a.message) : null),
  h("span", { class: "alert-side" },
    h("time", { datetime: new Date(a.onset_gateway_us / 1000).toISOString() }, fmtTime(a.onset_gateway_us)),
    h("span", { class: "alert-status", "data-testid": "alert-status" }, status.join(" · ")))));
}

function renderAlerts() {
  // Keep keyboard focus on the same alert across re-renders.
  const focused = document.activeElement && document.activeElement.closest("[data-testid=alert-item]");
  const focusKey = focused ? focused.dataset.episodeId : null;
  for (const category of ["clinical", "technical"]) {
    const list = $(`${category}-list`);
    const eps = sortEpisodes([...state.episodes.values()].filter((ep) => ep.latest.category === category));
    list.replaceChildren(...eps.map(alertItem));
    if (focusKey) {
      const again = [...list.children].find((li) => li.dataset.episodeId === focusKey);
      if (again) again.querySelector("button").focus();
    }
    const active = eps.filter((ep) => !isCleared(ep) && !ep.ack).length;
    $(`${category}-count`).textContent = String(active);
    $(`${category}-count`).title = `${active} active unacknowledged`;
    document.querySelector(`[data-empty-for="${category}-list"]`).hidden = eps.length > 0;
  }
}

async function loadAlerts() {
  const data = await api("/api/alerts?limit=200");
  mergeAlerts(data.alerts || []);
  renderAlerts();
}

async function catchUp() {
  // Alerts stored while the feed was down (or between the first load and the feed's start).
  const data = await api(`/api/alerts?after_seq=${state.lastSeq}&limit=500`);
  if ((data.alerts || []).length) {
    mergeAlerts(data.alerts);
    renderAlerts();
    scheduleWardRefresh();
  }
}

// -- live feed ---------------------------------------------------------------------------------

function openEvents() {
  closeEvents();
  const es = new EventSource("/api/events");
  state.events = es;
  es.addEventListener("open", () => {
    setConnection("live");
    state.reconnectDelayMs = 1000;
    catchUp().catch((err) => console.warn("catch-up failed", err));
  });
  es.addEventListener("error", () => {
    if (state.events !== es) return;
    setConnection("reconnecting");
    if (es.readyState === EventSource.CLOSED) scheduleReconnect();
  });
  es.addEventListener("alert", (ev) => onAlertEvent(parse(ev)));
  es.addEventListener("ack", (ev) => onAckEvent(parse(ev)));
  es.addEventListener("escalation", (ev) => onEscalationEvent(parse(ev)));
  es.addEventListener("status", (ev) => onStatusEvent(parse(ev)));
}

function parse(ev) {
  try { return JSON.parse(ev.data); } catch { return null; }
}

function closeEvents() {
  if (state.events) state.events.close();
  state.events = null;
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = null;
}

function scheduleReconnect() {
  clearTimeout(state.reconnectTimer);
  const delay = state.reconnectDelayMs;
  state.reconnectDelayMs = Math.min(30000, delay * 2);
  state.reconnectTimer = setTimeout(async () => {
    try {
      await api("/api/me"); // a 401 here shows the login form instead
      openEvents();
    } catch (err) {
      if (err.status !== 401) scheduleReconnect();
    }
  }, delay);
}

function announce(text) {
  const node = $("announcer");
  node.textContent = "";
  setTimeout(() => { node.textContent = text; }, 50); // a change, so screen readers speak it again
}

function onAlertEvent(a) {
  if (!a) return;
  const isNew = !state.episodes.has(episodeKey(a));
  const changed = mergeAlerts([a]);
  if (isNew || a.event === "escalated") {
    announce(`${a.event === "escalated" ? "Escalated" : "New"} ${a.priority} priority ${a.category} alert: ` +
      `${alertTitle(a)} for ${patientName(a.patient_id)}`);
  }
  renderAlerts();
  scheduleWardRefresh();
  if (state.selectedKey && changed.has(state.selectedKey)) refreshDetailFacts();
}

function onAckEvent(data) {
  if (!data) return;
  const key = data.episode_id || data.alert_id;
  const ep = state.episodes.get(key);
  if (ep) {
    ep.ack = { user: data.user, at_us: data.at_us };
    for (const a of ep.alerts.values()) Object.assign(a, { acknowledged: true, acknowledged_by: data.user, acknowledged_us: data.at_us });
  }
  renderAlerts();
  scheduleWardRefresh();
  if (key === state.selectedKey) renderAck();
}

function onEscalationEvent(data) {
  if (!data) return;
  const ep = state.episodes.get(data.episode_id || data.alert_id);
  if (ep) ep.level = Math.max(ep.level, data.level || 0);
  renderAlerts();
  if (ep && ep.key === state.selectedKey) refreshDetailFacts();
}

function onStatusEvent(row) {
  if (!row || !row.patient_id) return;
  state.ward.set(row.patient_id, { ...(state.ward.get(row.patient_id) || {}), ...row });
  renderWard();
}

// -- detail ------------------------------------------------------------------------------------

async function openAlert(key, alertId) {
  state.selectedKey = key;
  const token = ++state.detailToken;
  const panel = $("detail");
  panel.hidden = false;
  panel.dataset.episodeId = key;
  panel.dataset.alertId = alertId;
  renderAlerts();
  let alert = state.episodes.get(key)?.alerts.get(alertId);
  try {
    alert = await api(`/api/alerts/${encodeURIComponent(alertId)}`);
    if (token !== state.detailToken) return;
    mergeAlerts([alert]);
  } catch (err) {
    if (token !== state.detailToken) return;
    if (!alert) {
      $("detail-title").textContent = "Alert not found";
      $("detail-facts").replaceChildren(h("p", { class: "error" }, err.message));
      return;
    }
  }
  refreshDetailFacts();
  $("detail-title").focus();
  await loadStrip(token);
}

function selectedEpisode() {
  return state.selectedKey ? state.episodes.get(state.selectedKey) : null;
}

/**
 * The windows an alert names as its ECG evidence (``details.evidence_window_ids``: the windows covering
 * the alarm's deciding samples, oldest first, e.g. the whole pause of an asystole), with ``window_id``.
 */
function evidenceIds(a) {
  const named = a && a.details && Array.isArray(a.details.evidence_window_ids) ? a.details.evidence_window_ids : [];
  const ids = named.filter((x) => typeof x === "string");
  if (a && a.window_id && !ids.includes(a.window_id)) ids.push(a.window_id);
  return ids;
}

/** The alert whose window to show: the episode's raising alert if it has one, else the latest with a window. */
function windowAlert(ep) {
  const withWindow = [...ep.alerts.values()].filter((a) => evidenceIds(a).length)
    .sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  return withWindow.find((a) => a.event === "raised") || withWindow[withWindow.length - 1] || null;
}

function refreshDetailFacts() {
  const ep = selectedEpisode();
  if (!ep) return;
  const a = ep.latest;
  const prio = highestPriority(ep);
  const panel = $("detail");
  panel.className = `panel detail prio-${prio}`;
  panel.dataset.priority = prio;
  $("detail-title").textContent = `${PRIORITY_MARK[prio]} ${alertTitle(a)} — ${patientName(a.patient_id)}`;
  const facts = [
    ["Priority", `${prio} (${a.category})`],
    ["Patient", `${patientName(a.patient_id)} (${a.patient_id})`],
    ["Device", a.device_id],
    ["Onset", fmtTime(a.onset_gateway_us)],
    ["Received", fmtTime(a.received_us)],
    ["State", a.event || "raised"],
    ["Message", a.message || "—"],
  ];
  const d = a.details || {};
  if (d.heart_rate_bpm !== undefined) facts.push(["Heart rate", `${Math.round(d.heart_rate_bpm)} bpm`]);
  if (d.rate_bpm !== undefined) facts.push(["Rate", `${Math.round(d.rate_bpm)} bpm`]);
  if (d.probability !== undefined) facts.push(["Model probability", String(d.probability)]);
  if (ep.level > 0) facts.push(["Escalation", `level ${ep.level}`]);
  const recon = Object.entries(a.reconstructed_leads || {});
  if (recon.length) {
    facts.push(["Rests on reconstructed leads",
      recon.map(([lead, u]) => `${lead} (±${Number(u).toFixed(3)} mV)`).join(", ")]);
  }
  const mv = a.model_versions || {};
  if (mv.reconstruction) {
    facts.push(["Reconstruction", mv.reconstruction_calibration
      ? `calibrated to this patient's own 12-lead ECG (${mv.reconstruction_calibration})`
      : "generic (not calibrated to this patient; less accurate)"]);
  }
  const versions = Object.entries(a.model_versions || {});
  if (versions.length) facts.push(["Models", versions.map(([k, v]) => `${k} ${v}`).join(", ")]);
  for (const r of a.results || []) {
    const outputs = Object.entries(r).filter(([k]) => !["model", "version"].includes(k))
      .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
    facts.push([`${r.model || "model"} ${r.version || ""}`.trim(), outputs || "—"]);
  }
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  renderAck();
}

function renderAck() {
  const ep = selectedEpisode();
  if (!ep) return;
  const button = $("ack-button");
  const stateNode = $("ack-state");
  if (ep.ack) {
    button.disabled = true;
    button.textContent = "Acknowledged";
    stateNode.textContent = `Acknowledged by ${ep.ack.user} at ${fmtTime(ep.ack.at_us)}`;
    stateNode.dataset.acknowledgedBy = ep.ack.user;
  } else {
    button.disabled = false;
    button.textContent = "Acknowledge";
    stateNode.textContent = "Not acknowledged";
    delete stateNode.dataset.acknowledgedBy;
  }
}

async function acknowledge() {
  const ep = selectedEpisode();
  if (!ep) return;
  const button = $("ack-button");
  button.disabled = true;
  $("ack-state").textContent = "Acknowledging…";
  try {
    const rec = await api(`/api/alerts/${encodeURIComponent(ep.latest.alert_id)}/ack`, { method: "POST", body: { note: "" } });
    const user = (rec && (rec.user || rec.username || rec.acknowledged_by)) || state.user.username;
    const at = (rec && (rec.at_us || rec.acknowledged_us)) || Date.now() * 1000;
    onAckEvent({ episode_id: ep.key, alert_id: ep.latest.alert_id, user, at_us: at });
  } catch (err) {
    $("ack-state").textContent = `Could not acknowledge: ${err.message}`;
    button.disabled = false;
  }
}

/** Earlier / later buttons over an alert's evidence windows (none when there is one). */
function evidenceNav(ids, index) {
  if (ids.length < 2) return null;
  const go = (i) => loadStrip(state.detailToken, i);
  return h("div", { class: "evidence-nav", "data-testid": "evidence-nav", "data-index": index, "data-count": ids.length },
    h("button", { type: "button", disabled: index === 0, onclick: () => go(index - 1) }, "◀ Earlier"),
    h("span", {}, ` ECG ${index + 1} of ${ids.length} around this alarm `),
    h("button", { type: "button", disabled: index === ids.length - 1, onclick: () => go(index + 1) }, "Later ▶"));
}

async function loadStrip(token, index = null) {
  const ep = selectedEpisode();
  const container = $("strip-container");
  const caption = $("strip-caption");
  container.replaceChildren();
  container.dataset.state = "loading";
  const a = ep && windowAlert(ep);
  if (!a) {
    caption.textContent = "No ECG window is attached to this alert.";
    container.dataset.state = "none";
    return;
  }
  const ids = evidenceIds(a);
  const at = index ?? Math.max(0, ids.indexOf(a.window_id));
  const windowId = ids[at];
  caption.textContent = "Loading the ECG…";
  for (let attempt = 0; attempt <= WINDOW_RETRIES; attempt++) {
    try {
      const win = await api(`/api/windows/${encodeURIComponent(windowId)}`);
      if (token !== state.detailToken) return;
      const recon = win.reconstructed || [];
      const leads = win.leads || [];
      const gaps = win.gaps || [];
      const what = leads.length === 12 ? "12-lead ECG" : `ECG (${leads.join(", ")})`;
      caption.textContent = `${what} at ${fmtTime(win.t0_us)} · ${win.fs_hz} Hz · 25 mm/s · 10 mm/mV` +
        (recon.length ? ` · reconstructed (not measured): ${recon.join(", ")}` : " · all leads measured") +
        (gaps.length ? " · shaded: no data (lost in transmission)" : "");
      const nav = evidenceNav(ids, at);
      container.replaceChildren(...(nav ? [nav] : []), renderStrip(win));
      container.dataset.state = "ready";
      return;
    } catch (err) {
      if (token !== state.detailToken) return;
      if (err.status !== 404 || attempt === WINDOW_RETRIES) {
        caption.textContent = `The ECG window could not be loaded: ${err.message}`;
        container.dataset.state = "error";
        container.append(h("button", { type: "button", onclick: () => loadStrip(state.detailToken, at) }, "Retry"));
        return;
      }
      caption.textContent = "The ECG window has not arrived yet (it is cut and sent after the alarm); retrying…";
      await new Promise((r) => setTimeout(r, 1500));
    }
  }
}

function closeDetail() {
  state.selectedKey = null;
  state.detailToken++;
  $("detail").hidden = true;
  renderAlerts();
}

// -- session -----------------------------------------------------------------------------------

function sessionLost() {
  if (!state.user) return;
  state.user = null;
  closeEvents();
  showLogin("Your session has ended; please log in again.");
}

async function start() {
  showDashboard();
  setConnection("reconnecting");
  await loadWard();
  await loadAlerts();
  openEvents();
}

async function onLogin(ev) {
  ev.preventDefault();
  const form = ev.target;
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  $("login-error").textContent = "";
  try {
    const res = await api("/api/auth/login", {
      method: "POST", body: { username: form.username.value, password: form.password.value },
    });
    state.user = res.user;
    form.password.value = "";
    await start();
  } catch (err) {
    const msg = err.code === "rate_limited" ? "Too many failed attempts; wait a few minutes."
      : err.status === 401 ? "Wrong user name or password." : `Log-in failed: ${err.message}`;
    $("login-error").textContent = msg;
  } finally {
    submit.disabled = false;
  }
}

async function onLogout() {
  closeEvents();
  try { await api("/api/auth/logout", { method: "POST" }); } catch { /* the session is gone either way */ }
  state.user = null;
  state.episodes.clear();
  state.lastSeq = 0;
  closeDetail();
  showLogin();
}

async function init() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("ack-button").addEventListener("click", acknowledge);
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && state.selectedKey) closeDetail(); });
  setInterval(() => { if (state.user) renderWard(); }, 30000); // keep "last seen" ages fresh
  try {
    state.user = await api("/api/me");
    await start();
  } catch {
    state.user = null;
    showLogin();
  }
}

init();
