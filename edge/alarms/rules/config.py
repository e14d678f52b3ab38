"""Every default alarm threshold, with its clinical rationale: :class:`AlarmConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.messages import Priority


@dataclass(frozen=True)
class AlarmConfig:
    """Thresholds (units in the names) and their clinical rationale.

    Arrhythmia analysis
        ``analysis_lead``: the lead the QRS detector runs on (II: tall R, visible P on the wearable).
        ``startup_s``: no silence counted before this stream time (the detector learns for 3 s).
        ``suppress_sqi``: below it (and not quiet) the analysed lead's beats are not trusted and no
        clinical condition accumulates time — artefact must not raise VT or asystole (the false
        alarms of the PhysioNet/CinC 2015 challenge). 0.3 sits under the SQI of VT/VF (≈ 0.5, not
        peaky) and above that of heavy muscle noise (≈ 0–0.2). ``quiet_rms_mv``: a lead whose RMS is
        below 0.1 mV cannot hide a QRS (sinus leads carry 0.1–0.3 mV RMS with ~1 mV R waves; artefact
        able to hide one is far above 0.1 mV RMS), so its low SQI does not suppress — asystole with
        residual noise is still an asystole.
        ``quality_recovery_s``: analysis resumes only after the lead has been good this long (two
        2-s quality windows), the hysteresis of suppression.

    Asystole / pause (Philips: asystole = no QRS for 4 s, pause threshold 2–3 s)
        ``asystole_s`` = 4.0 → high; ``pause_s`` = 3.0 → medium; a pause escalates to asystole.

    VT (Philips/GE: a run of ≥ 5–6 ventricular beats at ≥ 100 bpm)
        ``vt_run_beats`` = 6 consecutive beats with QRS ≥ ``vt_wide_ms`` = 120 ms (the ventricular
        criterion) at ≥ ``vt_rate_bpm`` = 100; clears below ``vt_clear_rate_bpm`` = 90 or when fewer
        than half of the last run are wide. Paced beats (a pace pulse before the QRS,
        :mod:`edge.signal.pacing`) are wide by nature and never count as ventricular. Or classifier
        ``VT`` ≥ ``vt_prob`` = 0.8. High.

    VF
        classifier ``VF`` ≥ ``vf_prob`` = 0.8 in the latest window (without a classifier, VF's
        fibrillatory waves reach the beat rules as fast wide irregular complexes → VT). High.

    Extreme tachycardia / bradycardia (red limits of adult monitors: 140–160 / 30–40 bpm)
        > ``tachy_bpm`` = 150 for ``rate_persist_s`` = 10 s, clears < 140 → high;
        < ``brady_bpm`` = 40 for 10 s, clears > 45 → high. Not raised while VT or SVT is active:
        those name the same fast rate more precisely.

    SVT (narrow-complex regular tachycardia; high)
        A run of ≥ ``svt_beats`` = 8 beats whose RR are all ≤ 1.1 × 60 / ``svt_bpm`` (the run's
        extent), at a median rate ≥ ``svt_bpm`` = 150, narrow (median QRS < ``vt_wide_ms`` = 120 ms,
        ≥ 3/4 of the measured beats narrow, none paced), regular (median |ΔRR| / median RR ≤
        ``svt_regularity`` = 0.05: re-entry runs like a clock, AF at that rate reads 0.06–0.2), for
        ``rate_persist_s`` = 10 s from the run's first beat; and either an abrupt onset seen — the
        median of the ≤ 4 RR before the run ≥ ``svt_onset_ratio`` = 1.2 × the run's first RR (the
        paroxysm: re-entry starts from one beat to the next, while the sinus node speeds up by a few
        per cent a beat) — or the classifier's ``SVT`` ≥ its shipped threshold
        (:attr:`WindowEvidence.thresholds`; ``svt_prob`` = 0.8 without one). Clears below
        ``tachy_clear_bpm``. A fast narrow regular rhythm without either (sinus tachycardia, or
        monitoring that began during the tachycardia) stays the generic extreme tachycardia, of the
        same priority. Priority high, as extreme tachycardia (IEC 60601-1-8 high: a sustained rate ≥ 150
        can compromise cardiac output within minutes; bedside monitors put rates above 150 in their
        red tier), so naming the rhythm never lowers the urgency; the name tells the responder it is
        supraventricular (vagal manoeuvres, adenosine) rather than ventricular. SVT and extreme
        tachycardia supersede each other (one rhythm, one alarm); SVT is evaluated first and its
        persistence counts from the run's first beat (before the detector's running rate crosses 150),
        so when its criteria are met it raises no later than the generic alarm would (which then stays
        silent); it is not raised while AF or atrial flutter is active (they already explain a fast
        narrow rhythm), and a 2:1 atrial flutter seen first as SVT keeps the SVT alarm (one alarm per
        rhythm; flutter and SVT supersede each other).

    Atrial flutter (medium, as AF: prompt review, not immediately life-threatening; a fast
    ventricular response is covered by the SVT / extreme tachycardia alarms)
        classifier ``AFL`` ≥ its shipped threshold (``aflutter_prob`` = 0.8 without one) in
        ``aflutter_windows`` = 2 consecutive windows (the AF classifier path's rule); clears when the
        latest window's ``AFL`` < min(``prob_clear``, half the threshold). AF and atrial flutter
        supersede each other — whichever raised first holds: a flutter with variable block is
        irregular enough for the RR rule, and both call for the same response (rate control,
        anticoagulation), so one rhythm gives one alarm.

    AF onset (medium: not immediately life-threatening, needs prompt review)
        RR irregularity ≥ ``af_irregularity`` = 0.12 for ``af_persist_s`` = 30 s; the alert's onset is
        the estimated start of the irregular run (:meth:`EvidenceState.irregular_run_start`), some
        10–15 beats before the 32-RR irregularity crossed the threshold; clears < ``af_clear_irregularity`` = 0.08 for 60 s; or classifier ``AF`` ≥
        ``af_prob`` = 0.8 in ``af_windows`` = 2 consecutive windows. The irregularity is the robust,
        ectopy- and pattern-aware RMSSD / mean RR of the last 32 RR (:class:`edge.signal.rr.RrStats`:
        ≈ RMSSD / mean in AF; premature-beat pairs and repeating patterns — bigeminy, trigeminy,
        respiratory sinus arrhythmia — removed). Thresholds chosen on synthetic RR only (firmware_sim,
        20 patients × 150 s per rhythm): sinus 0.03 median, 0.10 at the 99th percentile; AF with the
        lowest RR variability of the catalogue (CV 0.15) 0.16 median, 0.095 at the 1st percentile.
        At 0.12, AF stayed above it for 30 s in every synthetic patient while sinus, sinus brady/
        tachycardia, 15–30 % PACs, 12–25 % PVCs, bigeminy and trigeminy never did; the clear level
        0.08 sits under AF's 1st percentile and above sinus's median, so AF does not clear by itself
        and sinus clears. (Version 1: non-robust RMSSD/mean of 16 RR ≥ 0.15, onset at the threshold
        crossing; it read frequent PACs/PVCs as AF.)

    ST change from the patient's own baseline (medium; AHA practice standards for ECG monitoring,
    Drew 2004 / Sandau 2017: alarm at 0.1–0.2 mV of ST change from the patient's baseline)
        The baseline is the per-lead median ST of the first ``st_baseline_windows`` = 6 measured
        windows (≈ 35 s of ECG at a 5 s hop; :attr:`EvidenceState.st_baseline`), kept across a gateway
        restart; no ST alarm while it is learned. Then |ST − baseline| ≥ ``st_mv`` = 0.1 in ≥ 2
        contiguous leads with a change of one sign for ``st_persist_s`` = 30 s; a reconstructed lead
        counts only if the near edge of its 90 % band, |change| − uncertainty, still reaches 0.1.
        Clears when every lead's change is below half. One threshold for every lead: the higher V2–V3
        limit of the 4th universal definition of MI (0.2 mV) allows for the normal J elevation of
        those leads, which the baseline already takes away, as it takes away the J + 60 ms reading on
        an early, tall T wave (up to +0.22 mV in V3–V4 on synthetic sinus patients). 30 s of
        persistence (7 successive 10 s windows, ≈ 40 s of ECG) rather than the 1-minute episode of
        Holter practice keeps the alarm within 60 s of an infarct's onset with the window's own
        latency; two contiguous leads and the band's near edge keep it specific.

    Technical (kept apart from clinical alarms)
        lead off → medium when it takes the analysed lead, else low; poor signal: analysed lead SQI
        < ``poor_sqi`` = 0.5 for 10 s, clears after ``poor_clear_s`` = 6 s ≥ ``poor_clear_sqi`` = 0.5 (a
        time hysteresis: clean synthetic sinus scores 0.5–0.7, so a band above 0.5 would never clear)
        → low; battery < ``battery_pct`` = 20 %
        (clears ≥ 25) → low; no data for ``disconnect_s`` = 10 s → medium; a data gap ≥ ``gap_s`` =
        2 s → low, held ``gap_hold_s`` = 10 s.

    ``latching``: priorities of clinical alarms that stay active until acknowledged or cleared.
    """

    analysis_lead: str = "II"
    startup_s: float = 5.0
    suppress_sqi: float = 0.3
    quiet_rms_mv: float = 0.1
    quality_recovery_s: float = 4.0
    asystole_s: float = 4.0
    pause_s: float = 3.0
    vt_run_beats: int = 6
    vt_wide_ms: float = 120.0
    vt_rate_bpm: float = 100.0
    vt_clear_rate_bpm: float = 90.0
    vt_prob: float = 0.8
    vf_prob: float = 0.8
    prob_clear: float = 0.5
    tachy_bpm: float = 150.0
    tachy_clear_bpm: float = 140.0
    brady_bpm: float = 40.0
    brady_clear_bpm: float = 45.0
    rate_persist_s: float = 10.0
    beat_stale_s: float = 3.0
    af_irregularity: float = 0.12
    af_clear_irregularity: float = 0.08
    af_persist_s: float = 30.0
    af_clear_s: float = 60.0
    af_prob: float = 0.8
    af_windows: int = 2
    st_mv: float = 0.1
    st_persist_s: float = 30.0
    st_baseline_windows: int = 6
    svt_bpm: float = 150.0
    svt_beats: int = 8
    svt_regularity: float = 0.05
    svt_onset_ratio: float = 1.2
    svt_prob: float = 0.8
    aflutter_prob: float = 0.8
    aflutter_windows: int = 2
    st_clear_fraction: float = 0.5
    window_max_age_s: float = 15.0
    clinical_clear_s: float = 5.0
    poor_sqi: float = 0.5
    poor_clear_sqi: float = 0.5
    poor_clear_s: float = 6.0
    poor_persist_s: float = 10.0
    battery_pct: float = 20.0
    battery_clear_pct: float = 25.0
    disconnect_s: float = 10.0
    gap_s: float = 2.0
    gap_hold_s: float = 10.0
    latching: frozenset[Priority] = frozenset({Priority.HIGH})
