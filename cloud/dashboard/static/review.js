// Review: the alert History (search with filters, paged, opens the detail) and the patient Timeline
// (heart rate per minute with its min–max band, alarm markers, device events, the stress estimate as a
// trend marked "estimate", and the 12-lead ECG at any clicked moment). Talks to GET /api/alerts,
// /api/patients/{id}/timeline and /api/patients/{id}/strip; everything from the server is set as text.

import { renderStrip } from "./strip.js";

const PAGE = 50;
const SVG = "http://www.w3.org/2000/svg";
const PRIORITY_COLOUR = { high: "#c8102e", medium: "#e0a800", low: "#2a7ab0" };
const STRESS_COLOUR = { baseline: "#6b8e23", stress: "#b5452b", amusement: "#7a5ea8" };

let deps = null;
const historyState = { params: null, nextBefore: null };
let timelineData = null;
const names = new Map(); // patient_id -> display name (from the ward)
const $ = (id) => document.getElementById(id);

/** Switch between the ward, history and timeline views. */
export function showView(view) {
  for (const [name, id] of [["ward", "dashboard-view"], ["history", "history-view"], ["timeline", "timeline-view"]]) {
    $(id).hidden = name !== view;
  }
  for (const b of document.querySelectorAll("#view-tabs button")) b.setAttribute("aria-pressed", String(b.dataset.view === view));
  document.body.dataset.view = view;
  if (view !== "ward") fillPatients();
  if (deps && deps.onView) deps.onView(view);
}

/** The patient pickers: every patient this user may see (the ward's rows, fetched afresh). */
async function fillPatients() {
  let patients = deps.patients();
  try { patients = (await deps.api("/api/ward")).patients; } catch { /* keep what the ward view knows */ }
  patients = [...patients].sort((a, b) => a.patient_id.localeCompare(b.patient_id));
  for (const p of patients) if (p.display_name) names.set(p.patient_id, p.display_name);
  for (const [id, withAll] of [["history-form", true], ["timeline-form", false]]) {
    const select = $(id).elements.patient_id;
    const keep = select.value;
    const options = patients.map((p) => deps.h("option", { value: p.patient_id },
      p.display_name ? `${p.display_name} (${p.patient_id})` : p.patient_id));
    select.replaceChildren(...(withAll ? [deps.h("option", { value: "" }, "All")] : []), ...options);
    if (keep && patients.some((p) => p.patient_id === keep)) select.value = keep;
  }
}

const capitalise = (text) => (text ? text[0].toUpperCase() + text.slice(1) : text);
const localToUs = (value) => (value ? new Date(value).getTime() * 1000 : null);

function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

// -- history -----------------------------------------------------------------------------------

function historyParams(form) {
  const f = form.elements;
  const params = new URLSearchParams({ limit: String(PAGE) });
  for (const name of ["patient_id", "alert_type", "priority", "category", "acknowledged", "text"]) {
    const v = f[name].value.trim();
    if (v) params.set(name, v);
  }
  const from = localToUs(f.from.value), to = localToUs(f.to.value);
  if (from !== null) params.set("from_us", String(Math.round(from)));
  if (to !== null) params.set("to_us", String(Math.round(to)));
  return params;
}

function historyItem(a) {
  const { h, fmtTime, alertTitle, priorityMark } = deps;
  const ack = a.acknowledged ? `acknowledged by ${a.acknowledged_by}` : "not acknowledged";
  return h("li", { class: `alert-item prio-${a.priority}`, "data-testid": "history-item", "data-alert-id": a.alert_id,
    "data-priority": a.priority, "data-acknowledged": String(Boolean(a.acknowledged)) },
  h("button", { type: "button", class: "alert-open", onclick: () => deps.openAlert(a) },
    h("span", { class: `prio-badge prio-${a.priority}` }, `${priorityMark[a.priority] || ""} ${a.priority}`),
    h("span", { class: "alert-main" }, `${alertTitle(a)} — ${names.get(a.patient_id) || a.patient_id}`),
    h("span", { class: "alert-meta" }, `${fmtTime(a.onset_gateway_us)} · ${a.event} · ${a.category} · ${ack}`)));
}

async function searchHistory(more = false) {
  const status = $("history-status");
  const list = $("history-results");
  if (!more) {
    historyState.params = historyParams($("history-form"));
    historyState.nextBefore = null;
    list.replaceChildren();
  }
  const params = new URLSearchParams(historyState.params);
  if (more && historyState.nextBefore) params.set("before_seq", String(historyState.nextBefore));
  status.textContent = "Searching…";
  try {
    const body = await deps.api(`/api/alerts?${params}`);
    list.append(...body.alerts.map(historyItem));
    historyState.nextBefore = body.next_before_seq ?? null;
    $("history-more").hidden = historyState.nextBefore === null;
    const n = list.children.length;
    status.textContent = n ? `${n} alert message${n === 1 ? "" : "s"}${historyState.nextBefore ? " (more below)" : ""}.`
      : "No alerts match.";
  } catch (err) {
    status.textContent = `Search failed: ${err.message}`;
  }
}

// -- timeline ----------------------------------------------------------------------------------

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

/** The heart-rate chart with alarm and device-event markers and the stress row, as SVG. */
function drawChart(data) {
  const W = 1000, H = 260, L = 40, R = 10, T = 10, HR_H = 180, EST_Y = 205, EV_Y = 230;
  const x = (us) => L + Math.max(0, Math.min(1, (us - data.from_us) / Math.max(1, data.to_us - data.from_us))) * (W - L - R);
  const hr = data.heart_rate.filter((m) => m.mean_bpm !== null);
  const lo = Math.min(40, ...hr.map((m) => m.min_bpm ?? m.mean_bpm));
  const hi = Math.max(140, ...hr.map((m) => m.max_bpm ?? m.mean_bpm));
  const y = (bpm) => T + HR_H - ((bpm - lo) / (hi - lo)) * HR_H;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "timeline-svg", role: "img",
    "aria-label": "Heart rate per minute with alarms, device events and the stress estimate", "data-testid": "timeline-svg" });
  for (const bpm of [60, 100, 140].filter((b) => b >= lo && b <= hi)) {
    root.append(svg("line", { x1: L, x2: W - R, y1: y(bpm), y2: y(bpm), class: "gridline" }),
      svg("text", { x: 2, y: y(bpm) + 4, class: "axis" }, String(bpm)));
  }
  root.append(svg("text", { x: 2, y: T + 8, class: "axis" }, "bpm"));
  const MIN = 60e6;
  if (hr.length) {
    const band = hr.map((m) => `${x(m.minute_us)},${y(m.max_bpm ?? m.mean_bpm)}`)
      .concat([...hr].reverse().map((m) => `${x(m.minute_us)},${y(m.min_bpm ?? m.mean_bpm)}`));
    root.append(svg("polygon", { points: band.join(" "), class: "hr-band" }));
    let path = "";
    hr.forEach((m, i) => {
      const gap = i > 0 && m.minute_us - hr[i - 1].minute_us > 2 * MIN;   // no reports: the line breaks
      path += `${i === 0 || gap ? "M" : "L"}${x(m.minute_us).toFixed(1)},${y(m.mean_bpm).toFixed(1)}`;
    });
    root.append(svg("path", { d: path, class: "hr-line", "data-testid": "hr-line", "data-points": hr.length }));
  }
  for (const a of data.alarms) {
    const x0 = x(a.onset_us), x1 = a.cleared_us ? x(a.cleared_us) : x(data.to_us);
    const g = svg("g", { class: "alarm-marker", "data-testid": "alarm-marker", "data-episode-id": a.episode_id, tabindex: 0 });
    g.append(svg("rect", { x: x0, y: T, width: Math.max(2, x1 - x0), height: HR_H, fill: PRIORITY_COLOUR[a.priority], opacity: 0.15 }),
      svg("line", { x1: x0, x2: x0, y1: T, y2: T + HR_H, stroke: PRIORITY_COLOUR[a.priority], "stroke-width": 2 }),
      svg("title", {}, `${a.alert_type} (${a.priority}) at ${deps.fmtTime(a.onset_us)}`));
    g.addEventListener("click", (ev) => { ev.stopPropagation(); openEpisode(a); });
    root.append(g);
  }
  root.append(svg("text", { x: 2, y: EST_Y + 4, class: "axis" }, "stress*"));
  for (const e of data.estimates) {
    root.append(svg("circle", { cx: x(e.t_us), cy: EST_Y, r: 4, fill: STRESS_COLOUR[e.estimate] || "#888",
      class: "estimate-dot", "data-testid": "estimate-dot" }, null));
  }
  root.append(svg("text", { x: 2, y: EV_Y + 4, class: "axis" }, "device"));
  for (const e of data.device_events) {
    root.append(svg("path", { d: `M${x(e.at_us)},${EV_Y - 6} l5,10 l-10,0 z`, class: `device-event ${e.source === "registry" ? "registry" : e.event}`,
      "data-testid": "device-event-marker" }));
  }
  const axisY = H - 5;
  for (const t of [data.from_us, (data.from_us + data.to_us) / 2, data.to_us]) {
    root.append(svg("text", { x: Math.min(W - 120, Math.max(L, x(t) - 40)), y: axisY, class: "axis" }, deps.fmtTime(t)));
  }
  root.addEventListener("click", (ev) => {
    const box = root.getBoundingClientRect();
    const fx = ((ev.clientX - box.left) / box.width) * W;
    if (fx < L) return;
    const at = data.from_us + ((fx - L) / (W - L - R)) * (data.to_us - data.from_us);
    showStripAt(Math.round(at));
  });
  return root;
}

async function openEpisode(a) {
  try { deps.openAlert(await deps.api(`/api/alerts/${encodeURIComponent(a.alert_id)}`)); } catch { /* gone */ }
}

async function showStripAt(atUs) {
  const caption = $("timeline-strip-caption");
  const box = $("timeline-strip");
  box.replaceChildren();
  caption.textContent = `Loading the ECG at ${deps.fmtTime(atUs)}…`;
  try {
    const pid = timelineData.patient_id;
    const body = await deps.api(`/api/patients/${encodeURIComponent(pid)}/strip?at=${atUs}`);
    if (!body.windows.length) {
      caption.textContent = `No ECG is stored within 5 s of ${deps.fmtTime(atUs)} (windows are stored around alarms and as configured).`;
      box.dataset.state = "none";
      return;
    }
    const win = body.windows.reduce((best, w) => (Math.abs(w.t0_us + 5e6 - atUs) < Math.abs(best.t0_us + 5e6 - atUs) ? w : best));
    caption.textContent = `12-lead ECG at ${deps.fmtTime(win.t0_us)} · 25 mm/s · 10 mm/mV` +
      ((win.reconstructed || []).length ? ` · reconstructed (not measured): ${win.reconstructed.join(", ")}` : "");
    const base = `/api/windows/${encodeURIComponent(win.window_id)}/strip`;
    box.replaceChildren(deps.h("div", { class: "strip-actions" },
      deps.h("a", { href: `${base}.png`, target: "_blank", rel: "noopener" }, "PNG"), " ",
      deps.h("a", { href: `${base}.pdf`, target: "_blank", rel: "noopener" }, "PDF")), renderStrip(win));
    box.dataset.state = "ready";
  } catch (err) {
    caption.textContent = `The ECG could not be loaded: ${err.message}`;
  }
}

async function loadTimeline() {
  const f = $("timeline-form").elements;
  const pid = f.patient_id.value;
  const status = $("timeline-status");
  if (!pid) { status.textContent = "Choose a patient."; return; }
  const toUs = localToUs(f.to.value) ?? Date.now() * 1000;
  const fromUs = toUs - Number(f.span.value) * 3600e6;
  status.textContent = "Loading…";
  try {
    const data = await deps.api(`/api/patients/${encodeURIComponent(pid)}/timeline?from=${Math.round(fromUs)}&to=${Math.round(toUs)}`);
    timelineData = data;
    $("timeline-chart").replaceChildren(drawChart(data));
    const { h, fmtTime, alertTitle, priorityMark } = deps;
    $("timeline-alarms").replaceChildren(...data.alarms.map((a) => h("li", { class: `alert-item prio-${a.priority}`, "data-testid": "timeline-alarm" },
      h("button", { type: "button", class: "alert-open", onclick: () => openEpisode(a) },
        h("span", { class: `prio-badge prio-${a.priority}` }, `${priorityMark[a.priority]} ${a.priority}`),
        h("span", { class: "alert-main" }, alertTitle(a)),
        h("span", { class: "alert-meta" }, `${fmtTime(a.onset_us)}${a.cleared_us ? ` – ${fmtTime(a.cleared_us)}` : " – still active"}` +
          (a.acknowledged_by ? ` · acknowledged by ${a.acknowledged_by}` : ""))))));
    if (!data.alarms.length) $("timeline-alarms").append(h("li", { class: "muted" }, "No alarms in this span."));
    $("timeline-events").replaceChildren(...data.device_events.map((e) => h("li", { "data-testid": "timeline-event" },
      `${fmtTime(e.at_us)} · ${e.device_id}: ${e.source === "registry" ? e.message : `${alertTitle(e)} ${e.event}`}`)));
    if (!data.device_events.length) $("timeline-events").append(h("li", { class: "muted" }, "No device events in this span."));
    const est = data.estimates;
    const counts = {};
    for (const e of est) counts[e.estimate] = (counts[e.estimate] || 0) + 1;
    $("timeline-estimates").textContent = est.length
      ? `${Object.entries(counts).map(([k, n]) => `${k}: ${n} window${n === 1 ? "" : "s"}`).join(", ")}. ${capitalise(est[est.length - 1].note)}.`
      : "No stress estimates in this span.";
    const known = data.heart_rate.filter((m) => m.mean_bpm !== null).length;
    status.textContent = `${data.heart_rate.length} minutes of vitals (${known} with a heart rate), ${data.alarms.length} alarms, ` +
      `${data.device_events.length} device events, from ${fmtTime(data.from_us)} to ${fmtTime(data.to_us)}.`;
  } catch (err) {
    status.textContent = `Could not load the timeline: ${err.message}`;
  }
}

/** Wire the views; ``d``: {api, h, fmtTime, alertTitle, priorityMark, patients(), openAlert(alert), onView(view)}. */
export function initReview(d) {
  deps = d;
  for (const b of document.querySelectorAll("#view-tabs button")) b.addEventListener("click", () => showView(b.dataset.view));
  $("history-form").addEventListener("submit", (ev) => { ev.preventDefault(); searchHistory(false); });
  $("history-more").addEventListener("click", () => searchHistory(true));
  $("timeline-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadTimeline(); });
  $("timeline-form").elements.to.value = "";
  $("timeline-form").elements.to.placeholder = toLocalInput(Date.now());
}
