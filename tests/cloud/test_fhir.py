"""FHIR export of windows and alarm episodes (cloud.interop.fhir): what a receiving clinical system reads back.

Every export is validated twice: by ``fhir.resources`` (the exporter's own check) and against the
official FHIR R4B JSON schema vendored in ``cloud/interop/schema`` (:func:`assert_valid_fhir`).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.observation import Observation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.interop.fhir import (
    EXT_ALARM_STATE,
    EXT_LEAD_SOURCE,
    EXT_LEAD_UNCERTAINTY,
    EXT_RECONSTRUCTED_LEAD,
    FLAG_PRIORITY_EXTENSION,
    MDC_SYSTEM,
    FhirExportError,
    alert_bundle,
    alert_resource,
    episode_resource,
    reconstructed_observation_id,
    window_bundle,
    window_observations,
)
from cloud.interop.systems import DEFAULT_SYSTEMS, FhirSystems
from protocol.leads import STANDARD_LEADS
from protocol.window_payload import EcgWindow
from tests.cloud.api_support import assert_valid_fhir
from tests.cloud.conftest import T0_US, make_alert, make_window

# IEEE 11073-10101 codes as published in the FHIR ECG example (131072 + term code): the reference.
MDC_LEADS = {
    "I": "131329", "II": "131330", "III": "131389", "aVR": "131390", "aVL": "131391", "aVF": "131392",
    "V1": "131331", "V2": "131332", "V3": "131333", "V4": "131334", "V5": "131335", "V6": "131336",
}
CODE_TO_LEAD = {code: lead for lead, code in MDC_LEADS.items()}


# -- what a receiver does with the JSON, written independently of the exporter ------------------


def decode_sampled_data(sd: dict) -> np.ndarray:
    """SampledData -> values in the origin's unit, as the FHIR spec defines it (origin + factor · x)."""
    raw = np.array([float(tok) for tok in sd["data"].split(" ")])
    return sd["origin"]["value"] + sd.get("factor", 1) * raw


def leads_of(observations: dict | list[dict]) -> dict[str, dict]:
    """``{lead name: component}`` found by MDC code, over one Observation or several, in window order."""
    out = {}
    for observation in [observations] if isinstance(observations, dict) else observations:
        for comp in observation["component"]:
            codes = [c["code"] for c in comp["code"]["coding"] if c["system"] == MDC_SYSTEM]
            assert len(codes) == 1
            out[CODE_TO_LEAD[codes[0]]] = comp
    return out


def in_window_order(leads: dict[str, dict], window: EcgWindow) -> list[str]:
    return [lead for lead in window.leads if lead in leads]


def window_observation(window: EcgWindow, **kw) -> list[dict]:
    """The window's Observations, each checked by fhir.resources and by the official R4B schema."""
    observations = window_observations(window, **kw)
    for obs in observations:
        Observation.model_validate(obs)
        assert_valid_fhir(obs)
    return observations


def narrative(resource: dict) -> str:
    text = resource["text"]
    assert text["status"] == "generated"
    assert text["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">') and text["div"].endswith("</div>")
    return text["div"]


def extension(element: dict, url: str) -> list[dict]:
    return [e for e in element.get("extension", []) if e["url"] == url]


def parse_instant(value: str) -> int:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(round(moment.timestamp() * 1e6))


# -- windows ------------------------------------------------------------------------------------


def test_window_round_trip_within_one_lsb_with_every_lead_and_its_code():
    window = make_window(realistic=True, seed=3)
    observations = window_observation(window)  # a receiver's parser accepts it
    json.dumps(observations)  # plain JSON
    ecg = {"system": MDC_SYSTEM, "code": "131328", "display": "MDC_ECG_ELEC_POTL"}
    assert all(o["code"]["coding"][0] == ecg for o in observations)
    leads = leads_of(observations)
    assert in_window_order(leads, window) == list(window.leads) == list(STANDARD_LEADS)
    obs = observations[0]
    lsb_mv = window.lsb_nv * 1e-6
    for row, lead in enumerate(window.leads):
        sd = leads[lead]["valueSampledData"]
        assert sd["origin"]["code"] == "mV" and sd["dimensions"] == 1
        assert round(1000 / sd["period"]) == window.fs_hz
        mv = decode_sampled_data(sd)
        assert mv.shape == (window.n_samples,)
        assert np.max(np.abs(mv - window.millivolts()[row])) <= lsb_mv
    start, end = obs["effectivePeriod"]["start"], obs["effectivePeriod"]["end"]
    assert parse_instant(start) == window.t0_us
    assert parse_instant(end) - parse_instant(start) == window.n_samples * 1_000_000 // window.fs_hz
    assert obs["subject"]["identifier"]["value"] == window.patient_id
    assert obs["subject"]["type"] == "Patient"
    assert obs["device"]["identifier"]["value"] == window.device_id and obs["device"]["type"] == "Device"
    assert obs["id"] == window.window_id
    assert all(o["effectivePeriod"] == obs["effectivePeriod"] for o in observations)
    assert window.patient_id in narrative(obs) and "II, V1, V5" in narrative(obs)


def test_reconstructed_leads_are_flagged_and_carry_their_uncertainty():
    window = make_window(seed=5)
    observations = window_observation(window)
    leads = leads_of(observations)
    for lead, comp in leads.items():
        source = extension(comp, EXT_LEAD_SOURCE)
        reconstructed = lead in window.reconstructed
        assert [e["valueCode"] for e in source] == ["reconstructed" if reconstructed else "measured"]
        assert ("reconstructed" in comp["code"]["text"]) == reconstructed
        bands = extension(comp, EXT_LEAD_UNCERTAINTY)
        assert len(bands) == (1 if reconstructed else 0)
        if reconstructed:
            expected = window.uncertainty_mv()[window.reconstructed.index(lead)]
            got = decode_sampled_data(bands[0]["valueSampledData"])
            assert np.max(np.abs(got - expected)) <= window.lsb_nv * 1e-6
    measured = {lead for lead, c in leads.items()
                if extension(c, EXT_LEAD_SOURCE)[0]["valueCode"] == "measured"}
    assert measured == {"II", "V1", "V5"}
    note = observations[1]["note"][0]["text"]
    assert "reconstructed" in note and "II, V1, V5" in note


def test_a_consumer_ignoring_extensions_cannot_take_reconstructed_leads_for_measured_ones():
    window = make_window(seed=6)
    measured, rebuilt = window_observation(window, reconstruction_model="vae-3to12 1.4")
    # the measured Observation holds the measured leads only: nothing in it is an estimate
    assert measured["id"] == window.window_id
    assert list(leads_of(measured)) == ["II", "V1", "V5"]
    assert measured["method"]["text"].startswith("measured by wearable dev-1")
    # the reconstructed leads are a separate Observation that says what it is in core elements
    assert rebuilt["id"] == reconstructed_observation_id(window.window_id) != window.window_id
    assert rebuilt["id"] == window_observation(window)[1]["id"]  # stable
    assert set(leads_of(rebuilt)) == set(window.reconstructed)
    assert rebuilt["method"]["text"] == "reconstructed from II, V1, V5 by vae-3to12 1.4"
    assert rebuilt["method"]["coding"][0]["code"] == "reconstructed"
    assert "not measurements" in rebuilt["code"]["text"] and "not measurements" in narrative(rebuilt)
    assert rebuilt["derivedFrom"][0]["identifier"]["value"] == f"urn:uuid:{window.window_id}"
    # without a model name the method still says it is a reconstruction
    assert window_observation(window)[1]["method"]["text"].startswith("reconstructed from II, V1, V5 by ")


def test_a_window_bundle_links_the_reconstruction_to_its_measured_leads():
    window = make_window(seed=7, seconds=2.0)
    bundle = assert_valid_fhir(window_bundle(window, reconstruction_model="vae 2"))
    Bundle.model_validate(bundle)
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    measured, rebuilt = (e["resource"] for e in bundle["entry"])
    assert urls[rebuilt["derivedFrom"][0]["reference"]] is measured


def test_a_measured_only_window_has_no_reconstruction_marks():
    rng = np.random.default_rng(1)
    samples = rng.integers(-2000, 2000, (3, 2500), dtype=np.int16)
    window = EcgWindow(window_id=EcgWindow.new_id(), patient_id="pat-1", device_id="dev-1", t0_us=T0_US,
                       fs_hz=250, leads=("II", "V1", "V5"), samples=samples, lsb_nv=2500)
    observations = window_observation(window, patient_ref="Patient/abc")
    assert len(observations) == 1  # nothing reconstructed, no reconstruction Observation
    obs = observations[0]
    assert obs["subject"]["reference"] == "Patient/abc" and obs["subject"]["type"] == "Patient"
    leads = leads_of(obs)
    assert list(leads) == ["II", "V1", "V5"]
    assert all(extension(c, EXT_LEAD_SOURCE)[0]["valueCode"] == "measured" for c in leads.values())
    assert not any(extension(c, EXT_LEAD_UNCERTAINTY) for c in leads.values())
    assert np.array_equal(decode_sampled_data(leads["V1"]["valueSampledData"]), window.millivolts()[1])


def test_reconstructed_leads_without_uncertainty_are_still_flagged():
    window = make_window(seed=2)
    window = EcgWindow(**{**window.__dict__, "uncertainty": None})
    leads = leads_of(window_observation(window))
    assert extension(leads["aVF"], EXT_LEAD_SOURCE)[0]["valueCode"] == "reconstructed"
    assert not extension(leads["aVF"], EXT_LEAD_UNCERTAINTY)


@pytest.mark.parametrize("change, match", [
    ({"samples": np.zeros((11, 10), dtype=np.int16)}, "shape"),
    ({"window_id": "not-a-uuid"}, "UUID"),
    ({"samples": np.full((12, 10), 40000)}, "outside"),
    ({"samples": np.zeros((12, 10), dtype=float)}, "integer"),
    ({"uncertainty": np.zeros((9, 11), dtype=np.int16)}, "uncertainty"),
    ({"fs_hz": 0}, "positive"),
])
def test_an_inconsistent_window_is_refused_with_the_reason(change, match):
    window = make_window(seconds=0.02)
    bad = EcgWindow(**{**window.__dict__, **change})
    with pytest.raises(FhirExportError, match=match):
        window_observation(bad)


@st.composite
def windows(draw):
    mask = draw(st.lists(st.booleans(), min_size=12, max_size=12).filter(any))
    leads = tuple(lead for lead, on in zip(STANDARD_LEADS, mask, strict=True) if on)
    recon = tuple(lead for lead in leads if draw(st.booleans()))
    n = draw(st.integers(1, 400))
    fs = draw(st.sampled_from([1, 100, 128, 250, 257, 360, 500, 1000]))
    lsb = draw(st.integers(1, 65535))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    samples = rng.integers(-32768, 32768, (len(leads), n), dtype=np.int64).astype(np.int16)
    samples[:, 0] = draw(st.sampled_from([-32768, 32767, 0]))  # the extremes survive
    unc = rng.integers(0, 32768, (len(recon), n)).astype(np.int16) if recon and draw(st.booleans()) else None
    t0_us = draw(st.integers(0, 4_000_000_000_000_000))
    return EcgWindow(window_id=EcgWindow.new_id(), patient_id="p", device_id="d", t0_us=t0_us, fs_hz=fs,
                     leads=leads, samples=samples, reconstructed=recon, uncertainty=unc, lsb_nv=lsb)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows())
def test_any_window_shape_exports_valid_fhir_that_decodes_back(window):
    observations = window_observation(window)
    leads = leads_of(json.loads(json.dumps(observations)))
    assert in_window_order(leads, window) == list(window.leads)
    assert [list(leads_of(o)) for o in observations] == [
        group for group in ([lead for lead in window.leads if lead not in window.reconstructed],
                            [lead for lead in window.leads if lead in window.reconstructed]) if group]
    lsb_mv = window.lsb_nv * 1e-6
    for row, lead in enumerate(window.leads):
        comp = leads[lead]
        got = decode_sampled_data(comp["valueSampledData"])
        assert np.max(np.abs(got - window.millivolts()[row])) <= lsb_mv
        assert extension(comp, EXT_LEAD_SOURCE)[0]["valueCode"] == (
            "reconstructed" if lead in window.reconstructed else "measured")
        assert len(extension(comp, EXT_LEAD_UNCERTAINTY)) == int(
            window.uncertainty is not None and lead in window.reconstructed)
    assert all(parse_instant(o["effectivePeriod"]["start"]) == window.t0_us for o in observations)


# -- alerts -------------------------------------------------------------------------------------

SEVERITY = {"high": "high", "medium": "moderate", "low": "low"}
FLAG_CODE = {"high": "PH", "medium": "PM", "low": "PL"}


@pytest.mark.parametrize("priority", ["high", "medium", "low"])
def test_a_clinical_alert_is_a_detected_issue_with_severity_from_priority(priority):
    window_id = EcgWindow.new_id()
    alert = make_alert(priority=priority, window_id=window_id)
    res = assert_valid_fhir(alert_resource(alert))
    DetectedIssue.model_validate(res)
    assert res["resourceType"] == "DetectedIssue"
    assert res["severity"] == SEVERITY[priority]
    assert res["id"] == alert.details["episode_id"]
    assert res["patient"]["identifier"]["value"] == alert.patient_id and res["patient"]["type"] == "Patient"
    assert parse_instant(res["identifiedPeriod"]["start"]) == alert.onset_gateway_us
    assert "still active" in narrative(res) and "Not acknowledged" in narrative(res)
    assert "end" not in res["identifiedPeriod"]
    evidence = res["evidence"][0]["detail"][0]
    assert evidence["identifier"]["value"] == f"urn:uuid:{window_id}"
    assert [e["valueCode"] for e in extension(res, EXT_ALARM_STATE)] == ["active"]
    recon = {next(x["valueCoding"]["code"] for x in e["extension"] if x["url"] == "lead"):
             next(x["valueQuantity"]["value"] for x in e["extension"] if x["url"] == "uncertainty")
             for e in extension(res, EXT_RECONSTRUCTED_LEAD)}
    assert recon == {MDC_LEADS[lead]: unc for lead, unc in alert.reconstructed_leads.items()}
    assert "reconstructed" in res["detail"]
    assert "mitigation" not in res


@pytest.mark.parametrize("priority", ["high", "medium", "low"])
def test_a_technical_alert_is_a_flag_with_the_alarm_priority_extension(priority):
    alert = make_alert(category="technical", alert_type="lead_off", priority=priority, family="lead_off")
    res = assert_valid_fhir(alert_resource(alert))
    Flag.model_validate(res)
    assert res["resourceType"] == "Flag" and res["status"] == "active"
    assert res["subject"]["type"] == "Patient" and "end" not in res["period"]
    (prio,) = extension(res, FLAG_PRIORITY_EXTENSION)
    assert prio["valueCodeableConcept"]["coding"][0]["code"] == FLAG_CODE[priority]
    assert res["subject"]["identifier"]["value"] == alert.patient_id
    assert res["code"]["coding"][0]["code"] == "lead_off"


def test_acknowledged_and_cleared_alarms_show_both():
    raised = make_alert(priority="high")
    ack_us, clear_us = raised.onset_gateway_us + 4_000_000, raised.onset_gateway_us + 60_000_000
    res = alert_resource(raised, acknowledged_by="nurse.kim", acknowledged_us=ack_us, cleared_us=clear_us)
    assert res["mitigation"][0]["author"]["display"] == "nurse.kim"
    assert parse_instant(res["mitigation"][0]["date"]) == ack_us
    assert parse_instant(res["identifiedPeriod"]["end"]) == clear_us
    assert extension(res, EXT_ALARM_STATE)[0]["valueCode"] == "cleared"

    assert "nurse.kim" in narrative(res) and "cleared at" in narrative(res)

    cleared = make_alert(category="technical", alert_type="poor_signal", priority="medium", event="cleared",
                         episode_id=raised.alert_id)
    cleared = dataclasses.replace(cleared, details={**cleared.details, "onset_s": 12.0, "at_s": 72.5})
    flag = assert_valid_fhir(alert_resource(cleared, acknowledged_by="nurse.kim"))
    assert flag["status"] == "inactive" and flag["id"] == raised.alert_id
    assert extension(flag, EXT_ALARM_STATE)[0]["valueCode"] == "cleared"
    # a cleared Flag's period ends when the edge says the alarm cleared (its onset + at_s - onset_s)
    assert parse_instant(flag["period"]["end"]) == cleared.onset_gateway_us + 60_500_000
    with pytest.raises(FhirExportError, match="cleared_us"):  # a clear that does not say when is refused
        alert_resource(make_alert(category="technical", event="cleared"))


def test_a_resource_fhir_resources_rejects_raises_a_clear_error():
    # the alert schema allows any 1-64 characters; a FHIR code may not hold a double space
    with pytest.raises(FhirExportError, match=r"(?s)not valid FHIR R4B.*code"):
        alert_resource(make_alert(alert_type="two  spaces"))


def test_bad_alert_arguments_are_refused():
    alert = make_alert()
    with pytest.raises(FhirExportError, match="episode"):
        alert_resource(alert, episode_id="has space")
    with pytest.raises(FhirExportError, match="before the onset"):
        alert_resource(alert, cleared_us=alert.onset_gateway_us - 1)
    with pytest.raises(FhirExportError, match="acknowledged_by"):
        alert_resource(alert, acknowledged_us=alert.onset_gateway_us)


def test_alert_bundle_holds_the_alert_and_its_window_linked_inside_the_bundle():
    window = make_window(seconds=2.0)
    alert = make_alert(window_id=window.window_id)
    bundle = assert_valid_fhir(alert_bundle(alert, window, acknowledged_by="dr.o"))
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["DetectedIssue", "Observation", "Observation"]
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    refs = [d["reference"] for d in bundle["entry"][0]["resource"]["evidence"][0]["detail"]]
    assert urls[refs[0]]["id"] == window.window_id  # the evidence resolves inside the bundle
    assert len(leads_of([urls[ref] for ref in refs])) == 12
    # the alert's model versions name the reconstruction model
    assert urls[refs[1]]["method"]["text"].startswith("reconstructed from II, V1, V5 by ")

    technical = make_alert(category="technical", alert_type="lead_off", priority="low")
    only = alert_bundle(technical, None)
    assert [e["resource"]["resourceType"] for e in only["entry"]] == ["Flag"]


def test_alert_bundle_refuses_a_window_of_another_patient_or_another_window():
    window = make_window(patient_id="pat-2", seconds=0.5)
    with pytest.raises(FhirExportError, match="patient"):
        alert_bundle(make_alert("pat-1"), window)
    other = make_window(patient_id="pat-1", seconds=0.5)
    with pytest.raises(FhirExportError, match="rests on window"):
        alert_bundle(make_alert("pat-1", window_id=EcgWindow.new_id()), other)


# -- alarm episodes: one resource, its latest state ---------------------------------------------


def episode_messages():
    """A VT episode as the edge sends it: raised (medium), escalated (high), cleared."""
    raised = make_alert(priority="medium", onset_us=T0_US, alert_type="vt_run")
    episode = raised.alert_id
    escalated = make_alert(priority="high", event="escalated", episode_id=episode, onset_us=T0_US)
    cleared = make_alert(priority="high", event="cleared", episode_id=episode, onset_us=T0_US)
    cleared = dataclasses.replace(cleared, details={**cleared.details, "onset_s": 100.0, "at_s": 130.0,
                                                    "reason": "condition ended"})
    return raised, escalated, cleared


def test_an_episode_is_one_resource_whatever_message_it_is_asked_for():
    raised, escalated, cleared = episode_messages()
    messages = [raised, escalated, cleared]
    whole = assert_valid_fhir(episode_resource(messages))
    assert whole["id"] == raised.alert_id
    # the latest state: highest priority, the escalation's code and text, cleared with its end
    assert whole["severity"] == "high" and whole["code"]["coding"][0]["code"] == "vt"
    assert whole["code"]["text"] == escalated.message
    assert parse_instant(whole["identifiedPeriod"]["start"]) == T0_US
    assert parse_instant(whole["identifiedPeriod"]["end"]) == T0_US + 30_000_000
    assert extension(whole, EXT_ALARM_STATE)[0]["valueCode"] == "cleared"
    assert "condition ended" in whole["detail"]
    # the same messages in another order, or the state with fewer messages, give the same resource
    assert episode_resource([cleared, raised, escalated]) == whole
    active = episode_resource([raised, escalated])
    assert (active["id"], active["code"], active["identifiedPeriod"]["start"]) == (
        whole["id"], whole["code"], whole["identifiedPeriod"]["start"])
    assert "end" not in active["identifiedPeriod"]


def test_a_cleared_technical_episode_is_an_inactive_flag_with_its_period_end():
    raised = make_alert(category="technical", alert_type="lead_off", priority="low", family="lead_off")
    cleared = make_alert(category="technical", alert_type="lead_off", priority="low", family="lead_off",
                         event="cleared", episode_id=raised.alert_id)
    flag = assert_valid_fhir(episode_resource([raised, cleared], cleared_us=T0_US + 9_000_000))
    assert flag["status"] == "inactive" and flag["id"] == raised.alert_id
    assert (parse_instant(flag["period"]["start"]), parse_instant(flag["period"]["end"])) == (T0_US, T0_US + 9_000_000)
    assert flag["code"]["text"] == episode_resource([cleared, raised], cleared_us=T0_US + 9_000_000)["code"]["text"]


def test_code_systems_and_extensions_hang_from_a_configurable_base():
    assert ".example" not in json.dumps(alert_bundle(make_alert(), None))
    assert DEFAULT_SYSTEMS.base == "urn:ecgstream:fhir"
    mine = FhirSystems("https://fhir.hospital.test/ecgstream/")
    assert mine.base == "https://fhir.hospital.test/ecgstream"
    window = make_window(seconds=0.5)
    bundle = assert_valid_fhir(alert_bundle(make_alert(window_id=window.window_id), window, systems=mine))
    text = json.dumps(bundle)
    assert DEFAULT_SYSTEMS.base not in text
    issue = bundle["entry"][0]["resource"]
    assert issue["code"]["coding"][0]["system"] == "https://fhir.hospital.test/ecgstream/CodeSystem/alert-type"
    assert issue["patient"]["identifier"]["system"] == mine.patient_id
    assert all(e["url"].startswith(mine.base) for e in issue["extension"])
    assert FhirSystems.from_settings(None) == DEFAULT_SYSTEMS
    assert FhirSystems.from_settings(type("T", (), {"system_base": mine.base})()) == mine
    with pytest.raises(ValueError, match="absolute URI"):
        FhirSystems("not a uri")
