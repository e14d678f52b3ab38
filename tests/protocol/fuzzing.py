"""Fuzzing strategies shared by the slow fuzz tests: valid encodings mutated, and JSON messages made nasty.

Random bytes rarely get past a CRC or a JSON parser, so most cases here start from a *valid*
encoding (a pool built once, deterministically) and change it: bytes overwritten, cut or appended,
the BLE frame's CRC recomputed so the change reaches the field checks; for JSON messages, fields
swapped for hostile values (NUL and lone surrogates in text, NaN and ±Infinity, integers at and
beyond the 63/64-bit limits, ids with a trailing newline, unknown events, deep nesting, duplicate
keys). :func:`check_message` states what a decoded message guarantees.
"""

from __future__ import annotations

import binascii
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
from hypothesis import strategies as st

from protocol.ble_frame import EcgFrame, SampleFormat, encode_frame, max_samples_per_frame
from protocol.leads import ELECTRODES, STANDARD_LEADS, WEARABLE_LEADS
from protocol.messages import (
    ALERT_EVENTS,
    MAX_INT,
    Alert,
    AlertCategory,
    DeviceStatus,
    GatewayStatus,
    Message,
    Priority,
    decode_message,
    encode_message,
)
from protocol.polar_pmd import PolarEcgFrame, encode_pmd_ecg
from protocol.samples_payload import encode_samples_payload
from protocol.window_payload import EcgWindow, encode_window

_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _frame(rng: np.random.Generator, leads: tuple[str, ...], fmt: SampleFormat) -> EcgFrame:
    n = int(rng.integers(1, max_samples_per_frame(len(leads), fmt) + 1))
    lo, hi = fmt.limits
    return EcgFrame(seq=int(rng.integers(0, 2**32)), t0_us=int(rng.integers(0, 2**63)), fs_hz=int(rng.integers(1, 2**16)),
                    leads=leads, samples=rng.integers(lo, hi + 1, (n, len(leads))).astype(np.int32),
                    lead_off=tuple(e for e in ELECTRODES if rng.random() < 0.2),
                    battery_pct=None if rng.random() < 0.2 else int(rng.integers(0, 101)),
                    lsb_nv=int(rng.integers(1, 2**16)), sample_format=fmt)


def _pools(seed: int = 16) -> dict[str, list[bytes]]:
    rng = np.random.default_rng(seed)
    layouts = [WEARABLE_LEADS, STANDARD_LEADS, ("II",), ("I", "V6")]
    frames = [_frame(rng, layouts[i % len(layouts)], list(SampleFormat)[i % 2]) for i in range(24)]
    windows = []
    for i in range(6):
        n = int(rng.integers(1, 400))
        leads = STANDARD_LEADS if i % 2 else WEARABLE_LEADS
        rec = tuple(x for x in leads if x not in WEARABLE_LEADS)
        windows.append(encode_window(EcgWindow(
            window_id=str(uuid.UUID(int=int(rng.integers(0, 2**63)))), patient_id=f"pat-{i}", device_id=f"dev-{i}",
            t0_us=int(rng.integers(0, 2**62)), fs_hz=500, leads=leads,
            samples=rng.integers(-2000, 2000, (len(leads), n)).astype(np.int16), reconstructed=rec,
            uncertainty=rng.integers(0, 90, (len(rec), n)).astype(np.int16) if rec and i % 3 else None,
            lsb_nv=1000)))
    polar = [encode_pmd_ecg(PolarEcgFrame(timestamp_ns=int(rng.integers(0, 2**63)),
                                          samples_uv=rng.integers(-(2**23), 2**23, int(rng.integers(1, 70))).astype(np.int32)))
             for _ in range(8)]
    return {"frame": [encode_frame(f) for f in frames], "samples": [encode_samples_payload(f) for f in frames[:12]],
            "window": windows, "polar": polar}


POOLS = _pools()


def fix_crc(data: bytes) -> bytes:
    """``data`` with its last two bytes set to the BLE frame CRC of the rest."""
    if len(data) < 3:
        return data
    return data[:-2] + binascii.crc_hqx(data[:-2], 0xFFFF).to_bytes(2, "little")


@st.composite
def mutated(draw: st.DrawFn, pool: str, *, crc: bool = False) -> bytes:
    """A valid encoding from ``POOLS[pool]`` with bytes overwritten, cut or extended (or random bytes)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(POOLS[pool])))
    head = draw(st.booleans())  # most fields live in the first 64 bytes
    for pos, value in draw(st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), max_size=4)):
        data[pos % min(len(data), 64 if head else len(data))] = value
    cut = draw(st.integers(-3, 2))
    if cut < 0:
        data = data[: max(0, len(data) + draw(st.integers(-40, -1)))]
    elif cut == 2:
        data += draw(st.binary(min_size=1, max_size=8))
    out = bytes(data)
    return fix_crc(out) if crc and draw(st.booleans()) else out


# -- JSON messages ----------------------------------------------------------------------------------

_NASTY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(
    ["pat-1\n", "dev-1\n", "\x00", "a\x00b", "\ud800", "\udfff", "", "x" * 65, "raised\n", "cleared", "paused",
     "escalated", "00000000-0000-0000-0000-00000000000g", str(uuid.UUID(int=7))])
_NASTY_NUMBER = st.sampled_from([math.nan, math.inf, -math.inf, 2**63, 2**63 - 1, 2**64, 2**64 - 1, -1, 0, 1.5,
                                 2**31, 2**31 - 1, -(2**63), 10**30, 1e308, -0.0]) | st.integers() | st.floats()
_LEAF = st.none() | st.booleans() | _NASTY_NUMBER | _NASTY_TEXT
NASTY_JSON = st.recursive(_LEAF, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_NASTY_TEXT, kids, max_size=3),
                          max_leaves=12)
"""Any JSON value Python's encoder can write (NaN and Infinity included), with hostile leaves."""


def base_alert(patient_id: str = "pat-1", device_id: str = "dev-1") -> Alert:
    return Alert(alert_id=str(uuid.UUID(int=1)), patient_id=patient_id, device_id=device_id, alert_type="vt",
                 category=AlertCategory.CLINICAL, priority=Priority.HIGH, onset_gateway_us=1_760_000_000_000_000,
                 onset_device_us=5_000_000, window_id=str(uuid.UUID(int=2)), message="VT 180/min",
                 model_versions={"rules": "1"}, reconstructed_leads={"V2": 0.05},
                 details={"event": "raised", "episode_id": str(uuid.UUID(int=1)), "family": "vt", "rate_bpm": 182.0})


BASES: dict[type, Message] = {
    Alert: base_alert(),
    DeviceStatus: DeviceStatus(device_id="dev-1", t_device_us=5, battery_pct=50, lead_off=("V1",), profile="p",
                               firmware="1.0"),
    GatewayStatus: GatewayStatus(gateway_id="gw-1", t_gateway_us=7, streams=3, outbox_depth=2, software="edge"),
}


@st.composite
def nasty_message(draw: st.DrawFn, cls: type, base: Message | None = None) -> bytes:
    """JSON for ``cls``: a valid message with some fields (or details entries) swapped for hostile values."""
    obj: dict[str, Any] = json.loads(encode_message(base or BASES[cls]))
    keys = sorted(obj)
    for _ in range(draw(st.integers(0, 3))):
        value = draw(NASTY_JSON)
        where = draw(st.integers(0, 3))
        if where == 0 and cls is Alert and isinstance(obj.get("details"), dict):
            obj["details"] = dict(obj["details"]) | {draw(st.sampled_from(["event", "episode_id", "family", "x"])): value}
        elif where == 1:
            obj.pop(draw(st.sampled_from(keys)), None)
        else:
            obj[draw(st.sampled_from(keys))] = value
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 19)) == 0:  # a duplicate key, the second one winning in a lax parser
        key = draw(st.sampled_from(keys))
        text = text[:-1] + f',"{key}":' + json.dumps(draw(NASTY_JSON)) + "}"
    return text.encode("utf-8", "surrogatepass")


# -- bulk cases: many inputs per hypothesis example, cheap to make -----------------------------------
#
# Hypothesis spends about a millisecond drawing one example; the decoders take microseconds. So each
# example draws a seed, and the seed makes ``per_example`` more cases with a plain RNG: the same
# mutations as above, 100,000 cases per decoder in seconds, and a failing case is still reproducible
# (the assertion names the input).


def bulk_mutations(pool: str, seed: int, n: int, *, crc: bool = False) -> Iterator[bytes]:
    """``n`` mutations of ``POOLS[pool]`` (as :func:`mutated` makes them) from ``seed``."""
    rng = random.Random(seed)
    bases = POOLS[pool]
    for _ in range(n):
        op = rng.randrange(10)
        if op == 0:
            yield rng.randbytes(rng.randrange(300))
            continue
        data = bytearray(rng.choice(bases))
        span = min(len(data), 64) if rng.random() < 0.6 else len(data)
        for _ in range(rng.randrange(1, 5)):
            data[rng.randrange(span)] = rng.randrange(256) if rng.random() < 0.7 else rng.choice((0, 0xFF, 0x7F, 0x80))
        if op == 1:
            data = data[: rng.randrange(len(data) + 1)]
        elif op == 2:
            data += rng.randbytes(rng.randrange(1, 9))
        out = bytes(data)
        yield fix_crc(out) if crc and rng.random() < 0.5 else out


_LEAVES: list[Any] = [None, True, False, 0, -1, 1.5, -0.0, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                      -(2**63), 10**30, 1e308, math.nan, math.inf, -math.inf, "", "pat-1\n", "dev-1\n", "\x00", "a\x00b",
                      "\ud800", "\udfff", "x" * 65, "raised", "escalated", "cleared", "paused", "raised\n",
                      str(uuid.UUID(int=7)), "00000000-0000-0000-0000-00000000000g", "é", "gw-1", "dev-1", "pat-1"]


def _nasty_value(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth < 4 and r < 0.1:
        return [_nasty_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if depth < 4 and r < 0.2:
        return {str(_nasty_value(rng, 3)): _nasty_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    if r < 0.3:
        return "".join(chr(rng.choice((rng.randrange(0x20), rng.randrange(0x80), rng.randrange(0x110000))))
                       for _ in range(rng.randrange(8)))
    if r < 0.35:
        return rng.getrandbits(70) - (1 << 69)
    return rng.choice(_LEAVES)


def bulk_messages(cls: type, seed: int, n: int, base: Message | None = None) -> Iterator[bytes]:
    """``n`` JSON texts for ``cls`` as :func:`nasty_message` makes them, from ``seed``."""
    rng = random.Random(seed)
    template: dict[str, Any] = json.loads(encode_message(base or BASES[cls]))
    keys = sorted(template)
    for _ in range(n):
        obj = dict(template)
        for _ in range(rng.randrange(4)):
            where = rng.randrange(4)
            if where == 0 and cls is Alert and isinstance(obj.get("details"), dict):
                obj["details"] = dict(obj["details"]) | {
                    rng.choice(["event", "episode_id", "family", "x"]): _nasty_value(rng)}
            elif where == 1:
                obj.pop(rng.choice(keys), None)
            else:
                obj[rng.choice(keys)] = _nasty_value(rng)
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)
        if rng.randrange(20) == 0:
            text = text[:-1] + f',"{rng.choice(keys)}":' + json.dumps(_nasty_value(rng)) + "}"
        yield text.encode("utf-8", "surrogatepass")


def run_cases(cases: Iterator[Any], check: Callable[[Any], None]) -> int:
    """``check`` each case; a failure names the input. Returns how many cases ran."""
    count = 0
    for case in cases:
        try:
            check(case)
        except Exception as exc:
            raise AssertionError(f"failing input: {case!r}") from exc
        count += 1
    return count


def _walk(value: Any, path: str = "") -> None:
    if isinstance(value, str):
        assert "\x00" not in value, path
        value.encode("utf-8")  # no lone surrogate
    elif isinstance(value, float):
        assert math.isfinite(value), path
    elif isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str)
            _walk(k, path)
            _walk(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _walk(v, f"{path}[{i}]")


def check_message(message: Message) -> None:
    """What a decoded message guarantees (semantics, not only syntax)."""
    fields = asdict(message)
    _walk(fields)
    json.dumps(fields, allow_nan=False)
    for key in ("patient_id", "device_id", "gateway_id"):
        if key in fields:
            assert _ID.fullmatch(fields[key]), (key, fields[key])
    for key in ("onset_gateway_us", "onset_device_us", "t_device_us", "t_gateway_us", "streams", "outbox_depth"):
        if fields.get(key) is not None:
            assert 0 <= fields[key] <= MAX_INT, (key, fields[key])
    if isinstance(message, Alert):
        assert str(uuid.UUID(message.alert_id)) == message.alert_id
        event = message.details.get("event")
        assert event is None or event in ALERT_EVENTS
        family = message.details.get("family")
        assert family is None or (isinstance(family, str) and len(family) <= 64)
        if message.details.get("episode_id") is not None:
            uuid.UUID(message.details["episode_id"])
        assert all(lead in STANDARD_LEADS and 0 <= u < math.inf for lead, u in message.reconstructed_leads.items())
    if isinstance(message, DeviceStatus):
        assert message.battery_pct is None or 0 <= message.battery_pct <= 100
        assert set(message.lead_off) <= set(ELECTRODES)
    assert decode_message(encode_message(message), type(message)) == message  # type: ignore[type-var]


__all__ = [
    "BASES", "NASTY_JSON", "POOLS", "base_alert", "bulk_messages", "bulk_mutations", "check_message", "fix_crc",
    "mutated", "nasty_message", "run_cases",
]
