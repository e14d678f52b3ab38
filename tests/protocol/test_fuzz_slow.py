"""Slow fuzzing of every protocol decoder: at least 100,000 cases each (``-m slow``; CI runs the slow tests).

Each decoder must raise only :class:`protocol.errors.ProtocolError` on any input, and what it does
decode must satisfy the contract's invariants: a re-encoding decodes to the same value; JSON messages
have clean text, finite numbers, whole-match ids, times in range and known events
(:func:`tests.protocol.fuzzing.check_message`). Each hypothesis example is one structured case
(``mutated``/``nasty_message``) plus ``PER_EXAMPLE`` cases made from a drawn seed
(``bulk_mutations``/``bulk_messages``), so ``EXAMPLES × (PER_EXAMPLE + 1)`` ≥ ``CASES`` inputs reach
each decoder in seconds. ``ECGSTREAM_FUZZ_CASES`` changes the count (e.g. 2000 for a quick look).
The cloud ingest validators are fuzzed against both databases in ``tests/cloud/test_ingest_fuzz.py``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.ble_frame import decode_frame, encode_frame
from protocol.envelope import PayloadKind, unwrap
from protocol.errors import ProtocolError
from protocol.frame_batch import decode_frames
from protocol.leads import electrodes_from_mask, leads_from_mask
from protocol.messages import Alert, DeviceStatus, GatewayStatus, decode_message
from protocol.polar_pmd import decode_pmd_ecg, encode_pmd_ecg
from protocol.samples_payload import decode_samples_payload, encode_samples_payload
from protocol.topics import parse_topic, topic
from protocol.window_payload import decode_window, encode_window
from tests.protocol.fuzzing import (
    bulk_messages,
    bulk_mutations,
    check_message,
    mutated,
    nasty_message,
    run_cases,
)

CASES = int(os.environ.get("ECGSTREAM_FUZZ_CASES", "100000"))
EXAMPLES = min(200, CASES)
PER_EXAMPLE = -(-CASES // EXAMPLES) - 1
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
SEEDS = st.integers(0, 2**32 - 1)

pytestmark = pytest.mark.slow


def _frame(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except ProtocolError:
        return
    assert decode_frame(encode_frame(frame)) == frame


@FUZZ
@given(mutated("frame", crc=True), SEEDS)
def test_ble_frame_decoder(first: bytes, seed: int) -> None:
    run_cases(iter([first, *bulk_mutations("frame", seed, PER_EXAMPLE, crc=True)]), _frame)


def _batch(frames: list[bytes]) -> None:
    try:
        batch = decode_frames(frames)
    except ProtocolError:
        return
    assert len(batch) == len(frames)
    assert batch.ok is not None
    for i, data in enumerate(frames):
        if batch.ok[i]:
            assert batch.frame(i) == decode_frame(data)


@FUZZ
@given(st.lists(mutated("frame", crc=True), min_size=1, max_size=6), SEEDS)
def test_frame_batch_decoder(first: list[bytes], seed: int) -> None:
    pool = list(bulk_mutations("frame", seed, PER_EXAMPLE * 4, crc=True))
    batches = [first] + [pool[i:i + 1 + (i % 6)] for i in range(0, len(pool), 4)][:PER_EXAMPLE]
    run_cases(iter(batches), _batch)


def _samples(data: bytes) -> None:
    try:
        frame = decode_samples_payload(data)
    except ProtocolError:
        return
    assert decode_samples_payload(encode_samples_payload(frame)) == frame


@FUZZ
@given(mutated("samples"), SEEDS)
def test_samples_payload_decoder(first: bytes, seed: int) -> None:
    run_cases(iter([first, *bulk_mutations("samples", seed, PER_EXAMPLE)]), _samples)


def _window(data: bytes) -> None:
    try:
        window = decode_window(data)
    except ProtocolError:
        return
    assert window.samples.shape == (len(window.leads), window.n_samples)
    assert set(window.reconstructed) <= set(window.leads)
    assert window.uncertainty is None or (window.uncertainty >= 0).all()
    assert decode_window(encode_window(window)) == window


@FUZZ
@given(mutated("window"), SEEDS)
def test_window_decoder(first: bytes, seed: int) -> None:
    run_cases(iter([first, *bulk_mutations("window", seed, PER_EXAMPLE)]), _window)


def _polar(data: bytes) -> None:
    try:
        frame = decode_pmd_ecg(data)
    except ProtocolError:
        return
    back = decode_pmd_ecg(encode_pmd_ecg(frame))
    assert back.timestamp_ns == frame.timestamp_ns and back.samples_uv.tolist() == frame.samples_uv.tolist()


@FUZZ
@given(mutated("polar"), SEEDS)
def test_polar_pmd_decoder(first: bytes, seed: int) -> None:
    run_cases(iter([first, *bulk_mutations("polar", seed, PER_EXAMPLE)]), _polar)


@FUZZ
@given(mutated("window"), SEEDS)
def test_envelope(first: bytes, seed: int) -> None:
    def check(data: bytes) -> None:
        for kind in PayloadKind:
            try:
                version, body = unwrap(data, kind, (1,))
            except ProtocolError:
                continue
            assert version == 1 and bytes(data[4:]) == bytes(body)

    run_cases(iter([first, *bulk_mutations("window", seed, PER_EXAMPLE)]), check)


def test_masks_every_value() -> None:
    def check(mask: int) -> None:
        for decode in (leads_from_mask, electrodes_from_mask):
            try:
                decode(mask)
            except ProtocolError:
                pass

    assert run_cases(iter(range(-(2**16), max(CASES, 2**17))), check) >= CASES


_ALPHABET = "abcXYZ019_.-/+#$\n\x00 é\ud800"


def _topics(seed: int, n: int) -> Any:
    import random

    rng = random.Random(seed)
    for _ in range(n):
        ident = "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 70)))
        scope = rng.choice(["device", "patient", "gateway", "x", ""])
        channel = rng.choice(["samples", "status", "window", "alert", "x"])
        yield rng.choice([f"ecgstream/v1/{scope}/{ident}/{channel}", f"ecgstream/v1/{scope}/{ident}/{channel}\n",
                          f"ecgstream/v{rng.randrange(3)}/{scope}/{ident}", ident])


def _topic(name: str) -> None:
    try:
        parsed = parse_topic(name)
    except ProtocolError:
        return
    assert re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", parsed.ident), parsed.ident  # no trailing newline
    assert topic(parsed.scope, parsed.ident, parsed.channel) == name


@FUZZ
@given(st.text(st.characters(exclude_categories=()), max_size=80), SEEDS)
def test_topic_parser(first: str, seed: int) -> None:
    run_cases(iter([first, *_topics(seed, PER_EXAMPLE)]), _topic)


@FUZZ
@given(st.sampled_from([Alert, DeviceStatus, GatewayStatus]).flatmap(
    lambda cls: st.tuples(st.just(cls), nasty_message(cls))), SEEDS)
def test_json_message_validators(first: tuple[type, bytes], seed: int) -> None:
    cls = first[0]

    def check(data: bytes) -> None:
        try:
            message = decode_message(data, cls)
        except ProtocolError:
            return
        check_message(message)

    run_cases(iter([first[1], *bulk_messages(cls, seed, PER_EXAMPLE)]), check)
