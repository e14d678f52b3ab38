"""ecgstream's own FHIR names: naming systems, code systems and extension URLs under one base.

Until the project publishes its StructureDefinitions, the default base :data:`DEFAULT_SYSTEM_BASE`
is a *logical name* (``urn:ecgstream:fhir``; FHIR allows a logical name where a canonical URL is
not published), not a made-up web address. A deployment that registers its own canonical base
(``https://fhir.example-hospital.org/ecgstream``) builds ``FhirSystems(base=…)`` and passes it to
the exporters (``systems=``); the cloud service reads the base from its settings
(``[fhir] system_base``, see :meth:`FhirSystems.from_settings`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_SYSTEM_BASE = "urn:ecgstream:fhir"
"""The base every ecgstream name hangs from when a deployment sets none."""

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


@dataclass(frozen=True)
class FhirSystems:
    """The URIs of ecgstream's naming systems, code systems and extensions, all under ``base``."""

    base: str = DEFAULT_SYSTEM_BASE

    def __post_init__(self) -> None:
        if not isinstance(self.base, str) or not _URI.match(self.base):
            raise ValueError(f"FHIR system base {self.base!r} must be an absolute URI (scheme:…) without spaces")
        object.__setattr__(self, "base", self.base.rstrip("/"))

    @classmethod
    def from_settings(cls, settings: Any) -> FhirSystems:
        """From any object with a ``system_base`` attribute (a settings table), else the defaults."""
        base = getattr(settings, "system_base", None)
        return cls(base) if isinstance(base, str) and base.strip() else cls()

    def _name(self, kind: str, name: str) -> str:
        return f"{self.base}/{kind}/{name}"

    @property
    def patient_id(self) -> str:
        return self._name("NamingSystem", "patient-id")

    @property
    def device_id(self) -> str:
        return self._name("NamingSystem", "device-id")

    @property
    def alarm_episode(self) -> str:
        return self._name("NamingSystem", "alarm-episode")

    @property
    def alert_type(self) -> str:
        return self._name("CodeSystem", "alert-type")

    @property
    def alarm_action(self) -> str:
        return self._name("CodeSystem", "alarm-action")

    @property
    def observation_method(self) -> str:
        return self._name("CodeSystem", "ecg-method")

    @property
    def ext_lead_source(self) -> str:
        return self._name("StructureDefinition", "ecg-lead-source")

    @property
    def ext_lead_uncertainty(self) -> str:
        return self._name("StructureDefinition", "ecg-lead-uncertainty")

    @property
    def ext_alarm_state(self) -> str:
        return self._name("StructureDefinition", "alarm-state")

    @property
    def ext_alarm_acknowledgement(self) -> str:
        return self._name("StructureDefinition", "alarm-acknowledgement")

    @property
    def ext_reconstructed_lead(self) -> str:
        return self._name("StructureDefinition", "alert-reconstructed-lead")

    @property
    def ext_model_version(self) -> str:
        return self._name("StructureDefinition", "model-version")

    @property
    def ext_source_device(self) -> str:
        return self._name("StructureDefinition", "source-device")


DEFAULT_SYSTEMS = FhirSystems()
