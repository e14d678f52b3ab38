// ECG strip renderer: the standard 12-lead printout as SVG, in millimetres of paper.
//
// Layout (as on a printed resting ECG): three rows of four 2.5 s columns
//     I   aVR  V1  V4
//     II  aVL  V2  V5
//     III aVF  V3  V6
// (column k shows seconds [2.5k, 2.5k + 2.5) of its lead: the leads were recorded simultaneously),
// then a 10 s lead II rhythm strip. Paper speed 25 mm/s, gain 10 mm/mV, grid 1 mm minor / 5 mm major,
// a 1 mV × 0.2 s calibration pulse at the start of each row.
//
// Measured leads are drawn solid and dark. Reconstructed leads (estimated by the edge's 3→12 lead
// model, not measured) are drawn dashed in another colour, labelled "<lead> (reconstructed)", with a
// shaded band of ± their uncertainty (half-width of the 90 % band). A legend says so on the strip.
//
// Gaps: a window may carry ``gaps``, [start, end) sample ranges where no data came (the edge lost
// frames it could not interpolate). No line is drawn through them (the trace and the band break), and
// each is shaded and marked "no data" in every cell it falls in, so a loss never looks like signal.
// A window of other leads (e.g. a chest strap's lead I only) draws what it has; its rhythm strip is
// lead II when present, else its first measured lead.
//
// The SVG's user unit is the millimetre (viewBox in mm), so the geometry is exact at any zoom:
// printing the SVG 265 mm wide gives true 25 mm/s and 10 mm/mV paper.

export const SVG_NS = "http://www.w3.org/2000/svg";

/** Paper constants of the standard printout. */
export const PAPER = Object.freeze({
  mmPerS: 25,
  mmPerMv: 10,
  minorMm: 1,
  majorMm: 5,
  columnS: 2.5,
  columns: 4,
  rowPitchMm: 40,
  baselineFromRowTopMm: 24,
  traceX0Mm: 10,
  rightMarginMm: 5,
  legendMm: 15,
  calibrationMv: 1,
  calibrationS: 0.2,
});

/** Lead rows of the 3×4 layout (standard order on a printed 12-lead ECG). */
export const LAYOUT_ROWS = Object.freeze([
  Object.freeze(["I", "aVR", "V1", "V4"]),
  Object.freeze(["II", "aVL", "V2", "V5"]),
  Object.freeze(["III", "aVF", "V3", "V6"]),
]);

/** Lead of the full-length rhythm strip under the 3×4 block. */
export const RHYTHM_LEAD = "II";

/**
 * Geometry of the strip in mm (a pure function: no DOM).
 *
 * @param {{fsHz: number, nSamples: number}} window  sampling rate (Hz) and samples per lead
 * @returns {{widthMm:number, heightMm:number, mmPerS:number, mmPerMv:number, minorMm:number, majorMm:number,
 *   traceX0Mm:number, rows:{baselineMm:number, topMm:number, calibration:{x0Mm:number, x1Mm:number,
 *   baselineMm:number, topMm:number}}[], cells:{lead:string, row:number, col:number, xMm:number, widthMm:number,
 *   baselineMm:number, sampleStart:number, sampleEnd:number, rhythm:boolean}[], legendTopMm:number}}
 */
export function stripLayout({ fsHz, nSamples, rhythmLead = RHYTHM_LEAD }) {
  if (!(fsHz > 0) || !(nSamples >= 0)) throw new RangeError("stripLayout needs fsHz > 0 and nSamples >= 0");
  const p = PAPER;
  const rowsCount = LAYOUT_ROWS.length + 1;
  const traceWidthMm = p.columns * p.columnS * p.mmPerS;
  const widthMm = p.traceX0Mm + traceWidthMm + p.rightMarginMm;
  const legendTopMm = rowsCount * p.rowPitchMm;
  const heightMm = legendTopMm + p.legendMm;
  const calWidthMm = p.calibrationS * p.mmPerS;
  const rows = [];
  for (let r = 0; r < rowsCount; r++) {
    const topMm = r * p.rowPitchMm;
    const baselineMm = topMm + p.baselineFromRowTopMm;
    const x1Mm = p.traceX0Mm - 2.5;
    rows.push({
      topMm, baselineMm,
      calibration: { x0Mm: x1Mm - calWidthMm - 2, x1Mm, baselineMm, topMm: baselineMm - p.calibrationMv * p.mmPerMv },
    });
  }
  const cells = [];
  const colSamples = p.columnS * fsHz;
  LAYOUT_ROWS.forEach((leads, r) => {
    leads.forEach((lead, c) => {
      const sampleStart = Math.min(nSamples, Math.round(c * colSamples));
      const sampleEnd = Math.min(nSamples, Math.round((c + 1) * colSamples));
      cells.push({
        lead, row: r, col: c, rhythm: false,
        xMm: p.traceX0Mm + c * p.columnS * p.mmPerS, widthMm: p.columnS * p.mmPerS,
        baselineMm: rows[r].baselineMm, sampleStart, sampleEnd,
      });
    });
  });
  cells.push({
    lead: rhythmLead, row: LAYOUT_ROWS.length, col: 0, rhythm: true, xMm: p.traceX0Mm, widthMm: traceWidthMm,
    baselineMm: rows[LAYOUT_ROWS.length].baselineMm, sampleStart: 0,
    sampleEnd: Math.min(nSamples, Math.round(p.columns * colSamples)),
  });
  return {
    widthMm, heightMm, legendTopMm, traceX0Mm: p.traceX0Mm,
    mmPerS: p.mmPerS, mmPerMv: p.mmPerMv, minorMm: p.minorMm, majorMm: p.majorMm, rows, cells,
  };
}

/** x (mm) of sample ``i`` of a cell. */
export function sampleX(cell, i, fsHz) {
  return cell.xMm + ((i - cell.sampleStart) / fsHz) * PAPER.mmPerS;
}

/** y (mm, downwards) of a value in mV on a cell's baseline. */
export function valueY(cell, mv) {
  return cell.baselineMm - mv * PAPER.mmPerMv;
}

const f2 = (v) => (Math.round(v * 100) / 100).toString();

/**
 * Per-sample gap mask (1 = no data) of a window's ``gaps`` ([start, end) sample ranges), or null.
 * @param {number[][]|undefined} gaps
 * @param {number} nSamples
 */
export function gapMask(gaps, nSamples) {
  if (!gaps || !gaps.length) return null;
  const mask = new Uint8Array(nSamples);
  for (const [a, b] of gaps) mask.fill(1, Math.max(0, a), Math.min(nSamples, b));
  return mask;
}

/** SVG path data of one lead's samples over a cell; the line breaks at masked or missing samples. */
export function tracePath(cell, samples, fsHz, mask = null) {
  const parts = [];
  let pen = "M";
  for (let i = cell.sampleStart; i < cell.sampleEnd; i++) {
    const v = samples[i];
    if (!Number.isFinite(v) || (mask && mask[i])) {
      pen = "M";
      continue;
    }
    parts.push(`${pen}${f2(sampleX(cell, i, fsHz))} ${f2(valueY(cell, v))}`);
    pen = "L";
  }
  return parts.join("");
}

/** SVG path data of the closed ± band around a reconstructed lead (upper edge forward, lower back), one
 * closed piece per run of samples between gaps. */
export function bandPath(cell, samples, halfWidth, fsHz, mask = null) {
  const pieces = [];
  let upper = [];
  let lower = [];
  const close = () => {
    if (upper.length) pieces.push(`M${upper.join("L")}L${lower.reverse().join("L")}Z`);
    upper = [];
    lower = [];
  };
  for (let i = cell.sampleStart; i < cell.sampleEnd; i++) {
    const v = samples[i];
    const u = halfWidth[i];
    if (!Number.isFinite(v) || !Number.isFinite(u) || (mask && mask[i])) {
      close();
      continue;
    }
    const x = f2(sampleX(cell, i, fsHz));
    upper.push(`${x} ${f2(valueY(cell, v + u))}`);
    lower.push(`${x} ${f2(valueY(cell, v - u))}`);
  }
  close();
  return pieces.join("");
}

/** SVG path data of the 1 mm (minor) or 5 mm (major) grid over the whole strip. */
export function gridPath(layout, stepMm) {
  const parts = [];
  const nx = Math.floor(layout.widthMm / stepMm + 1e-9);
  const ny = Math.floor(layout.heightMm / stepMm + 1e-9);
  for (let i = 0; i <= nx; i++) parts.push(`M${f2(i * stepMm)} 0V${f2(layout.heightMm)}`);
  for (let j = 0; j <= ny; j++) parts.push(`M0 ${f2(j * stepMm)}H${f2(layout.widthMm)}`);
  return parts.join("");
}

/** The standard calibration pulse: baseline, up 1 mV, 0.2 s across, down, baseline. */
export function calibrationPath(row) {
  const c = row.calibration;
  return `M${f2(c.x0Mm)} ${f2(c.baselineMm)}H${f2(c.x0Mm + 1)}V${f2(c.topMm)}H${f2(c.x1Mm - 1)}` +
    `V${f2(c.baselineMm)}H${f2(c.x1Mm)}`;
}

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

/**
 * Mean of an array of numbers (ignoring non-finite values), or null.
 * @param {number[]} values
 */
function mean(values) {
  let sum = 0;
  let n = 0;
  for (const v of values) if (Number.isFinite(v)) { sum += v; n++; }
  return n ? sum / n : null;
}

/**
 * Draw a 12-lead window as an SVG element (returned; the caller inserts it).
 *
 * @param {{window_id?: string, fs_hz: number, leads: string[], reconstructed?: string[],
 *          samples_mv: number[][], uncertainty_mv?: Object<string, number[]>, t0_us?: number}} win
 *   a window as ``GET /api/windows/{id}`` returns it
 * @param {{title?: string}} [options]
 * @returns {SVGSVGElement}
 */
export function renderStrip(win, options = {}) {
  const fsHz = Number(win.fs_hz);
  const leads = Array.from(win.leads || []);
  const samples = win.samples_mv || [];
  const nSamples = samples.reduce((n, s) => Math.max(n, s ? s.length : 0), 0);
  const recon = new Set(win.reconstructed || []);
  const unc = win.uncertainty_mv || {};
  const byLead = new Map(leads.map((name, i) => [name, samples[i]]));
  const rhythmLead = byLead.has(RHYTHM_LEAD) ? RHYTHM_LEAD : (leads.find((name) => !recon.has(name)) ?? RHYTHM_LEAD);
  const layout = stripLayout({ fsHz, nSamples, rhythmLead });
  const gaps = (win.gaps || []).filter(([a, b]) => b > a);
  const mask = gapMask(gaps, nSamples);
  const durationS = nSamples / fsHz;

  const titleText = options.title ||
    `12-lead ECG, ${f2(durationS)} s at ${fsHz} Hz, 25 mm/s, 10 mm/mV` +
    (recon.size ? `; reconstructed leads: ${[...recon].join(", ")}` : "");
  const svg = el("svg", {
    xmlns: SVG_NS, viewBox: `0 0 ${layout.widthMm} ${layout.heightMm}`, class: "ecg-strip", role: "img",
    "data-testid": "ecg-strip", "data-mm-per-s": PAPER.mmPerS, "data-mm-per-mv": PAPER.mmPerMv,
    "data-width-mm": layout.widthMm, "data-height-mm": layout.heightMm, "data-window-id": win.window_id ?? null,
    "data-gaps": gaps.length,
    preserveAspectRatio: "xMinYMin meet",
  });
  svg.append(el("title", {}, titleText));

  const grid = el("g", { class: "grid", "data-testid": "strip-grid" });
  grid.append(el("rect", { class: "paper", x: 0, y: 0, width: layout.widthMm, height: layout.heightMm }));
  grid.append(el("path", { class: "grid-minor", d: gridPath(layout, PAPER.minorMm), "data-step-mm": PAPER.minorMm }));
  grid.append(el("path", { class: "grid-major", d: gridPath(layout, PAPER.majorMm), "data-step-mm": PAPER.majorMm }));
  svg.append(grid);

  const cal = el("g", { class: "calibration", "data-testid": "strip-calibration" });
  for (const row of layout.rows) {
    cal.append(el("path", {
      class: "calibration-pulse", d: calibrationPath(row), "data-mv": PAPER.calibrationMv,
      "data-height-mm": f2(row.calibration.baselineMm - row.calibration.topMm),
    }));
  }
  svg.append(cal);

  const traces = el("g", { class: "traces" });
  for (const cell of layout.cells) {
    const isRecon = recon.has(cell.lead);
    const data = byLead.get(cell.lead);
    const g = el("g", {
      class: `lead ${isRecon ? "reconstructed" : "measured"}${cell.rhythm ? " rhythm" : ""}`,
      "data-testid": cell.rhythm ? "strip-rhythm" : "strip-lead", "data-lead": cell.lead,
      "data-reconstructed": isRecon ? "true" : "false", "data-row": cell.row, "data-col": cell.col,
      "data-x-mm": f2(cell.xMm), "data-width-mm": f2(cell.widthMm), "data-baseline-mm": f2(cell.baselineMm),
      "data-sample-start": cell.sampleStart, "data-sample-end": cell.sampleEnd,
    });
    let label = cell.lead;
    const meanUnc = isRecon && unc[cell.lead] ? mean(unc[cell.lead].slice(cell.sampleStart, cell.sampleEnd)) : null;
    if (!data || cell.sampleEnd <= cell.sampleStart) {
      label += " (not available)";
    } else {
      if (isRecon && unc[cell.lead]) {
        g.append(el("path", { class: "band", d: bandPath(cell, data, unc[cell.lead], fsHz, mask) }));
      }
      g.append(el("path", { class: "trace", d: tracePath(cell, data, fsHz, mask) }));
      for (const [a, b] of gaps) {
        const s0 = Math.max(a, cell.sampleStart);
        const s1 = Math.min(b, cell.sampleEnd);
        if (s1 <= s0) continue;
        const x0 = sampleX(cell, s0, fsHz);
        const rect = el("rect", {
          class: "gap", "data-testid": "strip-gap", "data-sample-start": s0, "data-sample-end": s1,
          x: f2(x0), y: f2(layout.rows[cell.row].topMm + 7), width: f2(sampleX(cell, s1, fsHz) - x0),
          height: f2(PAPER.rowPitchMm - 9),
        });
        rect.append(el("title", {}, `no data: ${f2((s1 - s0) / fsHz)} s lost in transmission`));
        g.append(rect);
      }
      if (isRecon) label += " (reconstructed)";
      if (cell.rhythm) label += " rhythm";
    }
    const text = el("text", {
      class: "lead-label", "data-testid": "strip-lead-label", x: f2(cell.xMm + 1.5),
      y: f2(layout.rows[cell.row].topMm + 5), "data-lead": cell.lead,
    }, label);
    g.append(text);
    if (meanUnc !== null) g.append(el("title", {}, `${label}: mean uncertainty ±${meanUnc.toFixed(3)} mV`));
    traces.append(g);
  }
  svg.append(traces);

  // Column boundary ticks, as on printed strips.
  const ticks = [];
  LAYOUT_ROWS.forEach((_, r) => {
    for (let c = 1; c < PAPER.columns; c++) {
      const x = PAPER.traceX0Mm + c * PAPER.columnS * PAPER.mmPerS;
      const b = layout.rows[r].baselineMm;
      ticks.push(`M${f2(x)} ${f2(b - 3)}V${f2(b + 3)}`);
    }
  });
  svg.append(el("path", { class: "column-ticks", d: ticks.join("") }));

  svg.append(legend(layout, fsHz, leads.filter((name) => !recon.has(name)), recon.size > 0, gaps.length > 0));
  return svg;
}

function legend(layout, fsHz, measured, hasRecon, hasGaps = false) {
  const y = layout.legendTopMm + 6;
  const g = el("g", { class: "legend", "data-testid": "strip-legend" });
  g.append(el("rect", { class: "legend-bg", x: 0, y: layout.legendTopMm, width: layout.widthMm, height: PAPER.legendMm }));
  g.append(el("path", { class: "trace legend-measured", d: `M${PAPER.traceX0Mm} ${y}h12` }));
  g.append(el("text", { class: "legend-text", x: PAPER.traceX0Mm + 14, y: y + 1.2 }, "measured lead"));
  const x2 = PAPER.traceX0Mm + 50;
  g.append(el("rect", { class: "band legend-band", x: x2, y: y - 1.5, width: 12, height: 3 }));
  g.append(el("path", { class: "trace legend-reconstructed", d: `M${x2} ${y}h12` }));
  g.append(el("text", { class: "legend-text", x: x2 + 14, y: y + 1.2 },
    `reconstructed lead (estimated from ${measured.join(", ") || "the measured leads"}; band = ± uncertainty, 90 %)`));
  g.append(el("text", { class: "legend-text legend-scale", x: PAPER.traceX0Mm, y: y + 6.5 },
    `25 mm/s · 10 mm/mV · grid 1 mm / 5 mm · ${fsHz} Hz` + (hasRecon ? "" : " · all leads measured") +
    (hasGaps ? " · shaded: no data (lost in transmission, not drawn)" : "")));
  return g;
}
