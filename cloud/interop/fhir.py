"""ECG windows and alarm episodes as HL7 FHIR resources, validated with ``fhir.resources``.

**Version: FHIR R4B (4.3.0).** Clinical systems today speak R4 (US Core, the big EHR vendors' APIs,
HAPI's default, IHE and most national profiles such as the German basisprofil-de-r4); R5 is not yet
deployed at scale. ``fhir.resources`` ships R5 and R4B but no plain R4, and R4B left every type used
here (Observation, SampledData, DetectedIssue, Flag, Bundle) as it was in R4, so an R4 receiver reads
this output as is. R5 would not do: its SampledData replaced ``period`` with ``interval`` +
``intervalUnit``, which an R4 receiver cannot read.

**A window** is an Observation of its measured leads and one of its reconstructed leads (below),
each of category ``procedure``, as for other ECG procedures (the ``vital-signs`` category implies the
vital-signs profile and its LOINC codes, which do not cover waveforms), coded MDC 131328
``MDC_ECG_ELEC_POTL``, with one component per lead, coded with the
lead's MDC code (``MDC_ECG_ELEC_POTL_I`` … ``_V6``, the codes of the FHIR ECG example and of
IEEE 11073-10101, partition 2). Each component's SampledData carries the window's int16 counts
unchanged: ``origin`` 0 mV, ``factor`` = ``lsb_nv`` · 1e-6 mV per count, ``period`` = 1000 /
``fs_hz`` ms, ``dimensions`` 1, and ``lowerLimit``/``upperLimit`` the int16 range in mV (a sample at
either limit may have been clipped). So a receiver gets value = count · factor exactly, within
float rounding of the decimal factor.

**Measured or reconstructed.** The measured leads and the reconstructed ones are two separate
Observations, so a consumer that ignores every extension still cannot take an estimate for a
measurement: the measured Observation (id = the window id, ``method.text`` "measured by wearable
…") and the reconstructed one (its own stable id, a UUID 5 of the window id; ``method`` coded
``reconstructed`` with the text "reconstructed from II, V1, V5 by <model and version>";
``derivedFrom`` the measured Observation; ``code.text`` says "estimates, not measurements").
Each component also carries the extension :data:`EXT_LEAD_SOURCE` (``measured`` |
``reconstructed``) and says it in ``code.text``. A reconstructed lead whose window carries
uncertainty also has :data:`EXT_LEAD_UNCERTAINTY`: a ``valueSampledData`` of the half-width of the
reconstruction's 90 % band, in mV, sample by sample, with the lead's own origin, factor and period.
:func:`window_observations` gives the list, :func:`window_bundle` a collection Bundle of it.

**An alarm episode** (a raise, the edge's escalations of its priority, its clear: messages that
share ``details.episode_id``) is **one** resource whose id is the episode id and whose content is the
episode's latest state, whichever of its messages it is built from (:func:`episode_resource` takes
them all): the start is the earliest onset, the priority the highest, the code and text those of the
highest-priority raise or escalation, the state ``cleared`` once a clear arrived, with the time it
cleared as the period's end. :func:`alert_resource` builds the same from one message. By category:

- *clinical* (an arrhythmia, ST change): a **DetectedIssue**, whose ``severity`` carries the
  IEC 60601-1-8 priority (high → ``high``, medium → ``moderate``, low → ``low``), whose
  ``evidence`` points at the ECG window Observation, and whose ``mitigation`` records the staff
  acknowledgement. It is the resource for a clinical finding a system detected about a patient
  that someone must act on.
- *technical* (lead off, poor signal, low battery, disconnection, data gap): a **Flag**: a
  warning that applies for a while ("monitoring is degraded"), ``active`` while the condition
  lasts and ``inactive`` once it clears. Its priority goes in the core extension
  ``http://hl7.org/fhir/StructureDefinition/flag-priority`` (codes PL/PM/PH, made for the IHE PCD
  alarm priorities), category ``safety``.

Both carry the alarm state (:data:`EXT_ALARM_STATE`: ``active`` | ``cleared``), the reconstructed
leads the alert rests on with their mean uncertainty (:data:`EXT_RECONSTRUCTED_LEAD`), the model
versions (:data:`EXT_MODEL_VERSION`) and the wearable (:data:`EXT_SOURCE_DEVICE`). The resource id
is the alarm *episode* id.

**Identifiers and references.** Windows, alerts and episodes are UUIDs (``urn:ietf:rfc:3986`` /
``urn:uuid:…``). Patients and devices are referenced by identifier in the systems
:data:`PATIENT_ID_SYSTEM` and :data:`DEVICE_ID_SYSTEM`, unless the caller passes a literal
reference (``patient_ref="Patient/123"`` on the receiving server); either way typed ``Patient``
and ``Device``. ecgstream's own code systems and extensions hang from one configurable base
(:class:`cloud.interop.systems.FhirSystems`, ``systems=`` on every function; the module constants
here are the defaults).

**Narrative.** Every resource carries a generated ``text`` (an XHTML ``div``) saying in words what
its data say, for a receiver that shows resources to people.

Every function validates its output by building the ``fhir.resources`` model (structure and types;
``fhir.resources`` does not check value-set bindings) and raises :class:`FhirExportError` (a
ValueError) with the reason when that fails or the input is inconsistent. Outputs are plain
JSON-able dicts.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from cloud.interop.systems import DEFAULT_SYSTEMS, FhirSystems
from protocol.leads import STANDARD_LEADS
from protocol.messages import Alert, AlertCategory, Priority
from protocol.window_payload import EcgWindow

FHIR_VERSION = "4.3.0"
"""FHIR R4B, wire-compatible with R4 for the resources made here."""

MDC_SYSTEM = "urn:oid:2.16.840.1.113883.6.24"
"""ISO/IEEE 11073-10101 (MDC) nomenclature."""
UCUM_SYSTEM = "http://unitsofmeasure.org"
UUID_SYSTEM = "urn:ietf:rfc:3986"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
FLAG_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/flag-category"
FLAG_PRIORITY_EXTENSION = "http://hl7.org/fhir/StructureDefinition/flag-priority"
FLAG_PRIORITY_SYSTEM = "http://hl7.org/fhir/flag-priority-code"
XHTML_NS = "http://www.w3.org/1999/xhtml"

SYSTEM_BASE = DEFAULT_SYSTEMS.base
"""Base of ecgstream's own names by default (:mod:`cloud.interop.systems`; ``systems=`` changes it)."""
PATIENT_ID_SYSTEM = DEFAULT_SYSTEMS.patient_id
DEVICE_ID_SYSTEM = DEFAULT_SYSTEMS.device_id
ALERT_TYPE_SYSTEM = DEFAULT_SYSTEMS.alert_type
ALARM_ACTION_SYSTEM = DEFAULT_SYSTEMS.alarm_action
ECG_METHOD_SYSTEM = DEFAULT_SYSTEMS.observation_method
EXT_LEAD_SOURCE = DEFAULT_SYSTEMS.ext_lead_source
EXT_LEAD_UNCERTAINTY = DEFAULT_SYSTEMS.ext_lead_uncertainty
EXT_ALARM_STATE = DEFAULT_SYSTEMS.ext_alarm_state
EXT_ALARM_ACKNOWLEDGEMENT = DEFAULT_SYSTEMS.ext_alarm_acknowledgement
EXT_RECONSTRUCTED_LEAD = DEFAULT_SYSTEMS.ext_reconstructed_lead
EXT_MODEL_VERSION = DEFAULT_SYSTEMS.ext_model_version
EXT_SOURCE_DEVICE = DEFAULT_SYSTEMS.ext_source_device

ECG_CODE = ("131328", "MDC_ECG_ELEC_POTL")
LEAD_CODES: dict[str, tuple[str, str]] = {
    "I": ("131329", "MDC_ECG_ELEC_POTL_I"),
    "II": ("131330", "MDC_ECG_ELEC_POTL_II"),
    "III": ("131389", "MDC_ECG_ELEC_POTL_III"),
    "aVR": ("131390", "MDC_ECG_ELEC_POTL_AVR"),
    "aVL": ("131391", "MDC_ECG_ELEC_POTL_AVL"),
    "aVF": ("131392", "MDC_ECG_ELEC_POTL_AVF"),
    "V1": ("131331", "MDC_ECG_ELEC_POTL_V1"),
    "V2": ("131332", "MDC_ECG_ELEC_POTL_V2"),
    "V3": ("131333", "MDC_ECG_ELEC_POTL_V3"),
    "V4": ("131334", "MDC_ECG_ELEC_POTL_V4"),
    "V5": ("131335", "MDC_ECG_ELEC_POTL_V5"),
    "V6": ("131336", "MDC_ECG_ELEC_POTL_V6"),
}
"""MDC code and reference id of each lead: 2·65536 + the 11073-10101 term code (I 257, II 258,
V1…V6 259…264, III 317, aVR 318, aVL 319, aVF 320)."""

DETECTED_ISSUE_SEVERITY = {Priority.HIGH: "high", Priority.MEDIUM: "moderate", Priority.LOW: "low"}
FLAG_PRIORITY = {
    Priority.HIGH: ("PH", "High priority"),
    Priority.MEDIUM: ("PM", "Medium priority"),
    Priority.LOW: ("PL", "Low priority"),
}
_PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}
_INT16 = (-32768, 32767)
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DETAIL_SKIP = {"event", "episode_id", "family", "onset_s", "at_s", "reason"}
_RECONSTRUCTED_NS = uuid.UUID("6f0c4d1e-3a57-5b7e-9a51-2f1d7e0c9b42")
"""Namespace of the reconstructed Observation's id (UUID 5 of the window id): stable across exports."""
UNKNOWN_MODEL = "the ecgstream edge reconstruction model (version not recorded)"


class FhirExportError(ValueError):
    """The input cannot be exported, or the resource built from it is not valid FHIR R4B."""


# -- windows ------------------------------------------------------------------------------------


def reconstructed_observation_id(window_id: str) -> str:
    """The id of a window's reconstructed-leads Observation (stable: the same window, the same id)."""
    return str(uuid.uuid5(_RECONSTRUCTED_NS, str(uuid.UUID(window_id))))


def window_observations(window: EcgWindow, *, patient_ref: str | None = None,
                        reconstruction_model: str | None = None, systems: FhirSystems | None = None,
                        in_bundle: bool = False) -> list[dict[str, Any]]:
    """An ECG window as FHIR R4B Observations: the measured leads (id = window id), then, if the
    window has any, the reconstructed leads (id :func:`reconstructed_observation_id`).

    ``patient_ref``: a literal reference to the patient on the receiving server (``Patient/123``);
    without it the subject is referenced by identifier. ``reconstruction_model``: the model and
    version that reconstructed the leads (e.g. ``reconstruction vae-3to12 1.2``), told in the
    reconstructed Observation's ``method``. ``in_bundle``: ``derivedFrom`` points at the measured
    Observation's ``urn:uuid:`` entry (as in :func:`window_bundle`), else at its identifier.
    """
    sy = systems or DEFAULT_SYSTEMS
    samples, uncertainty = _check_window(window)
    factor = window.lsb_nv / 1e6
    period_ms = 1000.0 / window.fs_hz
    limits = {"lowerLimit": _INT16[0] * window.lsb_nv / 1e6, "upperLimit": _INT16[1] * window.lsb_nv / 1e6}
    reconstructed = set(window.reconstructed)
    unc_row = {lead: i for i, lead in enumerate(window.reconstructed)}
    measured = [lead for lead in window.leads if lead not in reconstructed]
    rebuilt = [lead for lead in window.leads if lead in reconstructed]
    components: dict[str, dict[str, Any]] = {}
    for row, lead in enumerate(window.leads):
        source = "reconstructed" if lead in reconstructed else "measured"
        extensions: list[dict[str, Any]] = [{"url": sy.ext_lead_source, "valueCode": source}]
        if uncertainty is not None and lead in reconstructed:
            band = _sampled_data(uncertainty[unc_row[lead]], factor, period_ms)
            extensions.append({"url": sy.ext_lead_uncertainty, "valueSampledData": band})
        components[lead] = {
            "extension": extensions,
            "code": {"coding": [_lead_coding(lead)], "text": f"Lead {lead} ({source})"},
            "valueSampledData": _sampled_data(samples[row], factor, period_ms) | limits,
        }
    end_us = window.t0_us + window.n_samples * 1_000_000 // window.fs_hz
    span = (f"{window.n_samples} samples at {window.fs_hz} Hz from {_instant(window.t0_us)} "
            f"to {_instant(end_us)}")
    common = {
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": "procedure",
                                  "display": "Procedure"}]}],
        "subject": _patient_reference(window.patient_id, patient_ref, sy),
        "effectivePeriod": {"start": _instant(window.t0_us), "end": _instant(end_us)},
        "device": _device_reference(window.device_id, sy),
    }
    out: list[dict[str, Any]] = []
    if measured:
        how = f"measured by wearable {window.device_id} (leads {', '.join(measured)})"
        code_text = f"ECG, measured leads {', '.join(measured)}"
        out.append(_validated(Observation, {
            "resourceType": "Observation",
            "id": window.window_id,
            "text": _narrative(f"{code_text}, patient {window.patient_id}: {span}.",
                               f"Leads {how}. Not a diagnostic device."),
            "identifier": [_uuid_identifier(window.window_id)],
            **common,
            "code": _ecg_code(code_text),
            "method": {"text": how},
            "note": [{"text": f"Leads {how}. Not a diagnostic device."}],
            "component": [components[lead] for lead in measured],
        }))
    if rebuilt:
        rid = reconstructed_observation_id(window.window_id)
        model = reconstruction_model or UNKNOWN_MODEL
        source_leads = ", ".join(measured) if measured else "the wearable's leads"
        how = f"reconstructed from {source_leads} by {model}"
        code_text = (f"ECG, leads {', '.join(rebuilt)} reconstructed from {source_leads}: estimates, "
                     "not measurements")
        note = f"Leads {', '.join(rebuilt)} {how}: estimates computed from the measured leads, not measurements"
        if uncertainty is not None:
            note += (" (per-sample uncertainty, half-width of the 90 % band, in extension "
                     f"{sy.ext_lead_uncertainty})")
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid,
            "text": _narrative(f"{code_text}, patient {window.patient_id}: {span}.",
                               f"{note}. Not a diagnostic device."),
            "identifier": [_uuid_identifier(rid)],
            **common,
            "code": _ecg_code(code_text),
            "method": {"coding": [{"system": sy.observation_method, "code": "reconstructed",
                                   "display": "Reconstructed from other leads"}], "text": how},
            "note": [{"text": f"{note}. Not a diagnostic device."}],
            "component": [components[lead] for lead in rebuilt],
        }
        if measured:
            resource["derivedFrom"] = [
                {"reference": f"urn:uuid:{uuid.UUID(window.window_id)}", "type": "Observation"} if in_bundle
                else {"type": "Observation", "identifier": _uuid_identifier(window.window_id)}]
        out.append(_validated(Observation, resource))
    return out


def window_bundle(window: EcgWindow, *, patient_ref: str | None = None, reconstruction_model: str | None = None,
                  systems: FhirSystems | None = None) -> dict[str, Any]:
    """A collection Bundle of :func:`window_observations` (measured, then reconstructed)."""
    observations = window_observations(window, patient_ref=patient_ref, reconstruction_model=reconstruction_model,
                                       systems=systems, in_bundle=True)
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"urn:uuid:{uuid.UUID(o['id'])}", "resource": o} for o in observations]}
    return _validated(Bundle, bundle)


def _ecg_code(text: str) -> dict[str, Any]:
    return {"coding": [{"system": MDC_SYSTEM, "code": ECG_CODE[0], "display": ECG_CODE[1]}], "text": text}


def _check_window(window: EcgWindow) -> tuple[np.ndarray, np.ndarray | None]:
    if not isinstance(window, EcgWindow):
        raise FhirExportError(f"expected an EcgWindow, got {type(window).__name__}")
    _check_uuid(window.window_id, "window_id")
    if window.fs_hz <= 0 or window.lsb_nv <= 0:
        raise FhirExportError(f"window {window.window_id}: fs_hz and lsb_nv must be positive, "
                              f"got {window.fs_hz} Hz and {window.lsb_nv} nV")
    unknown = [lead for lead in (*window.leads, *window.reconstructed) if lead not in LEAD_CODES]
    if unknown:
        raise FhirExportError(f"window {window.window_id}: unknown leads {unknown}; expected names from "
                              f"{STANDARD_LEADS}")
    if len(set(window.leads)) != len(window.leads) or not set(window.reconstructed) <= set(window.leads):
        raise FhirExportError(f"window {window.window_id}: leads must be distinct and reconstructed leads "
                              "a subset of them")
    samples = np.asarray(window.samples)
    if samples.ndim != 2 or samples.shape[0] != len(window.leads) or samples.shape[1] == 0:
        raise FhirExportError(f"window {window.window_id}: samples must have shape "
                              f"({len(window.leads)}, n>0), got {samples.shape}")
    _check_counts(samples, window.window_id, "samples", _INT16[0])
    uncertainty = None
    if window.uncertainty is not None:
        uncertainty = np.asarray(window.uncertainty)
        if uncertainty.shape != (len(window.reconstructed), samples.shape[1]):
            expected = (len(window.reconstructed), samples.shape[1])
            raise FhirExportError(f"window {window.window_id}: uncertainty must have shape {expected}, "
                                  f"got {uncertainty.shape}")
        _check_counts(uncertainty, window.window_id, "uncertainty", 0)
    return samples, uncertainty


def _check_counts(values: np.ndarray, window_id: str, what: str, low: int) -> None:
    if values.size == 0:
        return
    if not np.issubdtype(values.dtype, np.integer):
        raise FhirExportError(f"window {window_id}: {what} must be integer counts, got {values.dtype}")
    if values.min() < low or values.max() > _INT16[1]:
        raise FhirExportError(f"window {window_id}: {what} outside {low}..{_INT16[1]}")


def _sampled_data(counts: np.ndarray, factor: float, period_ms: float) -> dict[str, Any]:
    return {
        "origin": {"value": 0, "unit": "mV", "system": UCUM_SYSTEM, "code": "mV"},
        "period": period_ms,
        "factor": factor,
        "dimensions": 1,
        "data": " ".join(map(str, counts.astype(np.int64).tolist())),
    }


# -- alarm episodes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Episode:
    """The latest state of one alarm episode, merged from its messages."""

    episode_id: str
    state: Alert
    """The message that names the episode: its highest-priority raise or escalation (latest on ties)."""
    priority: Priority
    category: AlertCategory
    onset_us: int
    cleared: bool
    cleared_us: int | None
    clear_reason: str | None
    window_id: str | None
    model_versions: dict[str, str]
    messages: int


def clear_time_us(alert: Alert) -> int | None:
    """When a ``cleared`` message says its alarm ended, on the gateway clock (µs): its onset plus
    ``details.at_s - details.onset_s`` (the edge's stream times); None if it does not say."""
    at_s, onset_s = alert.details.get("at_s"), alert.details.get("onset_s")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (at_s, onset_s)):
        return None
    assert isinstance(at_s, int | float) and isinstance(onset_s, int | float)
    return alert.onset_gateway_us + max(0, round((at_s - onset_s) * 1e6))


def _episode(messages: Sequence[Alert], episode_id: str | None, cleared: bool | None,
             cleared_us: int | None) -> _Episode:
    if not messages:
        raise FhirExportError("an alarm episode needs at least one alert message")
    for m in messages:
        if not isinstance(m, Alert):
            raise FhirExportError(f"expected an Alert, got {type(m).__name__}")
        _check_uuid(m.alert_id, "alert_id")
    first = messages[0]
    episode = episode_id if episode_id is not None else str(first.details.get("episode_id") or first.alert_id)
    if not isinstance(episode, str) or not _FHIR_ID.match(episode):
        raise FhirExportError(f"episode id {episode!r} is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)")
    try:
        priorities = [Priority(m.priority) for m in messages]
        categories = {AlertCategory(m.category) for m in messages}
    except ValueError as exc:
        raise FhirExportError(f"alert {first.alert_id}: {exc}") from None
    others = {m.patient_id for m in messages} - {first.patient_id}
    if others or len(categories) != 1:
        raise FhirExportError(f"episode {episode}: its messages must share one patient and one category")
    clears = [m for m in messages if m.details.get("event") == "cleared"]
    live = [(i, m) for i, m in enumerate(messages) if m.details.get("event") != "cleared"] or list(enumerate(messages))
    _, state = max(live, key=lambda im: (_PRIORITY_RANK[priorities[im[0]]], im[0]))
    is_cleared = bool(cleared) if cleared is not None else (cleared_us is not None or bool(clears))
    if cleared_us is not None and not is_cleared:
        raise FhirExportError("cleared_us given for an alarm marked as not cleared")
    onset = min(m.onset_gateway_us for m in messages)
    end = cleared_us
    if end is None and clears:
        known = [t for t in (clear_time_us(m) for m in clears) if t is not None]
        end = min(known) if known else None
    if is_cleared and end is None:
        raise FhirExportError(f"episode {episode} is cleared but no message says when: pass cleared_us")
    if end is not None and end < onset:
        raise FhirExportError(f"alert {first.alert_id}: cleared_us is before the onset")
    reason = next((str(m.details["reason"]) for m in clears if m.details.get("reason")), None)
    versions: dict[str, str] = {}
    for m in messages:
        versions |= dict(m.model_versions)
    return _Episode(
        episode_id=episode, state=state, priority=max(priorities, key=_PRIORITY_RANK.__getitem__),
        category=categories.pop(), onset_us=onset, cleared=is_cleared, cleared_us=end, clear_reason=reason,
        window_id=next((m.window_id for m in messages if m.window_id is not None), None),
        model_versions=versions, messages=len(messages))


def reconstruction_model_of(model_versions: dict[str, str]) -> str | None:
    """How an alert's ``model_versions`` name the reconstruction model (None if they do not)."""
    version = model_versions.get("reconstruction")
    if not version:
        return None
    calibration = model_versions.get("reconstruction_calibration")
    text = f"the ecgstream edge reconstruction model {version}"
    return f"{text} (calibration {calibration})" if calibration else text


def episode_resource(messages: Sequence[Alert], *, episode_id: str | None = None,
                     acknowledged_by: str | None = None, acknowledged_us: int | None = None,
                     cleared: bool | None = None, cleared_us: int | None = None, patient_ref: str | None = None,
                     window_ref: str | Sequence[str] | None = None,
                     systems: FhirSystems | None = None) -> dict[str, Any]:
    """One alarm episode as a DetectedIssue (clinical) or a Flag (technical), in its latest state.

    Args:
        messages: the episode's alert messages (raise, escalations, clear), in the order received;
            the resource is the same whichever subset names the same state.
        episode_id: the alarm episode (default the first message's ``details['episode_id']``, else its id).
        acknowledged_by, acknowledged_us: who acknowledged the episode and when (cloud µs).
        cleared: whether the alarm has ended (default: a ``cleared`` message is among ``messages``, or
            ``cleared_us`` is given); ``cleared_us``: when (µs; default from the clear message,
            :func:`clear_time_us`), ends the resource's period.
        patient_ref: literal patient reference on the receiving server (else by identifier).
        window_ref: reference(s) to the evidence window Observation(s) (default: by identifier, from
            the window id), e.g. ``urn:uuid:…`` inside a Bundle.
        systems: ecgstream's code systems and extension URLs (default :data:`DEFAULT_SYSTEMS`).
    """
    sy = systems or DEFAULT_SYSTEMS
    ep = _episode(messages, episode_id, cleared, cleared_us)
    if acknowledged_us is not None and acknowledged_by is None:
        raise FhirExportError("acknowledged_us given without acknowledged_by")
    alert = ep.state
    period: dict[str, str] = {"start": _instant(ep.onset_us)}
    if ep.cleared_us is not None:
        period["end"] = _instant(ep.cleared_us)
    extensions = [{"url": sy.ext_alarm_state, "valueCode": "cleared" if ep.cleared else "active"},
                  {"url": sy.ext_source_device, "valueReference": _device_reference(alert.device_id, sy)}]
    extensions += [_reconstructed_lead_extension(lead, unc, alert.alert_id, sy)
                   for lead, unc in sorted(alert.reconstructed_leads.items())]
    extensions += [{"url": sy.ext_model_version, "extension": [{"url": "name", "valueString": name},
                                                               {"url": "version", "valueString": version}]}
                   for name, version in sorted(ep.model_versions.items())]
    title = alert.message or alert.alert_type.replace("_", " ")
    code = {"coding": [{"system": sy.alert_type, "code": alert.alert_type,
                        "display": alert.alert_type.replace("_", " ")}],
            "text": title}
    common = {
        "id": ep.episode_id,
        "text": _narrative(*_alarm_story(ep, acknowledged_by, acknowledged_us)),
        "identifier": [_uuid_identifier(ep.episode_id) if _is_uuid(ep.episode_id)
                       else {"system": sy.alarm_episode, "value": ep.episode_id}],
        "code": code,
    }
    author = {"display": "ecgstream edge alarm engine"}
    if ep.category is AlertCategory.CLINICAL:
        resource: dict[str, Any] = {
            "resourceType": "DetectedIssue",
            **common,
            "extension": extensions,
            "status": "final",
            "severity": DETECTED_ISSUE_SEVERITY[ep.priority],
            "patient": _patient_reference(alert.patient_id, patient_ref, sy),
            "identifiedPeriod": period,
            "author": author,
            "detail": _alert_detail(alert, ep),
        }
        evidence = _window_references(ep.window_id, window_ref)
        if evidence:
            resource["evidence"] = [{"detail": evidence}]
        if acknowledged_by is not None:
            mitigation: dict[str, Any] = {
                "action": {"coding": [{"system": sy.alarm_action, "code": "acknowledged",
                                       "display": "Alarm acknowledged"}],
                           "text": "Alarm acknowledged by telemedicine staff"},
                "author": {"display": acknowledged_by},
            }
            if acknowledged_us is not None:
                mitigation["date"] = _instant(acknowledged_us)
            resource["mitigation"] = [mitigation]
        return _validated(DetectedIssue, resource)
    code_p, display_p = FLAG_PRIORITY[ep.priority]
    extensions.insert(0, {"url": FLAG_PRIORITY_EXTENSION, "valueCodeableConcept": {
        "coding": [{"system": FLAG_PRIORITY_SYSTEM, "code": code_p, "display": display_p}]}})
    if acknowledged_by is not None:
        ack: list[dict[str, Any]] = [{"url": "by", "valueString": acknowledged_by}]
        if acknowledged_us is not None:
            ack.append({"url": "at", "valueDateTime": _instant(acknowledged_us)})
        extensions.append({"url": sy.ext_alarm_acknowledgement, "extension": ack})
    code["text"] = _alert_detail(alert, ep)
    resource = {
        "resourceType": "Flag",
        **common,
        "extension": extensions,
        "status": "inactive" if ep.cleared else "active",
        "category": [{"coding": [{"system": FLAG_CATEGORY_SYSTEM, "code": "safety", "display": "Safety"}]}],
        "subject": _patient_reference(alert.patient_id, patient_ref, sy),
        "period": period,
        "author": author,
    }
    return _validated(Flag, resource)


def alert_resource(alert: Alert, *, episode_id: str | None = None, acknowledged_by: str | None = None,
                   acknowledged_us: int | None = None, cleared: bool | None = None,
                   cleared_us: int | None = None, patient_ref: str | None = None,
                   window_ref: str | Sequence[str] | None = None,
                   systems: FhirSystems | None = None) -> dict[str, Any]:
    """:func:`episode_resource` of an episode known by one message (the resource id is the episode id)."""
    if not isinstance(alert, Alert):
        raise FhirExportError(f"expected an Alert, got {type(alert).__name__}")
    return episode_resource([alert], episode_id=episode_id, acknowledged_by=acknowledged_by,
                            acknowledged_us=acknowledged_us, cleared=cleared, cleared_us=cleared_us,
                            patient_ref=patient_ref, window_ref=window_ref, systems=systems)


def alert_bundle(alert: Alert | Sequence[Alert], window: EcgWindow | None = None, *,
                 patient_ref: str | None = None, systems: FhirSystems | None = None,
                 **alert_kwargs: Any) -> dict[str, Any]:
    """A collection Bundle: the episode's resource (``alert``: one message, or all the episode's) and,
    if given, the window it rests on as its Observations (:func:`window_observations`; the
    DetectedIssue's evidence then points at their entries, ``urn:uuid:…``).

    ``alert_kwargs`` go to :func:`episode_resource` (``episode_id``, ``acknowledged_by``, …).
    """
    if "window_ref" in alert_kwargs:
        raise FhirExportError("alert_bundle sets window_ref itself")
    messages = [alert] if isinstance(alert, Alert) else list(alert)
    if not messages:
        raise FhirExportError("an alarm episode needs at least one alert message")
    head = messages[0]
    entries = []
    window_refs: list[str] | None = None
    if window is not None:
        if not isinstance(window, EcgWindow):
            raise FhirExportError(f"expected an EcgWindow, got {type(window).__name__}")
        if window.patient_id != head.patient_id:
            raise FhirExportError(f"window {window.window_id} is of patient {window.patient_id!r}, "
                                  f"the alert of {head.patient_id!r}")
        _check_uuid(window.window_id, "window_id")
        named = next((m.window_id for m in messages if isinstance(m, Alert) and m.window_id is not None), None)
        if named is not None and _is_uuid(named) and uuid.UUID(named) != uuid.UUID(window.window_id):
            raise FhirExportError(f"alert {head.alert_id} rests on window {named}, not {window.window_id}")
        versions: dict[str, str] = {}
        for m in messages:
            versions |= dict(m.model_versions) if isinstance(m, Alert) else {}
        observations = window_observations(window, patient_ref=patient_ref, systems=systems, in_bundle=True,
                                           reconstruction_model=reconstruction_model_of(versions))
        window_refs = [f"urn:uuid:{uuid.UUID(o['id'])}" for o in observations]
        entries += [{"fullUrl": ref, "resource": o} for ref, o in zip(window_refs, observations, strict=True)]
    resource = episode_resource(messages, patient_ref=patient_ref, window_ref=window_refs, systems=systems,
                                **alert_kwargs)
    rid = resource["id"]
    full_url = f"urn:uuid:{uuid.UUID(rid)}" if _is_uuid(rid) else f"{resource['resourceType']}/{rid}"
    entries.insert(0, {"fullUrl": full_url, "resource": resource})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return _validated(Bundle, bundle)


def _alert_detail(alert: Alert, ep: _Episode) -> str:
    parts = [alert.message or alert.alert_type.replace("_", " ")]
    details = {k: v for k, v in alert.details.items() if k not in _DETAIL_SKIP}
    if details:
        parts.append("Details: " + json.dumps(details, sort_keys=True, separators=(", ", ": "), default=str))
    if alert.reconstructed_leads:
        leads = ", ".join(f"{lead} (±{u:.3f} mV)" for lead, u in sorted(alert.reconstructed_leads.items()))
        parts.append(f"Rests on reconstructed leads {leads}: estimates from the measured leads, "
                     "not measurements")
    if ep.cleared:
        parts.append("Cleared" + (f" ({ep.clear_reason})" if ep.clear_reason else ""))
    return ". ".join(parts) + "."


def _alarm_story(ep: _Episode, acknowledged_by: str | None, acknowledged_us: int | None) -> list[str]:
    a = ep.state
    kind = "clinical alarm" if ep.category is AlertCategory.CLINICAL else "technical alarm"
    story = [f"{ep.priority.value.capitalize()}-priority {kind}: {a.message or a.alert_type.replace('_', ' ')} "
             f"({a.alert_type}), patient {a.patient_id}, wearable {a.device_id}.",
             f"Since {_instant(ep.onset_us)}; "
             + (f"cleared at {_instant(ep.cleared_us)}." if ep.cleared and ep.cleared_us is not None
                else "cleared." if ep.cleared else "still active.")]
    if acknowledged_by is not None:
        at = f" at {_instant(acknowledged_us)}" if acknowledged_us is not None else ""
        story.append(f"Acknowledged by {acknowledged_by}{at}.")
    else:
        story.append("Not acknowledged.")
    if a.reconstructed_leads:
        story.append(f"Rests on reconstructed leads {', '.join(sorted(a.reconstructed_leads))}: estimates, "
                     "not measurements.")
    return story


def _reconstructed_lead_extension(lead: str, uncertainty_mv: float, alert_id: str,
                                  sy: FhirSystems) -> dict[str, Any]:
    if lead not in LEAD_CODES:
        raise FhirExportError(f"alert {alert_id}: unknown reconstructed lead {lead!r}")
    return {"url": sy.ext_reconstructed_lead, "extension": [
        {"url": "lead", "valueCoding": _lead_coding(lead)},
        {"url": "uncertainty", "valueQuantity": {"value": float(uncertainty_mv), "unit": "mV",
                                                 "system": UCUM_SYSTEM, "code": "mV"}},
    ]}


# -- shared helpers -----------------------------------------------------------------------------


def _validated(model: Any, resource: dict[str, Any]) -> dict[str, Any]:
    """Build the fhir.resources model (raising FhirExportError) and return its JSON form."""
    try:
        obj = model.model_validate(resource)
    except ValidationError as exc:
        raise FhirExportError(f"{resource.get('resourceType')} is not valid FHIR R4B: {exc}") from None
    return obj.model_dump(mode="json", exclude_none=True)


def _narrative(*paragraphs: str) -> dict[str, str]:
    """A generated Narrative: the paragraphs, escaped, in an XHTML div."""
    body = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return {"status": "generated", "div": f'<div xmlns="{XHTML_NS}">{body}</div>'}


def _instant(t_us: int) -> str:
    """Unix µs as an ISO 8601 UTC dateTime with microseconds (exact, no float)."""
    if not isinstance(t_us, int) or isinstance(t_us, bool) or t_us < 0:
        raise FhirExportError(f"time {t_us!r} must be a non-negative integer of µs")
    try:
        moment = _EPOCH + timedelta(microseconds=t_us)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    except OverflowError:
        raise FhirExportError(f"time {t_us} µs is beyond year 9999") from None


def _lead_coding(lead: str) -> dict[str, str]:
    code, display = LEAD_CODES[lead]
    return {"system": MDC_SYSTEM, "code": code, "display": display}


def _patient_reference(patient_id: str, patient_ref: str | None, sy: FhirSystems) -> dict[str, Any]:
    ref: dict[str, Any] = {"type": "Patient", "identifier": {"system": sy.patient_id, "value": patient_id}}
    if patient_ref is not None:
        if not isinstance(patient_ref, str) or not patient_ref.strip():
            raise FhirExportError(f"patient_ref {patient_ref!r} must be a non-empty reference string")
        ref = {"reference": patient_ref, **ref}
    return ref


def _device_reference(device_id: str, sy: FhirSystems) -> dict[str, Any]:
    return {"type": "Device", "identifier": {"system": sy.device_id, "value": device_id},
            "display": f"ecgstream wearable {device_id}"}


def _window_references(window_id: str | None, window_ref: str | Sequence[str] | None) -> list[dict[str, Any]]:
    if window_ref is not None:
        refs = [window_ref] if isinstance(window_ref, str) else list(window_ref)
        return [{"reference": ref, "type": "Observation"} for ref in refs]
    if window_id is None or not _is_uuid(window_id):
        return []
    return [{"type": "Observation", "identifier": _uuid_identifier(window_id)}]


def _uuid_identifier(value: str) -> dict[str, str]:
    return {"system": UUID_SYSTEM, "value": f"urn:uuid:{uuid.UUID(value)}"}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def _check_uuid(value: object, what: str) -> None:
    if not isinstance(value, str) or not _is_uuid(value):
        raise FhirExportError(f"{what} {value!r} is not a UUID")
