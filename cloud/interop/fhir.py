"""ECG windows and alerts as HL7 FHIR resources, validated with ``fhir.resources``.

**Version: FHIR R4B (4.3.0).** Clinical systems today speak R4 (US Core, the big EHR vendors' APIs,
HAPI's default, IHE and most national profiles such as the German basisprofil-de-r4); R5 is not yet
deployed at scale. ``fhir.resources`` ships R5 and R4B but no plain R4, and R4B left every type used
here (Observation, SampledData, DetectedIssue, Flag, Bundle) as it was in R4, so an R4 receiver reads
this output as is. R5 would not do: its SampledData replaced ``period`` with ``interval`` +
``intervalUnit``, which an R4 receiver cannot read.

**A window** is one Observation (category ``procedure``, as for other ECG procedures: the
``vital-signs`` category implies the vital-signs profile and its LOINC codes, which do not cover
waveforms) coded MDC 131328 ``MDC_ECG_ELEC_POTL`` with one component per lead, coded with the
lead's MDC code (``MDC_ECG_ELEC_POTL_I`` … ``_V6``, the codes of the FHIR ECG example and of
IEEE 11073-10101, partition 2). Each component's SampledData carries the window's int16 counts
unchanged: ``origin`` 0 mV, ``factor`` = ``lsb_nv`` · 1e-6 mV per count, ``period`` = 1000 /
``fs_hz`` ms, ``dimensions`` 1, and ``lowerLimit``/``upperLimit`` the int16 range in mV (a sample at
either limit may have been clipped). So a receiver gets value = count · factor exactly, within
float rounding of the decimal factor.

**Measured or reconstructed** is told on every component by the extension :data:`EXT_LEAD_SOURCE`
(``valueCode`` ``measured`` | ``reconstructed``), in the component's ``code.text`` and in the
Observation's ``note``. A reconstructed lead whose window carries uncertainty also has
:data:`EXT_LEAD_UNCERTAINTY`: a ``valueSampledData`` of the half-width of the reconstruction's
90 % band, in mV, sample by sample, with the lead's own origin, factor and period.

**An alert** becomes, by its category:

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
is the alarm *episode* id (a raise, its escalations and its clear are one resource in successive
states).

**Identifiers and references.** Windows, alerts and episodes are UUIDs (``urn:ietf:rfc:3986`` /
``urn:uuid:…``). Patients and devices are referenced by identifier in the systems
:data:`PATIENT_ID_SYSTEM` and :data:`DEVICE_ID_SYSTEM`, unless the caller passes a literal
reference (``patient_ref="Patient/123"`` on the receiving server). ecgstream's own code systems
and extensions live under :data:`SYSTEM_BASE`, a placeholder (``.example`` is reserved) until the
project publishes its StructureDefinitions; a deployment that registers its own base changes it in
one place.

Every function validates its output by building the ``fhir.resources`` model (structure and types;
``fhir.resources`` does not check value-set bindings) and raises :class:`FhirExportError` (a
ValueError) with the reason when that fails or the input is inconsistent. Outputs are plain
JSON-able dicts.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

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

SYSTEM_BASE = "http://ecgstream.example/fhir"
"""Base of ecgstream's own naming systems, code systems and extensions (placeholder, see above)."""
PATIENT_ID_SYSTEM = f"{SYSTEM_BASE}/NamingSystem/patient-id"
DEVICE_ID_SYSTEM = f"{SYSTEM_BASE}/NamingSystem/device-id"
ALERT_TYPE_SYSTEM = f"{SYSTEM_BASE}/CodeSystem/alert-type"
ALARM_ACTION_SYSTEM = f"{SYSTEM_BASE}/CodeSystem/alarm-action"
EXT_LEAD_SOURCE = f"{SYSTEM_BASE}/StructureDefinition/ecg-lead-source"
EXT_LEAD_UNCERTAINTY = f"{SYSTEM_BASE}/StructureDefinition/ecg-lead-uncertainty"
EXT_ALARM_STATE = f"{SYSTEM_BASE}/StructureDefinition/alarm-state"
EXT_ALARM_ACKNOWLEDGEMENT = f"{SYSTEM_BASE}/StructureDefinition/alarm-acknowledgement"
EXT_RECONSTRUCTED_LEAD = f"{SYSTEM_BASE}/StructureDefinition/alert-reconstructed-lead"
EXT_MODEL_VERSION = f"{SYSTEM_BASE}/StructureDefinition/model-version"
EXT_SOURCE_DEVICE = f"{SYSTEM_BASE}/StructureDefinition/source-device"

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
_INT16 = (-32768, 32767)
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DETAIL_SKIP = {"event", "episode_id", "family"}


class FhirExportError(ValueError):
    """The input cannot be exported, or the resource built from it is not valid FHIR R4B."""


# -- windows ------------------------------------------------------------------------------------


def window_observation(window: EcgWindow, *, patient_ref: str | None = None) -> dict[str, Any]:
    """An ECG window as a FHIR R4B Observation (see the module docstring for the mapping).

    ``patient_ref``: a literal reference to the patient on the receiving server (``Patient/123``);
    without it the subject is referenced by identifier in :data:`PATIENT_ID_SYSTEM`.
    """
    samples, uncertainty = _check_window(window)
    factor = window.lsb_nv / 1e6
    period_ms = 1000.0 / window.fs_hz
    limits = {"lowerLimit": _INT16[0] * window.lsb_nv / 1e6, "upperLimit": _INT16[1] * window.lsb_nv / 1e6}
    reconstructed = set(window.reconstructed)
    unc_row = {lead: i for i, lead in enumerate(window.reconstructed)}
    components = []
    for row, lead in enumerate(window.leads):
        source = "reconstructed" if lead in reconstructed else "measured"
        extensions: list[dict[str, Any]] = [{"url": EXT_LEAD_SOURCE, "valueCode": source}]
        if uncertainty is not None and lead in reconstructed:
            band = _sampled_data(uncertainty[unc_row[lead]], factor, period_ms)
            extensions.append({"url": EXT_LEAD_UNCERTAINTY, "valueSampledData": band})
        components.append({
            "extension": extensions,
            "code": {"coding": [_lead_coding(lead)], "text": f"Lead {lead} ({source})"},
            "valueSampledData": _sampled_data(samples[row], factor, period_ms) | limits,
        })
    start_us = window.t0_us
    end_us = window.t0_us + window.n_samples * 1_000_000 // window.fs_hz
    resource = {
        "resourceType": "Observation",
        "id": window.window_id,
        "identifier": [_uuid_identifier(window.window_id)],
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": "procedure",
                                  "display": "Procedure"}]}],
        "code": {"coding": [{"system": MDC_SYSTEM, "code": ECG_CODE[0], "display": ECG_CODE[1]}],
                 "text": f"ECG, {len(window.leads)} leads"},
        "subject": _patient_reference(window.patient_id, patient_ref),
        "effectivePeriod": {"start": _instant(start_us), "end": _instant(end_us)},
        "device": _device_reference(window.device_id),
        "note": [{"text": _window_note(window)}],
        "component": components,
    }
    return _validated(Observation, resource)


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


def _window_note(window: EcgWindow) -> str:
    measured = [lead for lead in window.leads if lead not in window.reconstructed]
    text = f"Leads {', '.join(measured) or 'none'} measured by wearable {window.device_id}"
    if window.reconstructed:
        text += (f"; leads {', '.join(window.reconstructed)} reconstructed by the ecgstream edge from the "
                 "measured leads: estimates, not measurements")
        if window.uncertainty is not None:
            text += (" (per-sample uncertainty, half-width of the 90 % band, in extension "
                     f"{EXT_LEAD_UNCERTAINTY})")
    return text + ". Not a diagnostic device."


# -- alerts -------------------------------------------------------------------------------------


def alert_resource(alert: Alert, *, episode_id: str | None = None, acknowledged_by: str | None = None,
                   acknowledged_us: int | None = None, cleared: bool | None = None,
                   cleared_us: int | None = None, patient_ref: str | None = None,
                   window_ref: str | None = None) -> dict[str, Any]:
    """An alert as a DetectedIssue (clinical) or a Flag (technical); the resource id is the episode id.

    Args:
        alert: the alert message (the latest of its episode gives the current state).
        episode_id: the alarm episode (default ``details['episode_id']``, else the alert id).
        acknowledged_by, acknowledged_us: who acknowledged the episode and when (cloud µs).
        cleared: whether the alarm condition has ended (default: the message is a ``cleared`` event,
            or ``cleared_us`` is given); ``cleared_us``: when (µs), ends the resource's period.
        patient_ref: literal patient reference on the receiving server (else by identifier).
        window_ref: reference to the evidence window Observation (default: by identifier, from
            ``alert.window_id``), e.g. ``urn:uuid:…`` inside a Bundle.
    """
    if not isinstance(alert, Alert):
        raise FhirExportError(f"expected an Alert, got {type(alert).__name__}")
    _check_uuid(alert.alert_id, "alert_id")
    episode = episode_id if episode_id is not None else str(alert.details.get("episode_id") or alert.alert_id)
    if not isinstance(episode, str) or not _FHIR_ID.match(episode):
        raise FhirExportError(f"episode id {episode!r} is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)")
    if acknowledged_us is not None and acknowledged_by is None:
        raise FhirExportError("acknowledged_us given without acknowledged_by")
    is_cleared = bool(cleared) if cleared is not None else (
        cleared_us is not None or alert.details.get("event") == "cleared")
    if cleared_us is not None and not is_cleared:
        raise FhirExportError("cleared_us given for an alarm marked as not cleared")
    try:
        priority, category = Priority(alert.priority), AlertCategory(alert.category)
    except ValueError as exc:
        raise FhirExportError(f"alert {alert.alert_id}: {exc}") from None
    period: dict[str, str] = {"start": _instant(alert.onset_gateway_us)}
    if cleared_us is not None:
        if cleared_us < alert.onset_gateway_us:
            raise FhirExportError(f"alert {alert.alert_id}: cleared_us is before the onset")
        period["end"] = _instant(cleared_us)
    extensions = [{"url": EXT_ALARM_STATE, "valueCode": "cleared" if is_cleared else "active"},
                  {"url": EXT_SOURCE_DEVICE, "valueReference": _device_reference(alert.device_id)}]
    extensions += [_reconstructed_lead_extension(lead, unc, alert.alert_id)
                   for lead, unc in sorted(alert.reconstructed_leads.items())]
    extensions += [{"url": EXT_MODEL_VERSION, "extension": [{"url": "name", "valueString": name},
                                                            {"url": "version", "valueString": version}]}
                   for name, version in sorted(alert.model_versions.items())]
    code = {"coding": [{"system": ALERT_TYPE_SYSTEM, "code": alert.alert_type,
                        "display": alert.alert_type.replace("_", " ")}],
            "text": alert.message or alert.alert_type.replace("_", " ")}
    common = {
        "id": episode,
        "identifier": [_uuid_identifier(episode) if _is_uuid(episode)
                       else {"system": f"{SYSTEM_BASE}/NamingSystem/alarm-episode", "value": episode}],
        "code": code,
    }
    author = {"display": "ecgstream edge alarm engine"}
    if category is AlertCategory.CLINICAL:
        resource: dict[str, Any] = {
            "resourceType": "DetectedIssue",
            **common,
            "extension": extensions,
            "status": "final",
            "severity": DETECTED_ISSUE_SEVERITY[priority],
            "patient": _patient_reference(alert.patient_id, patient_ref),
            "identifiedPeriod": period,
            "author": author,
            "detail": _alert_detail(alert),
        }
        evidence = _window_reference(alert.window_id, window_ref)
        if evidence is not None:
            resource["evidence"] = [{"detail": [evidence]}]
        if acknowledged_by is not None:
            mitigation: dict[str, Any] = {
                "action": {"coding": [{"system": ALARM_ACTION_SYSTEM, "code": "acknowledged",
                                       "display": "Alarm acknowledged"}],
                           "text": "Alarm acknowledged by telemedicine staff"},
                "author": {"display": acknowledged_by},
            }
            if acknowledged_us is not None:
                mitigation["date"] = _instant(acknowledged_us)
            resource["mitigation"] = [mitigation]
        return _validated(DetectedIssue, resource)
    code_p, display_p = FLAG_PRIORITY[priority]
    extensions.insert(0, {"url": FLAG_PRIORITY_EXTENSION, "valueCodeableConcept": {
        "coding": [{"system": FLAG_PRIORITY_SYSTEM, "code": code_p, "display": display_p}]}})
    if acknowledged_by is not None:
        ack: list[dict[str, Any]] = [{"url": "by", "valueString": acknowledged_by}]
        if acknowledged_us is not None:
            ack.append({"url": "at", "valueDateTime": _instant(acknowledged_us)})
        extensions.append({"url": EXT_ALARM_ACKNOWLEDGEMENT, "extension": ack})
    code["text"] = _alert_detail(alert)
    resource = {
        "resourceType": "Flag",
        **common,
        "extension": extensions,
        "status": "inactive" if is_cleared else "active",
        "category": [{"coding": [{"system": FLAG_CATEGORY_SYSTEM, "code": "safety", "display": "Safety"}]}],
        "subject": _patient_reference(alert.patient_id, patient_ref),
        "period": period,
        "author": author,
    }
    return _validated(Flag, resource)


def alert_bundle(alert: Alert, window: EcgWindow | None = None, *, patient_ref: str | None = None,
                 **alert_kwargs: Any) -> dict[str, Any]:
    """A collection Bundle: the alert's resource and, if given, the window it rests on (the
    DetectedIssue's evidence then points at the window's entry, ``urn:uuid:<window_id>``).

    ``alert_kwargs`` go to :func:`alert_resource` (``episode_id``, ``acknowledged_by``, …).
    """
    if "window_ref" in alert_kwargs:
        raise FhirExportError("alert_bundle sets window_ref itself")
    entries = []
    window_ref = None
    if window is not None:
        if not isinstance(window, EcgWindow):
            raise FhirExportError(f"expected an EcgWindow, got {type(window).__name__}")
        if window.patient_id != alert.patient_id:
            raise FhirExportError(f"window {window.window_id} is of patient {window.patient_id!r}, "
                                  f"the alert of {alert.patient_id!r}")
        _check_uuid(window.window_id, "window_id")
        if alert.window_id is not None and uuid.UUID(alert.window_id) != uuid.UUID(window.window_id):
            raise FhirExportError(f"alert {alert.alert_id} rests on window {alert.window_id}, "
                                  f"not {window.window_id}")
        observation = window_observation(window, patient_ref=patient_ref)
        window_ref = f"urn:uuid:{uuid.UUID(window.window_id)}"
        entries.append({"fullUrl": window_ref, "resource": observation})
    resource = alert_resource(alert, patient_ref=patient_ref, window_ref=window_ref, **alert_kwargs)
    rid = resource["id"]
    full_url = f"urn:uuid:{uuid.UUID(rid)}" if _is_uuid(rid) else f"{resource['resourceType']}/{rid}"
    entries.insert(0, {"fullUrl": full_url, "resource": resource})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return _validated(Bundle, bundle)


def _alert_detail(alert: Alert) -> str:
    parts = [alert.message or alert.alert_type.replace("_", " ")]
    details = {k: v for k, v in alert.details.items() if k not in _DETAIL_SKIP}
    if details:
        parts.append("Details: " + json.dumps(details, sort_keys=True, separators=(", ", ": "), default=str))
    if alert.reconstructed_leads:
        leads = ", ".join(f"{lead} (±{u:.3f} mV)" for lead, u in sorted(alert.reconstructed_leads.items()))
        parts.append(f"Rests on reconstructed leads {leads}: estimates from the measured leads, "
                     "not measurements")
    return ". ".join(parts) + "."


def _reconstructed_lead_extension(lead: str, uncertainty_mv: float, alert_id: str) -> dict[str, Any]:
    if lead not in LEAD_CODES:
        raise FhirExportError(f"alert {alert_id}: unknown reconstructed lead {lead!r}")
    return {"url": EXT_RECONSTRUCTED_LEAD, "extension": [
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


def _patient_reference(patient_id: str, patient_ref: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {"identifier": {"system": PATIENT_ID_SYSTEM, "value": patient_id}}
    if patient_ref is not None:
        if not isinstance(patient_ref, str) or not patient_ref.strip():
            raise FhirExportError(f"patient_ref {patient_ref!r} must be a non-empty reference string")
        ref = {"reference": patient_ref, **ref}
    return ref


def _device_reference(device_id: str) -> dict[str, Any]:
    return {"type": "Device", "identifier": {"system": DEVICE_ID_SYSTEM, "value": device_id},
            "display": f"ecgstream wearable {device_id}"}


def _window_reference(window_id: str | None, window_ref: str | None) -> dict[str, Any] | None:
    if window_ref is not None:
        return {"reference": window_ref, "type": "Observation"}
    if window_id is None:
        return None
    return {"type": "Observation", "identifier": _uuid_identifier(window_id)}


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

