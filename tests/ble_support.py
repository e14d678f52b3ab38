"""Helpers for tests that run a simulated wearable and the gateway's central on bumble's emulated radio."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from edge.ble.bumble_backend import BumbleBackend
from edge.ble.link import BleLink
from firmware_sim.transports.ble import BlePeripheralTransport
from firmware_sim.transports.ble_emulated import ATT_MTU, EmulatedLink, open_ble_stack
from protocol.ble_frame import EcgFrame
from protocol.leads import WEARABLE_LEADS

FS_HZ = 250
SAMPLES = 36  # 3 leads int16: the most one 244-byte notification holds
WAIT_S = 10.0  # generous bound on any single wait, so a broken link fails instead of hanging


def ecg_frame(seq: int, *, n: int = SAMPLES, leads: tuple[str, ...] = WEARABLE_LEADS, fs_hz: int = FS_HZ,
              battery: int | None = None, seed: int = 0) -> EcgFrame:
    rng = np.random.default_rng(seed * 100_000 + seq)
    samples = rng.integers(-32768, 32767, size=(n, len(leads)), endpoint=True).astype(np.int32)
    return EcgFrame(seq=seq, t0_us=1_000_000 + seq * n * 1_000_000 // fs_hz, fs_hz=fs_hz, leads=leads,
                    samples=samples, battery_pct=battery)


def emulated_central(link: EmulatedLink, name: str = "ecgstream-gateway") -> BumbleBackend:
    """The gateway's bumble central with its controller on ``link``."""
    return BumbleBackend(stack_opener=lambda: open_ble_stack(link, name))


async def take(link: BleLink, count: int) -> list[bytes]:
    """The next ``count`` notifications of ``link``."""

    async def collect() -> list[bytes]:
        got: list[bytes] = []
        async for payload in link:
            got.append(payload)
            if len(got) == count:
                break
        return got

    return await asyncio.wait_for(collect(), WAIT_S)


async def drain_until_end(link: BleLink) -> list[bytes]:
    """Everything ``link`` yields until its iteration ends (cleanly or with an error)."""

    async def collect() -> list[bytes]:
        return [payload async for payload in link]

    return await asyncio.wait_for(collect(), WAIT_S)


async def pair(central: BumbleBackend, peripheral: BlePeripheralTransport, *, mtu: int = ATT_MTU) -> BleLink:
    """Advertise ``peripheral`` and connect ``central`` to it by name, concurrently."""
    advertising = asyncio.create_task(peripheral.connect())
    try:
        link = await central.connect(peripheral.device_id, profile=peripheral.profile, timeout=WAIT_S, mtu=mtu)
        await asyncio.wait_for(advertising, WAIT_S)
    finally:
        advertising.cancel()
    return link


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for an event the radio delivers asynchronously."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    try:
        await asyncio.wait_for(poll(), WAIT_S)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")
