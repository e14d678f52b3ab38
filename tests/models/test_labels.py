"""The label vocabulary: classes, source-code mappings, multi-hot vectors."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.data.labels import (
    BEAT_TO_LABELS,
    CLASSES,
    SCP_TO_LABELS,
    SIM_RHYTHM_LABELS,
    SNOMED_TO_LABELS,
    VOCABULARY,
    labels_from_beats,
    labels_from_mitbih_rhythm,
    labels_from_multi_hot,
    labels_from_rhythm,
    labels_from_scp,
    labels_from_snomed,
    multi_hot,
)

EXPECTED_CLASSES = (
    "NSR", "SB", "STACH", "AF", "AFL", "SVT", "VT", "PAC", "PVC", "IAVB",
    "LBBB", "RBBB", "STE", "STD", "TINV", "LQT", "PAUSE", "NOISE",
)

# The 71 SCP-ECG statements of PTB-XL (scp_statements.csv), to check our SCP codes are real ones.
_STATEMENTS_TEXT = (
    "NDT NST_ DIG LNGQT NORM IMI ASMI LVH LAFB ISC_ IRBBB 1AVB IVCD ISCAL CRBBB CLBBB ILMI LAO/LAE "
    "AMI ALMI ISCIN INJAS LMI ISCIL LPFB ISCAS INJAL ISCLA RVH ANEUR RAO/RAE EL WPW ILBBB IPLMI ISCAN "
    "IPMI SEHYP INJIN INJLA PMI 3AVB INJIL 2AVB ABQRS PVC STD_ VCLVH QWAVE LOWT NT_ PAC LPR INVT LVOLT "
    "HVOLT TAB_ STE_ PRC(S) SR AFIB STACH SARRH SBRAD PACE SVARR BIGU AFLT SVTAC PSVT TRIGU"
)
PTBXL_STATEMENTS = frozenset(_STATEMENTS_TEXT.split())


def test_classes_fixed_order_and_unique() -> None:
    assert CLASSES == EXPECTED_CLASSES
    assert len(set(CLASSES)) == len(CLASSES)
    assert all(c.description for c in VOCABULARY)


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ("284470004", {"PAC"}),
        ("63593006", {"PAC"}),  # SVPB ≡ PAC
        ("427172004", {"PVC"}),
        ("17338001", {"PVC"}),  # VPB ≡ PVC
        ("713427006", {"RBBB"}),
        ("59118001", {"RBBB"}),  # CRBBB ≡ RBBB
        ("164909002", {"LBBB"}),
        ("733534002", {"LBBB"}),  # CLBBB ≡ LBBB
        ("164889003,164890007", {"AF", "AFL"}),
        ("195080001", {"AF", "AFL"}),  # AF and flutter
        ("426783006,427084000", {"NSR", "STACH"}),
        ("164896001", set()),  # VF is no class
        (["426177001", 270492004], {"SB", "IAVB"}),  # ints accepted
    ],
)
def test_snomed_mapping(codes: object, expected: set[str]) -> None:
    assert labels_from_snomed(codes) == expected  # type: ignore[arg-type]


def test_challenge_equivalences_map_alike() -> None:
    for a, b in [("284470004", "63593006"), ("427172004", "17338001"), ("713427006", "59118001"),
                 ("164909002", "733534002")]:
        assert SNOMED_TO_LABELS[a] == SNOMED_TO_LABELS[b]


def test_unmapped_snomed_counted_not_raised() -> None:
    unmapped: Counter[str] = Counter()
    labels = labels_from_snomed(" 426783006 , 164934002,,bogus,164934002", unmapped=unmapped)
    assert labels == {"NSR"}
    assert unmapped == Counter({"164934002": 2, "bogus": 1})


def test_scp_mapping_from_ptbxl_dict() -> None:
    assert labels_from_scp({"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}) == {"NSR"}
    assert labels_from_scp(["AFIB", "CLBBB", "STD_", "INVT"]) == {"AF", "LBBB", "STD", "TINV"}
    assert labels_from_scp(["SVARR", "PVC", "1AVB", "SBRAD"]) == {"PAC", "PVC", "IAVB", "SB"}
    unmapped: Counter[str] = Counter()
    assert labels_from_scp({"IMI": 50.0, "SR": 0.0}, min_likelihood=10, unmapped=unmapped) == set()
    assert unmapped == Counter({"IMI": 1})  # SR dropped by likelihood, IMI kept but unmapped


def test_scp_codes_are_ptbxl_statements() -> None:
    assert set(SCP_TO_LABELS) <= PTBXL_STATEMENTS


def test_mitbih_rhythm_strings() -> None:
    assert labels_from_mitbih_rhythm("(N\x00") == {"NSR"}
    assert labels_from_mitbih_rhythm("(AFIB") == {"AF"}
    assert labels_from_mitbih_rhythm("(AFL") == {"AFL"}
    assert labels_from_mitbih_rhythm("(SVTA") == {"SVT"}
    assert labels_from_mitbih_rhythm("(VT") == {"VT"}
    assert labels_from_mitbih_rhythm("(SBR") == {"SB"}
    assert labels_from_mitbih_rhythm("(B") == {"PVC"}
    assert labels_from_mitbih_rhythm("(T") == {"PVC"}
    unmapped: Counter[str] = Counter()
    assert labels_from_mitbih_rhythm("(BII", unmapped=unmapped) == set()  # known, no class
    assert labels_from_mitbih_rhythm("(VFL", unmapped=unmapped) == set()
    assert labels_from_mitbih_rhythm("(WHAT", unmapped=unmapped) == set()
    assert unmapped == Counter({"(WHAT": 1})


def test_beat_symbols() -> None:
    assert labels_from_beats("NNVNA") == {"PVC", "PAC"}
    assert labels_from_beats(["N", "F", "~", "+", "Q"]) == set()
    assert BEAT_TO_LABELS["L"] == {"LBBB"} and BEAT_TO_LABELS["R"] == {"RBBB"}


def test_every_simulator_rhythm_is_mapped() -> None:
    from firmware_sim.synthesis.rhythms import rhythm_names
    from models.data.synthetic import DEFAULT_RHYTHM_WEIGHTS

    assert set(SIM_RHYTHM_LABELS) == set(rhythm_names())
    assert set(DEFAULT_RHYTHM_WEIGHTS) <= set(SIM_RHYTHM_LABELS)
    for labels in SIM_RHYTHM_LABELS.values():
        assert labels <= set(CLASSES)


def test_simulator_rhythm_decisions() -> None:
    assert labels_from_rhythm("pvc_bigeminy") == {"NSR", "PVC"}
    assert labels_from_rhythm("sinus_brady") == {"SB"}
    assert labels_from_rhythm("stemi_inferior") == {"NSR", "STE"}
    assert labels_from_rhythm("vf") == frozenset()
    assert labels_from_rhythm("asystole") == frozenset()
    with pytest.raises(ValueError, match="unknown simulator rhythm 'nope'"):
        labels_from_rhythm("nope")


def test_every_class_but_noise_has_a_source() -> None:
    for cls in VOCABULARY:
        if cls.key == "NOISE":
            assert not cls.snomed and not cls.scp
        else:
            assert cls.snomed or cls.scp or cls.mitbih_rhythms, cls.key
        assert any(cls.key in labels for labels in SIM_RHYTHM_LABELS.values()) or cls.key == "NOISE"


def test_multi_hot_roundtrip_and_errors() -> None:
    v = multi_hot({"AF", "PVC"})
    assert v.shape == (len(CLASSES),) and v.dtype == np.float32
    assert v.sum() == 2 and v[CLASSES.index("AF")] == 1
    assert labels_from_multi_hot(v) == {"AF", "PVC"}
    assert multi_hot([]).sum() == 0
    with pytest.raises(ValueError, match="'AFIB' is not a class"):
        multi_hot(["AFIB"])
    with pytest.raises(ValueError, match="expected a vector of 18"):
        labels_from_multi_hot(np.zeros(3))


_codes = st.lists(st.one_of(st.text(), st.integers(), st.sampled_from(sorted(SNOMED_TO_LABELS))), max_size=12)


@given(_codes)
def test_snomed_never_raises_and_counts_every_unmapped(codes: list[object]) -> None:
    unmapped: Counter[str] = Counter()
    labels = labels_from_snomed(codes, unmapped=unmapped)
    assert labels <= set(CLASSES)
    known = [str(c).strip() for c in codes if str(c).strip() in SNOMED_TO_LABELS]
    blank = [c for c in codes if not str(c).strip()]
    assert sum(unmapped.values()) == len(codes) - len(known) - len(blank)
    assert labels == frozenset().union(*(SNOMED_TO_LABELS[c] for c in known))


@given(st.one_of(st.text(), st.dictionaries(st.text(), st.one_of(st.floats(), st.text(), st.none()))))
def test_scp_never_raises(codes: object) -> None:
    assert labels_from_scp(codes) <= set(CLASSES)  # type: ignore[arg-type]


@given(st.text())
def test_rhythm_note_never_raises(note: str) -> None:
    assert labels_from_mitbih_rhythm(note, unmapped=Counter()) <= set(CLASSES)
    assert labels_from_beats(note) <= set(CLASSES)


@given(st.sets(st.sampled_from(CLASSES)))
def test_multi_hot_inverse(labels: set[str]) -> None:
    assert labels_from_multi_hot(multi_hot(labels)) == labels


@pytest.mark.shared_data
def test_snomed_codes_exist_in_challenge_mapping(data: Path) -> None:
    """Every SNOMED code of the vocabulary is a real Challenge code, with the abbreviation we expect."""
    table: dict[str, str] = {}
    for name in ("dx_mapping_scored.csv", "dx_mapping_unscored.csv"):
        with (data / "cinc2021" / name).open(newline="") as f:
            table.update({row["SNOMEDCTCode"]: row["Abbreviation"] for row in csv.DictReader(f)})
    assert set(SNOMED_TO_LABELS) <= set(table), set(SNOMED_TO_LABELS) - set(table)
    for code, abbreviation in [("164889003", "AF"), ("427084000", "STach"), ("59931005", "TInv"),
                               ("111975006", "LQT"), ("270492004", "IAVB"), ("164931005", "STE"),
                               ("429622005", "STD"), ("5609005", "SARR"), ("164895002", "VTach")]:
        assert table[code] == abbreviation
