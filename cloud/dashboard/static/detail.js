// The alert detail in plain words: a summary a member of staff reads first (what, when, how likely,
// which leads were reconstructed and how sure), each cloud model's result as a sentence (classifier,
// ECG–text zero-shot, stress estimate, prototype matches), and the escalation deliveries. Pure functions
// over the API's JSON; the caller passes its element builder `h` (text only, never HTML).

const pct = (p) => `${Math.round(Number(p) * 100)} %`;
const sentence = (text) => `${text[0].toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? "" : "."}`;
const num = (x, d = 0) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(d) : "—");

/** How sure a reconstructed lead is, from its mean 90 % band half-width (mV). */
export function sureness(halfWidthMv) {
  const u = Number(halfWidthMv);
  if (!Number.isFinite(u)) return "unknown certainty";
  if (u <= 0.05) return "sure";
  if (u <= 0.15) return "fairly sure";
  return "unsure: check the measured leads";
}

function classifierProbability(a) {
  const d = a.details || {};
  if (typeof d.probability === "number") return d.probability;
  for (const r of a.results || []) {
    const o = r.outputs || r;
    if (r.model !== "classifier" || !o.probabilities) continue;
    const hit = Object.entries(o.probabilities).find(([k, p]) => k.toLowerCase() === String(a.alert_type).toLowerCase()
      && typeof p === "number");
    if (hit) return hit[1];
  }
  return null;
}

/** The summary's sentences. */
export function plainSummary(a, { title, patient, priority, cleared, level, fmtTime }) {
  const lines = [];
  const kind = a.category === "technical" ? "technical alarm" : "alarm";
  lines.push(`${title}: ${priority} priority ${kind} for ${patient}, from ${fmtTime(a.onset_gateway_us)}; ` +
    `${cleared ? "it has since cleared" : "still active"}${level > 0 ? `, escalated to level ${level}` : ""}.`);
  const rate = (a.details || {}).heart_rate_bpm ?? (a.details || {}).rate_bpm;
  if (typeof rate === "number") lines.push(`Heart rate at the time: ${Math.round(rate)} bpm.`);
  const p = classifierProbability(a);
  if (p !== null) lines.push(`The classifier put its probability at ${pct(p)}.`);
  else if (a.category !== "technical") lines.push("No model probability is attached (a rule on the measured signal raised it).");
  const recon = Object.entries(a.reconstructed_leads || {});
  if (recon.length) {
    lines.push("It rests partly on leads reconstructed from II, V1 and V5 (estimated, not measured): " +
      recon.map(([lead, u]) => `${lead} (±${Number(u).toFixed(2)} mV, ${sureness(u)})`).join(", ") + ".");
  } else if (a.category !== "technical") {
    lines.push("It rests on measured leads only.");
  }
  return lines;
}

function sparkline(strip, h, [s0, s1] = [], fsHz = 0) {
  const values = Array.isArray(strip) ? strip.filter((v) => typeof v === "number") : [];
  if (values.length < 2) return null;
  const step = Math.max(1, Math.floor(values.length / 400));
  const pts = values.filter((_, i) => i % step === 0);
  const lo = Math.min(...pts), hi = Math.max(...pts), span = hi - lo || 1;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${pts.length} 40`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "The prototype's ECG strip");
  if (fsHz > 0 && s1 > s0) {
    const x0 = (s0 * fsHz) / step, x1 = (s1 * fsHz) / step;
    const rect = document.createElementNS(ns, "rect");
    for (const [k, v] of Object.entries({ x: x0, y: 0, width: x1 - x0, height: 40, class: "matched" })) rect.setAttribute(k, String(v));
    svg.append(rect);
  }
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts.map((v, i) => `${i},${(38 - ((v - lo) / span) * 36).toFixed(1)}`).join(" "));
  svg.append(line);
  return svg;
}

/** One model result as a short block of plain sentences. */
export function describeResult(r, h) {
  const o = r.outputs || r;
  const head = (text) => h("strong", {}, text);
  const box = (...children) => h("div", { class: `model-result model-${r.model}`, "data-model": r.model }, ...children);
  if (r.model === "classifier" && o.probabilities) {
    const top = Object.entries(o.probabilities).sort((x, y) => y[1] - x[1]).slice(0, 3);
    return box(head("Rhythm classifier: "), top.map(([k, p]) => `${k} ${pct(p)}`).join(", ") +
      (Array.isArray(o.positive) && o.positive.length ? `; above threshold: ${o.positive.join(", ")}` : "; nothing above threshold"));
  }
  if (r.model === "zeroshot" && Array.isArray(o.labels)) {
    const ranked = o.labels.map((l, i) => [l, (o.scores || [])[i]]).sort((x, y) => (y[1] ?? 0) - (x[1] ?? 0)).slice(0, 3);
    return box(head("ECG–text match (zero-shot): "), ranked.map(([l, s]) => `${l} ${pct(s ?? 0)}`).join(", ") +
      ` (prompts: ${o.prompt_set || "—"}; scores share 100 % among the labels asked)`);
  }
  if (r.model === "stress" && o.estimate) {
    const hrv = o.hrv || {};
    return box(head("Stress: "), h("span", { class: "estimate-tag" }, "estimate"),
      ` ${o.estimate} (${pct((o.probabilities || {})[o.estimate] ?? 0)}). HR ${num(hrv.hr_bpm)} bpm, RMSSD ${num(hrv.rmssd_ms)} ms, ` +
      `SDNN ${num(hrv.sdnn_ms)} ms. ${sentence(o.note || "an estimate from a model trained on synthetic data")}`);
  }
  if (r.model === "prototypes" && Array.isArray(o.matches)) {
    return box(head(`Similar known ECGs (why it may be ${o.class || "this class"}): `),
      h("ul", { class: "matches" }, ...o.matches.map((m) => h("li", {},
        `${m.class} — similarity ${pct(m.similarity)}, ${m.source === "synthetic" ? "synthetic example" : `record ${m.record}`}` +
        `, lead ${m.lead}; matches seconds ${num((m.window_segment_s || [])[0], 1)}–${num((m.window_segment_s || [])[1], 1)} of this window`,
        sparkline(m.strip_mv, h, m.strip_segment_s, m.fs_hz)))));
  }
  const pairs = Object.entries(o).filter(([k]) => !["model", "version", "outputs", "window_id", "alert_id", "created_us"].includes(k))
    .map(([k, v]) => `${k.replaceAll("_", " ")}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  return box(head(`${r.model} ${r.version || ""}: `), pairs.join("; ") || "—");
}

const DELIVERY_WORDS = { delivered: "delivered", pending: "being sent", failed: "failed", cancelled: "cancelled" };

/** The escalation deliveries: who was told, how, and whether it arrived. */
export function renderDeliveries(deliveries, h, fmtTime) {
  return [h("h3", {}, "Who was told"), h("ul", { class: "delivery-list" }, ...deliveries.map((d) => h("li", {
    class: `delivery delivery-${d.status}`, "data-status": d.status,
  }, `${d.channel} (${d.kind}) → ${d.target}: ${DELIVERY_WORDS[d.status] || d.status}` +
    (d.delivered_us ? ` at ${fmtTime(d.delivered_us)}` : "") +
    `, level ${d.level}, ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}` +
    (d.last_error ? ` (last error: ${d.last_error})` : ""))))];
}
