"""Physiological 12-lead ECG synthesis for the virtual wearables.

A Gaussian-sum cardiac dipole (McSharry/Sameni ECGSYN-3D style) in Frank coordinates is projected
onto the 12 standard leads with the Dower transform, so Einthoven's and Goldberger's relations hold
exactly. Rhythms come from a named catalogue (:func:`rhythm_names`), patients from
:func:`random_patient`, noise from :class:`NoiseSpec`; every result carries its ground truth (beats
and rhythm/noise episodes). Units: mV, s, Hz.
"""

from firmware_sim.synthesis.engine import (
    GroundTruthEvent,
    NoiseEpisode,
    RhythmSegment,
    StreamSynthesizer,
    Synthesis,
    synthesize,
    synthesize_timeline,
)
from firmware_sim.synthesis.errors import SynthesisError, UnknownRhythmError
from firmware_sim.synthesis.noise import NOISE_KINDS, NoiseSpec
from firmware_sim.synthesis.patient import PatientProfile, random_patient
from firmware_sim.synthesis.rhythms import rhythm_names
from firmware_sim.synthesis.source import SynthesisSource

SIMULATOR_VERSION = 4
"""Bumped whenever the same seed would synthesise different signals (invalidates cached data sets)."""

__all__ = [
    "SIMULATOR_VERSION",
    "SynthesisSource",
    "NOISE_KINDS",
    "GroundTruthEvent",
    "NoiseEpisode",
    "NoiseSpec",
    "PatientProfile",
    "RhythmSegment",
    "StreamSynthesizer",
    "Synthesis",
    "SynthesisError",
    "UnknownRhythmError",
    "random_patient",
    "rhythm_names",
    "synthesize",
    "synthesize_timeline",
]
