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
        extent), at a median rate ≥ ``svt_bpm`` = 150, narrow (median QRS < ``svt_narrow_ms`` = 100 ms,
        a margin under the 120 ms that defines a wide complex: a fast rhythm of 100–120 ms complexes may
        be VT, which must never be named SVT, so it stays the generic extreme tachycardia — a simulated VT
        at 180 bpm measures 112 ms on lead II; ≥ 3/4 of the measured beats narrow, none paced), regular (median |ΔRR| / median RR ≤
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
        The RR irregularity (:class:`edge.signal.rr.RrStats`, 1/s) is the output O(n) of the
        low-complexity AF detector of Petrėnas, Marozas & Sörnmo (Comput Biol Med 2015;
        :mod:`edge.signal.af_detector`): 3-point median ectopic-beat filter, fraction of the 28 pairs
        of the last 8 filtered RR differing by ≥ 30 ms, exponentially averaged (10 beats) and divided
        by the RR trend, bigeminy suppression — scaled down where version 2's ectopy- and
        pattern-aware robust RMSSD of 32 RR is below 0.12 (the ectopy gate: frequent PACs/PVCs).
        ``af_irregularity`` = 0.725 is the paper's η (Se 97.1 % / Sp 98.3 % on the MIT–BIH AF
        database); on the real 12-lead records of ../shared/tune (CinC 2021, read, nothing fitted) AF
        reads 0.81–1.14 and 30 of 33 other records ≤ 0.5 (27 of them 0; one with frequent PACs 1.10).
        An irregular run starts when O reaches η and lasts while O ≥ ``af_hold_irregularity`` = 0.58
        (0.8 η, :data:`edge.alarms.evidence.IRREGULAR_HOLD_FRACTION`: AF's O wobbles around its
        level). Its start is estimated (:meth:`EvidenceState.irregular_run_start`, the change point of
        the last 48 RR) and is the alert's onset. AF is raised once the run has lasted
        ``af_persist_s`` = 30 s from that start (the guideline episode: ≥ 30 s of AF) and O itself has
        held for ``af_min_run_s`` = 15 s: persistence counts from the estimated start because the
        detector's averager shows AF only 5–20 s into it and lets it go 5–15 s after it, so counting
        from the crossing would need a 45-s paroxysm to confirm a 30-s one; the 15 s on O keep a short
        burst of ectopy from borrowing the estimate's earlier start. On synthetic RR (10 patients ×
        180 s each) sinus, sinus bradycardia, 30 % PACs, 25 % PVCs, bigeminy, trigeminy and
        Wenckebach raised no AF; atrial flutter with variable block does (CPSC 2021 scores it AF).
        Fast AF is confirmed on beats as well as on seconds: while O ≥ ``af_beats_irregularity`` = 1.0
        (clear AF: frequent ectopy reads 0.7–1.0, see the veto below), a run whose first
        ``af_persist_beats`` = 40 beats are in and that held O ≥ η for ``af_min_run_beats`` = 20
        beats raises once the time those 40 beats took has passed (≤ ``af_persist_s``; the engine
        counts it from the run's start, or from an explicit clear). The evidence an RR statistic
        gathers grows with the beats it sees, not with seconds: 40 beats are 34 s at 70 beats/min
        (no change) but 17 s at 140, where paroxysms are often shorter than 30 s. Synthetic only
        (12 sinus → AF → sinus transitions each; nothing fitted on ../shared/data): 25-s paroxysms at
        125 beats/min raise 12 of 12 (10 before), 18 s at 140 5 of 12 (0), AF at a random rate 30 s
        5 of 12 (4), 45 s 7 of 12 (7); non-AF (10 × 180 s each): sinus, 20 % PACs at 115 and
        25 % PVCs at 100 raise none, as before, while 30 % PACs or 25 % PVCs at 130 beats/min raise
        2 each (1 and 0 before). On CPSC 2021 (reported, not tuned) it changes no episode count:
        the missed fast paroxysms (124–147 beats/min, 12–26 s) read O ≥ 1 before the ectopy gate
        but 0.3–0.7 after it (their robust RMSSD is 0.08–0.13 against the gate's 0.12); lowering the
        gate to 0.09–0.10 let synthetic bigeminy raise AF (2 of 6), so it stays.
        Clears when O < ``af_clear_irregularity`` = 0.4 for ``af_clear_s`` = 60 s. Known limits:
        slow AF (< 60 beats/min) reads under η (the paper divides by the mean RR), and low-variability
        AF (RR CV ≤ 0.1) rarely reaches it.

        Fusion with the classifier (windows carry ``probabilities`` and, from classifiers that ship
        them, ``thresholds`` chosen on real records; without thresholds ``af_prob`` = 0.8 stands in):
        AF ≥ its threshold in ``af_windows`` = 2 consecutive windows raises AF by itself (persistence
        0: the windows' 15 s are the persistence). AF ≥ its threshold in the latest window *supports*
        the RR rule: O ≥ ``af_supported_irregularity`` = 0.5 for ``af_supported_persist_s`` = 15 s from
        the estimated start raises — two independent views agree, so a less irregular, shorter run
        suffices (fast AF, whose RR are more regular, and short paroxysms). A calibrated classifier
        (one whose windows ship an ``NSR`` threshold) that *leans* to AF in ``af_windows`` consecutive
        windows — AF ≥ ``af_lean_fraction`` = 0.5 × its threshold while NSR is below its own — supports
        the RR rule in the same way: the P waves are gone (the classifier no longer sees sinus rhythm)
        and the ventricles are irregular (the RR detector), each short of its own AF level. This is
        what cut the demo's AF (70 beats/min, moderately irregular: O stays 0.3–0.5 for 20 s after
        onset, the 3-point median evens such RR out) from 42.5 s to 27.5 s after onset: the
        classifier's NSR fell from 0.7 to < 0.2 in the first window holding AF, its AF reached only
        0.36–0.46 against its (uncalibrated) 0.5. Without an NSR threshold nothing leans (old
        artifacts: p(NSR) was 0.86–1.00 on real AF), so ``eval alarms`` (no windows) is unchanged.
        A calibrated classifier
        confidently in sinus rhythm *vetoes* a borderline run: when the latest window ships
        thresholds, its ``NSR`` ≥ that threshold and ``AF`` < its own, an O below
        ``af_veto_irregularity`` = 1.0 holds the rule (frequent ectopy reads 0.7–1.0; clear AF above 1
        is never vetoed). Old artifacts without thresholds never veto: their p(NSR) was 0.86–1.00 on
        real AF (issue 12). Without windows (2-lead streams: ``eval alarms``) the RR rule runs alone.
        (Version 2: robust RMSSD/mean of 32 RR ≥ 0.12 for 30 s from the crossing, synthetic-only
        thresholds; real AF reads 0.12–0.19 on it; 5 of 17 CPSC 2021 AF episodes, none paroxysmal.
        Version 1: RMSSD/mean of 16 RR ≥ 0.15.)

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
    af_irregularity: float = 0.725
    af_hold_irregularity: float = 0.58
    af_clear_irregularity: float = 0.4
    af_persist_s: float = 30.0
    af_min_run_s: float = 15.0
    af_persist_beats: int = 40
    af_min_run_beats: int = 20
    af_beats_irregularity: float = 1.0
    af_clear_s: float = 60.0
    af_prob: float = 0.8
    af_windows: int = 2
    af_supported_irregularity: float = 0.5
    af_supported_persist_s: float = 15.0
    af_veto_irregularity: float = 1.0
    af_lean_fraction: float = 0.5
    st_mv: float = 0.1
    st_persist_s: float = 30.0
    st_baseline_windows: int = 6
    svt_bpm: float = 150.0
    svt_narrow_ms: float = 100.0
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
