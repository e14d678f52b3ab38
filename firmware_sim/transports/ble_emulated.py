"""Bumble BLE stacks for both ends of a link: an emulated radio or a real adapter.

The simulated wearable (:mod:`firmware_sim.transports.ble`) runs on a bumble
:class:`~bumble.device.Device`. Where its controller lives is given as a
:data:`HciSpec` (the gateway's central, :mod:`edge.ble.bumble_backend`, takes
the stack :func:`open_ble_stack` makes on an emulated link from its caller):

* an :class:`EmulatedLink`: bumble's in-process :class:`~bumble.controller.Controller`
  joined to a shared :class:`~bumble.link.LocalLink`. Any number of devices (one
  central and N peripherals) share one link in one process, with no hardware and
  no privileges. This is what tests and the simulator's default use;
* a bumble transport spec string for a real controller, e.g. ``"usb:0"`` (first
  USB dongle, needs access to the USB device and no kernel driver bound to it),
  ``"hci-socket:0"`` (Linux ``hci0``, needs ``CAP_NET_ADMIN`` and the adapter
  down in BlueZ) or ``"tcp-client:127.0.0.1:9000"`` (a remote HCI). See
  https://google.github.io/bumble/transports/ for the full list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink, Transport

from firmware_sim.transports.base import TransportError
from protocol.gatt import ATT_MTU, BleProfile

__all__ = ["ATT_MTU", "BleProfile", "BleStack", "EmulatedLink", "HciSpec", "open_ble_stack", "static_address_for"]


def static_address_for(name: str) -> str:
    """A random static BLE address derived from ``name``: stable across runs, so a
    gateway configured with a wearable's address finds it again after a restart."""
    digest = bytearray(hashlib.sha256(name.encode()).digest()[:6])
    digest[0] |= 0xC0  # the two top bits of a random static address are 0b11
    return ":".join(f"{b:02X}" for b in digest)


class EmulatedLink:
    """An in-process radio: emulated controllers that joined it can scan, connect
    and exchange GATT traffic with each other, all on the running event loop."""

    def __init__(self) -> None:
        self.local_link = LocalLink()

    def attach(self, name: str, address: str) -> Controller:
        """Create an emulated controller with ``address`` on this link."""
        wanted = Address(address)
        for controller in self.local_link.controllers:
            taken = (controller.public_address.address_bytes, controller.random_address.address_bytes)
            if wanted.address_bytes in taken:
                raise TransportError(f"address {address} is already in use on this emulated link")
        return Controller(name, link=self.local_link, public_address=wanted)

    def detach(self, controller: Controller) -> None:
        """Take a controller off the link (its peers see nothing more from it)."""
        self.local_link.remove_controller(controller)


HciSpec = str | EmulatedLink
"""Where a BLE stack's controller is: a bumble transport spec or an emulated link."""


@dataclass
class BleStack:
    """A powered-on bumble device and whatever must be released with it."""

    device: Device
    _transport: Transport | None
    _link: EmulatedLink | None
    _controller: Controller | None

    @property
    def address(self) -> str:
        """The device's own (random static) address, ``XX:XX:XX:XX:XX:XX``."""
        return self.device.random_address.to_string(with_type_qualifier=False)

    async def close(self) -> None:
        """Power the device off and release its controller or HCI transport."""
        try:
            await self.device.power_off()
        finally:
            if self._transport is not None:
                await self._transport.close()
            if self._link is not None and self._controller is not None:
                self._link.detach(self._controller)


async def open_ble_stack(hci: HciSpec, name: str, address: str | None = None) -> BleStack:
    """Create and power on a bumble device named ``name`` on ``hci``.

    ``address`` defaults to :func:`static_address_for` ``(name)``. Raises
    :class:`TransportError` when the transport cannot be opened (no such adapter,
    no permission) or the address is taken on an emulated link.
    """
    address = address or static_address_for(name)
    if isinstance(hci, EmulatedLink):
        controller = hci.attach(name, address)
        device = Device(name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller)))
        stack = BleStack(device, None, hci, controller)
    else:
        try:
            transport = await open_transport(hci)
        except Exception as exc:  # bumble raises many kinds (USB, OS, spec errors)
            raise TransportError(f"cannot open HCI transport {hci!r}: {exc}") from exc
        device = Device.with_hci(name, Address(address), transport.source, transport.sink)
        stack = BleStack(device, transport, None, None)
    try:
        await device.power_on()
    except Exception as exc:
        await stack.close()
        raise TransportError(f"cannot power on BLE controller for {name!r} on {hci!r}: {exc}") from exc
    return stack
