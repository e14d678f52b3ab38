// ecgstream ward dashboard: login, the ward as a monitor (a tile per bed with its live ECG, heart rate,
// signal quality, battery and connection, updated every second), live alerts (Server-Sent Events) with
// IEC 60601-1-8 colours, markers and sounds, alert detail with the 12-lead strip, acknowledge. Plain ES
// modules, no dependencies; talks only to the cloud HTTP API (same origin, session cookie). Every value
// from the server is inserted as text, never as HTML.

import { ApiError, request } from "./api.js";
import { AlarmAudio } from "./audio.js";
import { LiveTrace } from "./live.js";
import { renderStrip } from "./strip.js";
import { describeResult, plainSummary, renderDeliveries } from "./detail.js";
import { initReview, showView } from "./review.js";

const PRIORITY_RANK = { high: 0, medium: 1, low: 2 };
const PRIORITY_MARK = { high: "!!!", medium: "!!", low: "!" }; // IEC 60601-1-8 priority markers
const MAX_EPISODES = 300;
const WINDOW_RETRIES = 5;
const VITALS_STALE_MS = 5000; // no vitals from the gateway for this long: communication lost
const DATA_STALE_S = 5; // the device's data older than this: no data
const EDGE_SILENT_MS = 10000; // no vitals from any gateway for this long: page banner
const DRAW_EVERY_MS = 40; // trace frame rate (25 per second)

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
  live: new Map(), // patient_id -> {trace: LiveTrace, vitals, vitalsAt (Date.now() of arrival)}
  tiles: new Map(), // patient_id -> the tile's nodes
  lead: "II",
  feedUp: false,
  feedDownSince: null,
  lastVitalsAt: 0,
  audio: null,
};

const $ = (id) => document.getElementById(id);

// -- HTTP --------------------------------------------------------------------------------------

async function api(path, options) {
  try {
    return await request(path, options);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && !path.startsWith("/api/auth/")) sessionLost();
    throw err;
  }
}

// -- formatting --------------------------------------------------------------------------------

function fmtTime(us) {
  if (us === null || us === undefined) return "—";
  const d = new Date(us / 1000);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

function fmtAge(seconds) {
  const s = Math.max(0, seconds);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
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

// Names staff read on a central station; any other type is shown as its words.
const ALERT_NAMES = {
  vt: "VT", vf: "VF", svt: "SVT", af: "AF", aflutter: "Atrial flutter", st_change: "ST change",
  asystole: "Asystole", pause: "Pause", extreme_tachycardia: "Extreme tachycardia",
  extreme_bradycardia: "Extreme bradycardia",
};

function alertTitle(a) {
  return ALERT_NAMES[a.alert_type] || a.alert_type.replaceAll("_", " ");
}

// -- views -------------------------------------------------------------------------------------

function showLogin(message = "") {
  $("login-view").hidden = false;
  $("dashboard-view").hidden = true;
  $("logout").hidden = true;
  $("whoami").hidden = true;
  $("audio").hidden = true;
  $("admin-link").hidden = true;
  $("feed-banner").hidden = true;
  $("view-tabs").hidden = true;
  for (const id of ["history-view", "timeline-view", "detail"]) $(id).hidden = true;
  if (state.audio) state.audio.set(null);
  $("login-error").textContent = message;
  setConnection("offline");
  $("login-username").focus();
}

function showDashboard() {
  $("login-view").hidden = true;
  $("dashboard-view").hidden = false;
  $("logout").hidden = false;
  $("whoami").hidden = false;
  $("audio").hidden = false;
  $("admin-link").hidden = state.user.role !== "admin";
  $("whoami").textContent = `${state.user.username} (${state.user.role})`;
  $("view-tabs").hidden = false;
}

function setConnection(kind) {
  const node = $("connection");
  node.dataset.state = kind;
  node.textContent = { live: "live", reconnecting: "reconnecting…", offline: "offline" }[kind] || kind;
  node.title = kind === "live" ? "Receiving alerts live" : "Not receiving live alerts; retrying";
}

// -- ward: a tile per bed ------------------------------------------------------------------------

const STATE_LABEL = { alarm: "alarm", technical: "technical alarm", ok: "ok", offline: "offline" };
const CONN_LABEL = { live: "live", "no-data": "NO DATA", "comm-lost": "COMMUNICATION LOST", stale: "not live" };

function liveOf(patientId) {
  let live = state.live.get(patientId);
  if (!live) {
    live = { trace: new LiveTrace(), vitals: null, vitalsAt: 0 };
    state.live.set(patientId, live);
  }
  return live;
}

/** The bed's highest-priority active (not cleared) alarm episode, unacknowledged first; or null. */
function topAlarm(patientId) {
  let best = null;
  for (const ep of state.episodes.values()) {
    if (ep.latest.patient_id !== patientId || isCleared(ep)) continue;
    const rank = PRIORITY_RANK[highestPriority(ep)] * 2 + (ep.ack ? 1 : 0);
    if (!best || rank < best.rank || (rank === best.rank && (ep.latest.seq ?? 0) > (best.ep.latest.seq ?? 0))) {
      best = { ep, rank };
    }
  }
  return best ? best.ep : null;
}

/**
 * How the bed's data stands now: {kind: live | no-data | comm-lost | stale, text, ageS}. The page's own
 * feed lost makes every bed "stale"; no vitals from the gateway for VITALS_STALE_MS, or the device not
 * connected to it, is "communication lost"; a connected device without recent data is "no data".
 */
function connection(row, live) {
  const now = Date.now();
  const v = live && live.vitals;
  const ageS = v ? (now - live.vitalsAt) / 1000 + (v.last_data_age_s ?? 0) : null;
  if (!state.feedUp && state.feedDownSince) return { kind: "stale", text: "server connection lost", ageS };
  if (v) {
    if (now - live.vitalsAt > VITALS_STALE_MS) {
      return { kind: "comm-lost", text: `no update from the gateway for ${fmtAge((now - live.vitalsAt) / 1000)}`, ageS };
    }
    if (!v.connected) return { kind: "comm-lost", text: `device not connected; last data ${fmtAge(ageS)} ago`, ageS };
    if (v.last_data_age_s === null || v.last_data_age_s === undefined) return { kind: "no-data", text: "no data yet", ageS };
    if (ageS > DATA_STALE_S) return { kind: "no-data", text: `no data for ${fmtAge(ageS)}`, ageS };
    return { kind: "live", text: "live", ageS };
  }
  if (row && row.connected === false) return { kind: "comm-lost", text: "device disconnected", ageS: null };
  return { kind: "no-data", text: "no live data from this bed", ageS: null };
}

function sqiWord(sqi) {
  if (sqi === null || sqi === undefined) return "—";
  return sqi >= 0.8 ? "good" : sqi >= 0.5 ? "fair" : "poor";
}

function makeTile(patientId) {
  const t = {};
  t.name = h("span", { class: "tile-name" });
  t.alarm = h("button", { type: "button", class: "tile-alarm", "data-testid": "ward-last-alert", hidden: true });
  t.state = h("span", { class: "state-badge", "data-testid": "ward-state" });
  t.canvas = h("canvas", { class: "tile-ecg", "data-testid": "tile-ecg", "aria-hidden": "true" });
  t.lead = h("span", { class: "tile-lead", "data-testid": "tile-lead" });
  t.banner = h("div", { class: "tile-comm", "data-testid": "tile-comm", role: "status" });
  t.hr = h("span", { class: "vital-value", "data-testid": "ward-hr" });
  t.hrNote = h("span", { class: "vital-note", "data-testid": "tile-hr-note" });
  t.sqi = h("span", { class: "vital-value", "data-testid": "tile-sqi" });
  t.battery = h("span", { class: "vital-value", "data-testid": "ward-battery" });
  t.conn = h("span", { class: "vital-value", "data-testid": "ward-connection" });
  t.device = h("span", { class: "muted tile-device" });
  const vital = (label, ...value) => h("div", { class: "vital" }, h("span", { class: "vital-label" }, label), ...value);
  t.node = h("article", { class: "tile", role: "listitem", "data-testid": "ward-row", "data-patient-id": patientId },
    h("header", { class: "tile-head" }, t.name, t.state, t.alarm),
    h("div", { class: "tile-wave" }, t.canvas, t.lead, t.banner),
    h("div", { class: "tile-vitals" },
      vital("HR", t.hr, t.hrNote), vital("Signal", t.sqi), vital("Battery", t.battery), vital("Link", t.conn)),
    t.device);
  t.alarm.addEventListener("click", () => {
    const ep = topAlarm(patientId);
    if (ep) openAlert(ep.key, ep.latest.alert_id);
  });
  return t;
}

function renderWard() {
  const grid = $("ward-grid");
  // beds keep their places (as on a central station): alarms show on the tile and in the lists
  const rows = [...state.ward.values()].sort((a, b) =>
    String(a.display_name || a.patient_id).localeCompare(String(b.display_name || b.patient_id), undefined,
      { numeric: true }) || String(a.patient_id).localeCompare(String(b.patient_id)));
  const wanted = new Set(rows.map((r) => r.patient_id));
  for (const [pid, t] of state.tiles) if (!wanted.has(pid)) { t.node.remove(); state.tiles.delete(pid); }
  rows.forEach((row, i) => {
    let t = state.tiles.get(row.patient_id);
    if (!t) { t = makeTile(row.patient_id); state.tiles.set(row.patient_id, t); }
    if (grid.children[i] !== t.node) grid.insertBefore(t.node, grid.children[i] || null);
    updateTile(row, t);
  });
  $("ward-empty").hidden = rows.length > 0;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function updateTile(p, t) {
  const live = state.live.get(p.patient_id);
  const v = live && live.vitals;
  const conn = connection(p, live);
  const ep = topAlarm(p.patient_id);
  const prio = ep ? highestPriority(ep) : "none";
  const stale = conn.kind !== "live";
  t.node.className = `tile prio-${prio} conn-${conn.kind}${ep && ep.ack ? " acked" : ""}`;
  Object.assign(t.node.dataset, { state: p.state, conn: conn.kind, alarmPriority: prio });
  setText(t.name, p.display_name || p.patient_id);
  t.name.title = p.patient_id;
  // live vitals now say the device is connected: the server's "offline" (no device status yet) is stale
  const shownState = p.state === "offline" && conn.kind === "live" ? "ok" : p.state;
  t.state.className = `state-badge state-${shownState}`;
  setText(t.state, STATE_LABEL[shownState] || shownState);
  if (ep) {
    const a = ep.latest;
    t.alarm.hidden = false;
    t.alarm.className = `tile-alarm prio-badge prio-${prio}${ep.ack ? " acked" : ""}`;
    setText(t.alarm, `${PRIORITY_MARK[prio]} ${alertTitle(a)}${ep.ack ? " (ack)" : ""}`);
    t.alarm.setAttribute("aria-label", `${prio} priority ${a.category} alarm: ${alertTitle(a)} since ` +
      `${fmtTime(a.onset_gateway_us)}${ep.ack ? ", acknowledged" : ""}. Open`);
    t.alarm.dataset.priority = prio;
  } else {
    t.alarm.hidden = true;
  }
  // the trace's lead: the chosen one, else the first the bed streams
  const leads = live ? live.trace.leads() : [];
  t.canvas.dataset.lead = leads.includes(state.lead) ? state.lead : (leads[0] || state.lead);
  setText(t.lead, leads.length ? t.canvas.dataset.lead : "");
  t.banner.hidden = !stale;
  t.banner.dataset.kind = conn.kind;
  setText(t.banner, stale ? `${CONN_LABEL[conn.kind]} — ${conn.text}` : "");
  // values: live ones, greyed with their age once they are not
  const age = conn.ageS !== null && stale ? ` · ${fmtAge(conn.ageS)} old` : "";
  let hr = "—";
  let note = "";
  if (v && v.heart_rate_bpm !== null && v.heart_rate_bpm !== undefined) {
    hr = `${Math.round(v.heart_rate_bpm)} bpm`;
    note = age;
  } else if (!v && p.heart_rate_bpm !== null && p.heart_rate_bpm !== undefined) {
    hr = `${Math.round(p.heart_rate_bpm)} bpm`; // no live vitals: the last alert's, said so
    note = " (at last alert)";
  }
  setText(t.hr, hr);
  setText(t.hrNote, note);
  const sqi = v ? v.sqi : null;
  setText(t.sqi, sqi === null || sqi === undefined ? "—" : `${sqiWord(sqi)} (${Math.round(sqi * 100)} %)${age}`);
  const battery = v && v.battery_pct !== null && v.battery_pct !== undefined ? v.battery_pct : p.battery_pct;
  setText(t.battery, battery === null || battery === undefined ? "—" : `${battery} %`);
  t.battery.classList.toggle("warn", battery !== null && battery !== undefined && battery < 20);
  let link = conn.kind === "live" ? "connected" : conn.text;
  const leadOff = (v && v.lead_off) || p.lead_off || [];
  if (leadOff.length) link += ` · lead off: ${leadOff.join(", ")}`;
  setText(t.conn, link);
  for (const node of [t.hr, t.sqi, t.battery]) node.classList.toggle("stale", stale && node.textContent !== "—");
  setText(t.device, p.device_id ? `${p.device_id}${p.assigned_to ? ` · ${p.assigned_to}` : ""}` : "no device");
}

/** Every trace, DRAW_EVERY_MS apart (the tiles' numbers update once a second, renderWard). */
function drawTraces(nowPerf) {
  if (!state.lastDraw || nowPerf - state.lastDraw >= DRAW_EVERY_MS) {
    state.lastDraw = nowPerf;
    for (const [pid, t] of state.tiles) {
      const live = state.live.get(pid);
      if (live && t.node.isConnected) live.trace.draw(t.canvas, t.canvas.dataset.lead || state.lead, nowPerf);
    }
  }
  requestAnimationFrame(drawTraces);
}

/** Page banner: the feed lost (everything on screen is old), or no gateway heard from. */
function renderBanner() {
  const banner = $("feed-banner");
  if (!state.user) { banner.hidden = true; return; }
  const now = Date.now();
  let kind = "";
  let text = "";
  if (!state.feedUp && state.feedDownSince) {
    kind = "feed";
    text = `No connection to the central station since ${fmtTime(state.feedDownSince * 1000)} ` +
      `(${fmtAge((now - state.feedDownSince) / 1000)}): alarms and values shown are NOT live. Reconnecting…`;
  } else if (state.feedUp && state.lastVitalsAt && now - state.lastVitalsAt > EDGE_SILENT_MS) {
    kind = "edge";
    text = `No data from the edge gateway for ${fmtAge((now - state.lastVitalsAt) / 1000)}: values shown are NOT live.`;
  }
  banner.hidden = !kind;
  banner.dataset.kind = kind;
  setText($("feed-banner-text"), text);
  document.body.classList.toggle("not-live", Boolean(kind));
}

// -- audio ---------------------------------------------------------------------------------------

const AUDIO_TEXT = {
  off: "AUDIO OFF", paused: "AUDIO PAUSED", blocked: "Click anywhere to allow alarm sounds",
  silent: "Audio: no alarm", high: "Sounding: high priority", medium: "Sounding: medium priority",
  low: "Sounding: low priority",
};

function renderAudio() {
  const audio = state.audio;
  if (!audio) return;
  const st = audio.state;
  const box = $("audio");
  box.dataset.state = st;
  box.dataset.bursts = String(audio.bursts);
  let text = AUDIO_TEXT[st] || st;
  if (st === "paused") {
    const left = Math.ceil(audio.pausedLeftMs() / 1000);
    text += ` ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  }
  setText($("audio-label"), text);
  const pause = $("audio-pause");
  setText(pause, audio.mode === "paused" ? "Resume audio" : "Pause audio 2 min");
  const off = $("audio-off");
  off.setAttribute("aria-pressed", audio.mode === "off" ? "true" : "false");
  setText(off, audio.mode === "off" ? "Audio on" : "Audio off");
}

/** The priority to sound: the highest among active, unacknowledged alarms. */
function updateAudio() {
  if (!state.audio) return;
  let best = null;
  for (const ep of state.episodes.values()) {
    if (isCleared(ep) || ep.ack) continue;
    const p = highestPriority(ep);
    if (best === null || PRIORITY_RANK[p] < PRIORITY_RANK[best]) best = p;
  }
  state.audio.set(state.user ? best : null);
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

/**
 * The active lists hold the episodes whose condition is still on (acknowledged ones stay, dimmed and
 * silent, as IEC 60601-1-8 asks while the condition lasts); a cleared episode moves to its list's
 * history. Each count is the number of items its list shows.
 */
function renderAlerts() {
  // Keep keyboard focus on the same alert across re-renders.
  const focused = document.activeElement && document.activeElement.closest("[data-testid=alert-item]");
  const focusKey = focused ? focused.dataset.episodeId : null;
  for (const category of ["clinical", "technical"]) {
    const list = $(`${category}-list`);
    const all = sortEpisodes([...state.episodes.values()].filter((ep) => ep.latest.category === category));
    const active = all.filter((ep) => !isCleared(ep));
    const cleared = all.filter((ep) => isCleared(ep));
    list.replaceChildren(...active.map(alertItem));
    $(`${category}-history`).replaceChildren(...cleared.map(alertItem));
    for (const container of [list, $(`${category}-history`)]) {
      if (!focusKey) continue;
      const again = [...container.children].find((li) => li.dataset.episodeId === focusKey);
      if (again) again.querySelector("button").focus();
    }
    const unacked = active.filter((ep) => !ep.ack).length;
    $(`${category}-count`).textContent = String(active.length);
    $(`${category}-count`).title = `${active.length} active, ${unacked} not acknowledged`;
    $(`${category}-history-count`).textContent = String(cleared.length);
    document.querySelector(`[data-empty-for="${category}-list"]`).hidden = active.length > 0;
  }
  updateAudio();
  if (state.tiles.size) renderWard();
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
    state.feedUp = true;
    state.feedDownSince = null;
    state.reconnectDelayMs = 1000;
    renderBanner();
    catchUp().catch((err) => console.warn("catch-up failed", err));
  });
  es.addEventListener("error", () => {
    if (state.events !== es) return;
    setConnection("reconnecting");
    feedLost();
    if (es.readyState === EventSource.CLOSED) scheduleReconnect();
  });
  es.addEventListener("live", (ev) => onLiveEvent(parse(ev)));
  es.addEventListener("vitals", (ev) => onVitalsEvent(parse(ev)));
  es.addEventListener("alert", (ev) => onAlertEvent(parse(ev)));
  es.addEventListener("ack", (ev) => onAckEvent(parse(ev)));
  es.addEventListener("escalation", (ev) => onEscalationEvent(parse(ev)));
  es.addEventListener("status", (ev) => onStatusEvent(parse(ev)));
}

function parse(ev) {
  try { return JSON.parse(ev.data); } catch { return null; }
}

function feedLost() {
  if (state.feedUp || !state.feedDownSince) state.feedDownSince = Date.now();
  state.feedUp = false;
  renderBanner();
  renderWard();
}

function onLiveEvent(c) {
  if (!c || !c.patient_id) return;
  liveOf(c.patient_id).trace.add(c);
}

function onVitalsEvent(v) {
  if (!v || !v.patient_id) return;
  const live = liveOf(v.patient_id);
  live.vitals = v;
  live.vitalsAt = Date.now();
  state.lastVitalsAt = live.vitalsAt;
  const t = state.tiles.get(v.patient_id);
  const row = state.ward.get(v.patient_id);
  if (t && row) updateTile(row, t);
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
  // plain words first: what, when, how likely, which leads were reconstructed and how sure
  $("detail-summary").replaceChildren(...plainSummary(a, {
    title: alertTitle(a), patient: patientName(a.patient_id), priority: prio, cleared: isCleared(ep),
    level: ep.level, fmtTime,
  }).map((line) => h("span", { class: "summary-line" }, line)));
  const facts = [
    ["Patient", `${patientName(a.patient_id)} (${a.patient_id})`],
    ["Device", a.device_id],
    ["Onset", fmtTime(a.onset_gateway_us)],
    ["Received", fmtTime(a.received_us)],
    ["State", a.event || "raised"],
  ];
  if (a.message) facts.push(["Edge message", a.message]);
  const mv = a.model_versions || {};
  if (mv.reconstruction) {
    facts.push(["Reconstruction", mv.reconstruction_calibration
      ? `calibrated to this patient's own 12-lead ECG (${mv.reconstruction_calibration})`
      : "generic (not calibrated to this patient; less accurate)"]);
  }
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  $("detail-models").replaceChildren(...(a.results || []).map((r) => describeResult(r, h)));
  const deliveries = Array.isArray(a.deliveries) ? a.deliveries : [];
  const acks = Array.isArray(a.acknowledgements) ? a.acknowledgements : [];
  $("ack-notes").replaceChildren(...acks.map((k) => h("li", { "data-testid": "ack-note-item" },
    `${k.user} at ${fmtTime(k.at_us)}${k.note ? `: ${k.note}` : " (no note)"}`)));
  $("ack-notes").hidden = acks.length === 0;
  $("detail-deliveries").hidden = deliveries.length === 0;
  $("detail-deliveries").replaceChildren(...(deliveries.length ? renderDeliveries(deliveries, h, fmtTime) : []));
  // the raw model output, for those who want it, behind a toggle
  $("detail-raw-json").textContent = JSON.stringify({
    model_versions: a.model_versions || {}, details: a.details || {}, reconstructed_leads: a.reconstructed_leads || {},
    results: (a.results || []).map((r) => ({ model: r.model, version: r.version, outputs: r.outputs ?? r })),
  }, null, 2);
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
    stateNode.textContent = `Acknowledged by ${ep.ack.user} at ${fmtTime(ep.ack.at_us)}` +
      (ep.ackNote ? ` — note: ${ep.ackNote}` : "");
    $("ack-note").disabled = true;
    stateNode.dataset.acknowledgedBy = ep.ack.user;
  } else {
    button.disabled = false;
    button.textContent = "Acknowledge";
    stateNode.textContent = "Not acknowledged";
    $("ack-note").disabled = false;
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
    const note = $("ack-note").value.trim();
    const rec = await api(`/api/alerts/${encodeURIComponent(ep.latest.alert_id)}/ack`, { method: "POST", body: { note } });
    $("ack-note").value = "";
    if (rec && rec.note) ep.ackNote = rec.note;
    if (rec) {
      ep.latest.acknowledgements = [...(ep.latest.acknowledgements || []), { user: rec.user, at_us: rec.at_us, note: rec.note }];
      $("ack-notes").append(h("li", { "data-testid": "ack-note-item" }, `${rec.user} at ${fmtTime(rec.at_us)}${rec.note ? `: ${rec.note}` : " (no note)"}`));
      $("ack-notes").hidden = false;
    }
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

/** The export links (PNG, PDF at 25 mm/s, drawn by the server) and print of the strip on show. */
function setStripExport(windowId) {
  const box = $("strip-actions");
  box.hidden = !windowId;
  if (!windowId) return;
  const base = `/api/windows/${encodeURIComponent(windowId)}/strip`;
  $("strip-png").href = `${base}.png`;
  $("strip-pdf").href = `${base}.pdf`;
}

async function loadStrip(token, index = null) {
  setStripExport(null);
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
      const strip = renderStrip(win);
      const paper = strip.viewBox && strip.viewBox.baseVal;   // mm of paper: printed at true 25 mm/s (print.css)
      if (paper && paper.width) strip.style.setProperty("--strip-width-mm", `${paper.width}mm`);
      container.replaceChildren(...(nav ? [nav] : []), strip);
      container.dataset.state = "ready";
      setStripExport(win.window_id);
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
  renderAudio();
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
  state.feedUp = false;
  state.feedDownSince = null;
  state.live.clear();
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
  $("ack-form").addEventListener("submit", (ev) => { ev.preventDefault(); acknowledge(); });
  $("strip-print").addEventListener("click", () => window.print());
  initReview({
    api, h, fmtTime, alertTitle, priorityMark: PRIORITY_MARK,
    patients: () => [...state.ward.values()],
    openAlert: (alert) => { mergeAlerts([alert]); openAlert(alert.episode_id, alert.alert_id); },
    onView: (view) => { if (view !== "ward" && state.selectedKey === null) $("detail").hidden = true; },
  });
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && state.selectedKey) closeDetail(); });
  state.audio = new AlarmAudio(renderAudio);
  // browsers allow sound only after a gesture: the first click or key anywhere unlocks it
  const unlock = () => { state.audio.unlock(); updateAudio(); };
  document.addEventListener("pointerdown", unlock, { once: false, passive: true });
  document.addEventListener("keydown", unlock, { passive: true });
  $("audio-pause").addEventListener("click", () => {
    if (state.audio.mode === "paused") state.audio.resume(); else state.audio.pause();
  });
  $("audio-off").addEventListener("click", () => state.audio.toggleOff());
  $("lead-select").addEventListener("change", (ev) => { state.lead = ev.target.value; renderWard(); });
  // every second: the tiles' numbers and ages, the page banner, the audio pattern
  setInterval(() => {
    if (!state.user) return;
    renderWard();
    renderBanner();
    state.audio.tick();
    renderAudio();
  }, 1000);
  requestAnimationFrame(drawTraces);
  try {
    state.user = await api("/api/me");
    await start();
  } catch {
    state.user = null;
    showLogin();
  }
}

init();
