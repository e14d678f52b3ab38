// Live ECG for the ward tiles: each bed's recent chunks (from the feed's `live` events) and a canvas
// that scrolls them right to left, as a bedside monitor's trace does.
//
// Time: chunks carry the gateway's clock, which need not agree with this browser's (nor run at wall
// speed: the demo may stream faster than real time). So the trace keeps its own play head in
// gateway time: it advances with the wall clock, stays DELAY_MS behind the newest sample so that the
// next chunk (one a second) arrives before the head reaches it, waits when data stops, and jumps
// ahead when it falls more than MAX_LAG_MS behind. A chunk flagged `gap_before` (or a hole between
// two chunks) breaks the line: the trace never joins across missing data.

export const WINDOW_S = 6; // seconds across a tile
export const DELAY_MS = 1500;
export const MAX_LAG_MS = 4000;
const KEEP_MS = (WINDOW_S + 6) * 1000;
const MV_PER_HEIGHT = 3; // the canvas height spans 3 mV

export class LiveTrace {
  constructor() {
    this.chunks = []; // {t0, t1, fs, leads, uv, gap, seq}, by t0
    this.head = null; // play head, gateway ms
    this.wallAt = null; // wall time (performance.now) of the last head update
    this.lastArrival = 0; // Date.now() of the last chunk
    this.received = 0;
  }

  /** One `live` event's data. */
  add(c) {
    const fs = Number(c.fs_hz);
    const uv = Array.isArray(c.uv) ? c.uv : [];
    const n = uv.length && Array.isArray(uv[0]) ? uv[0].length : 0;
    if (!fs || !n) return;
    const t0 = Number(c.t0_us) / 1000;
    const chunk = { t0, t1: t0 + (n * 1000) / fs, fs, leads: c.leads || [], uv, gap: Boolean(c.gap_before), seq: c.seq };
    if (this.chunks.some((x) => x.t0 === t0)) return; // a repeat (a reconnect's first paint)
    this.chunks.push(chunk);
    this.chunks.sort((a, b) => a.t0 - b.t0);
    const newest = this.chunks[this.chunks.length - 1].t1;
    this.chunks = this.chunks.filter((x) => x.t1 >= newest - KEEP_MS);
    this.lastArrival = Date.now();
    this.received += 1;
  }

  get newest() {
    return this.chunks.length ? this.chunks[this.chunks.length - 1].t1 : null;
  }

  leads() {
    return this.chunks.length ? this.chunks[this.chunks.length - 1].leads : [];
  }

  /** Advance the play head to wall time `nowPerf` (performance.now()); returns it (gateway ms) or null. */
  advance(nowPerf) {
    const newest = this.newest;
    if (newest === null) return null;
    if (this.head === null) this.head = newest - DELAY_MS;
    else this.head += nowPerf - (this.wallAt ?? nowPerf);
    this.wallAt = nowPerf;
    if (this.head > newest) this.head = newest; // no data yet: wait at its end
    if (this.head < newest - MAX_LAG_MS) this.head = newest - DELAY_MS; // fell behind (or a faster stream)
    return this.head;
  }

  /** Draw `lead` on `canvas` up to the play head; returns the number of samples drawn. */
  draw(canvas, lead, nowPerf) {
    const head = this.advance(nowPerf);
    const ctx = canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const hgt = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== hgt) {
      canvas.width = w;
      canvas.height = hgt;
    }
    ctx.clearRect(0, 0, w, hgt);
    if (head === null) return 0;
    const from = head - WINDOW_S * 1000;
    const visible = this.chunks.filter((c) => c.t1 > from && c.t0 < head);
    // baseline: the mean of what is shown, so wander does not push the trace off the tile
    let sum = 0;
    let count = 0;
    for (const c of visible) {
      const row = c.uv[c.leads.indexOf(lead)];
      if (!row) continue;
      for (let i = 0; i < row.length; i += 4) { sum += row[i]; count += 1; }
    }
    const base = count ? sum / count : 0;
    const pxPerMs = w / (WINDOW_S * 1000);
    const pxPerUv = hgt / (MV_PER_HEIGHT * 1000);
    ctx.lineWidth = 1.5 * ratio;
    ctx.lineJoin = "round";
    ctx.strokeStyle = getComputedStyle(canvas).color || "#0f0";
    ctx.beginPath();
    let drawn = 0;
    let prevEnd = null;
    for (const c of visible) {
      const row = c.uv[c.leads.indexOf(lead)];
      if (!row) { prevEnd = null; continue; }
      const step = 1000 / c.fs;
      const joined = !c.gap && prevEnd !== null && Math.abs(c.t0 - prevEnd) <= 2 * step;
      let pen = joined;
      for (let i = 0; i < row.length; i++) {
        const t = c.t0 + i * step;
        if (t < from || t > head) { if (t > head) break; continue; }
        const x = (t - from) * pxPerMs;
        const y = hgt / 2 - (row[i] - base) * pxPerUv;
        if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        pen = true;
        drawn += 1;
      }
      prevEnd = c.t1;
    }
    ctx.stroke();
    canvas.dataset.head = String(Math.round(head));
    canvas.dataset.samples = String(drawn);
    return drawn;
  }
}
