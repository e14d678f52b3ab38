// Audible alarm signals after IEC 60601-1-8 (Web Audio; no files, no dependencies).
//
// The standard's burst patterns, by priority (pulse = a tone of a fundamental plus harmonics, with
// soft edges so it is not a click):
//   high:   10 pulses, "x-x-x---x-x   x-x-x---x-x", pulses 150 ms, burst repeated every 6 s
//   medium:  3 pulses, "x-x-x", pulses 200 ms, repeated every 15 s
//   low:     2 pulses, "x-x", pulses 200 ms, repeated every 30 s
// One signal sounds at a time: the highest priority among the alarms that are active and not
// acknowledged. Staff may pause audio for 2 minutes (AUDIO PAUSED, with the time left) or turn it
// off (AUDIO OFF) until they turn it on again; both are shown on the page, never silent. A browser
// lets a page make sound only after a user gesture, so sound starts with the first click anywhere.

export const PAUSE_MS = 120_000;

const PATTERNS = {
  // [onset in ms of each pulse], pulse length, fundamental (Hz), burst period (ms)
  high: { onsets: [0, 250, 500, 1000, 1250, 2500, 2750, 3000, 3500, 3750], pulseMs: 150, hz: 880, periodMs: 6000 },
  medium: { onsets: [0, 300, 600], pulseMs: 200, hz: 660, periodMs: 15000 },
  low: { onsets: [0, 300], pulseMs: 200, hz: 520, periodMs: 30000 },
};

export class AlarmAudio {
  constructor(onChange = () => {}) {
    this.ctx = null;
    this.priority = null; // what should sound now (null: nothing)
    this.mode = "on"; // on | paused | off
    this.pausedUntil = 0;
    this.timer = null;
    this.lastBurst = { high: 0, medium: 0, low: 0 };
    this.bursts = 0;
    this.onChange = onChange;
  }

  /** Create the audio context (call from a user gesture); true once sound can play. */
  unlock() {
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return false;
      this.ctx = new Ctx();
    }
    if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
    this.onChange();
    return true;
  }

  get unlocked() {
    return Boolean(this.ctx);
  }

  /** The state shown on the page: off | paused | blocked (no gesture yet) | silent | high | medium | low. */
  get state() {
    if (this.mode === "off") return "off";
    if (this.mode === "paused") return "paused";
    if (!this.priority) return "silent";
    return this.unlocked ? this.priority : "blocked";
  }

  pausedLeftMs() {
    return this.mode === "paused" ? Math.max(0, this.pausedUntil - Date.now()) : 0;
  }

  /** The priority to sound now (null: none); a new, higher priority sounds at once. */
  set(priority) {
    const was = this.priority;
    this.priority = priority || null;
    if (this.priority && this.priority !== was) this.lastBurst[this.priority] = 0;
    this.tick();
    if (was !== this.priority) this.onChange();
  }

  pause() {
    this.mode = "paused";
    this.pausedUntil = Date.now() + PAUSE_MS;
    this.onChange();
  }

  toggleOff() {
    this.mode = this.mode === "off" ? "on" : "off";
    this.onChange();
  }

  resume() {
    this.mode = "on";
    this.onChange();
  }

  /** Call every few hundred ms: ends a pause, starts the next burst when due. */
  tick() {
    if (this.mode === "paused" && Date.now() >= this.pausedUntil) {
      this.mode = "on";
      for (const p of Object.keys(this.lastBurst)) this.lastBurst[p] = 0;
      this.onChange();
    }
    if (this.mode !== "on" || !this.priority || !this.ctx) return;
    const pattern = PATTERNS[this.priority];
    const now = Date.now();
    if (now - this.lastBurst[this.priority] < pattern.periodMs) return;
    this.lastBurst[this.priority] = now;
    this.burst(pattern);
  }

  burst(pattern) {
    const ctx = this.ctx;
    const start = ctx.currentTime + 0.05;
    const out = ctx.createGain();
    out.gain.value = 0.25;
    out.connect(ctx.destination);
    for (const onset of pattern.onsets) {
      const t0 = start + onset / 1000;
      const t1 = t0 + pattern.pulseMs / 1000;
      const env = ctx.createGain();
      env.gain.setValueAtTime(0, t0);
      env.gain.linearRampToValueAtTime(1, t0 + 0.02);
      env.gain.setValueAtTime(1, t1 - 0.03);
      env.gain.linearRampToValueAtTime(0, t1);
      env.connect(out);
      // fundamental and four harmonics, as the standard asks (a tone that is easy to localise)
      for (const [k, level] of [[1, 1], [2, 0.5], [3, 0.35], [4, 0.25], [5, 0.2]]) {
        const osc = ctx.createOscillator();
        const g = ctx.createGain();
        osc.frequency.value = pattern.hz * k;
        g.gain.value = level / 2.3;
        osc.connect(g).connect(env);
        osc.start(t0);
        osc.stop(t1 + 0.01);
      }
    }
    this.bursts += 1;
    this.onChange();
  }
}
