"""Interoperability: ecgstream windows and alarm episodes as HL7 FHIR R4B resources (issues 6, 17).

- :mod:`cloud.interop.fhir`: :func:`window_observations` / :func:`window_bundle` (an ECG window as an
  Observation of its measured leads and a separate Observation of its reconstructed leads, one
  SampledData component per lead), :func:`episode_resource` / :func:`alert_resource` (an alarm
  episode in its latest state: a clinical one as a DetectedIssue, a technical one as a Flag) and
  :func:`alert_bundle` (the episode and its window in a collection Bundle). Every resource is
  validated with ``fhir.resources`` (FHIR R4B) and returned as a plain JSON-able dict.
- :mod:`cloud.interop.systems`: :class:`FhirSystems`, the configurable base of ecgstream's own code
  systems, naming systems and extension URLs.
- ``schema/``: the official FHIR R4B JSON schema, vendored for the tests (see its README).
"""

from cloud.interop.fhir import (
    FHIR_VERSION,
    LEAD_CODES,
    FhirExportError,
    alert_bundle,
    alert_resource,
    clear_time_us,
    episode_resource,
    reconstruction_model_of,
    window_bundle,
    window_observations,
)
from cloud.interop.systems import DEFAULT_SYSTEMS, FhirSystems

__all__ = [
    "DEFAULT_SYSTEMS", "FHIR_VERSION", "LEAD_CODES", "FhirExportError", "FhirSystems", "alert_bundle",
    "alert_resource", "clear_time_us", "episode_resource", "reconstruction_model_of", "window_bundle",
    "window_observations",
]
