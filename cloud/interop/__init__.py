"""Interoperability: ecgstream windows and alerts as HL7 FHIR resources (issue 6).

- :mod:`cloud.interop.fhir`: :func:`window_observation` (an ECG window as an Observation with one
  SampledData component per lead), :func:`alert_resource` (a clinical alarm as a DetectedIssue, a
  technical alarm as a Flag) and :func:`alert_bundle` (both in a collection Bundle). Every resource
  is validated with ``fhir.resources`` (FHIR R4B) and returned as a plain JSON-able dict.
"""

from cloud.interop.fhir import (
    FHIR_VERSION,
    LEAD_CODES,
    FhirExportError,
    alert_bundle,
    alert_resource,
    window_observation,
)

__all__ = [
    "FHIR_VERSION", "LEAD_CODES", "FhirExportError", "alert_bundle", "alert_resource", "window_observation",
]
