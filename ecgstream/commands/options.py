"""Options shared by the commands that talk to brokers and radios."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ecgstream.streaming import BrokerAddress
from settings.broker import default_port

F = Callable[..., Any]


def parse_broker(value: str | None) -> tuple[str | None, int | None]:
    """``HOST``, ``HOST:PORT`` or ``embedded`` (default) to (host, port)."""
    if value is None or value == "embedded":
        return None, None
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"port {port!r} in {value!r} is not a TCP port", param_hint="--broker")
    return host, int(port)


def broker_options(func: F) -> F:
    """--broker, --username, --password, --tls, --cafile."""
    for option in reversed([
        click.option("--broker", metavar="HOST[:PORT]|embedded", default="embedded", show_default=True,
                     help="MQTT broker; 'embedded' starts one in-process on a free port."),
        click.option("--username", envvar="ECGSTREAM_MQTT_USERNAME", help="Broker user (env ECGSTREAM_MQTT_USERNAME)."),
        click.option("--password", envvar="ECGSTREAM_MQTT_PASSWORD", help="Broker password (env ECGSTREAM_MQTT_PASSWORD)."),
        click.option("--tls/--no-tls", default=False, help="TLS to the broker (port 8883 by default)."),
        click.option("--cafile", type=click.Path(exists=True, dir_okay=False), help="CA bundle for --tls."),
    ]):
        func = option(func)
    return func


def broker_address(broker: str | None, username: str | None, password: str | None, tls: bool,
                   cafile: str | None) -> BrokerAddress:
    host, port = parse_broker(broker)
    if host is None and (tls or username):
        raise click.BadParameter("--tls/--username need an external --broker HOST", param_hint="--broker")
    return BrokerAddress(host, port or default_port(tls), username, password, tls, cafile)


def transport_options(func: F) -> F:
    """--transport, --hci."""
    for option in reversed([
        click.option("--transport", type=click.Choice(["loopback", "mqtt", "ble"]), default="mqtt",
                     show_default=True, help="How the virtual wearables send."),
        click.option("--hci", default="emulated", show_default=True, metavar="SPEC",
                     help="BLE controller: 'emulated' (in-process) or a bumble transport such as usb:0."),
    ]):
        func = option(func)
    return func


def _pace(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value < 0:
        raise click.BadParameter("must be >= 0 (0: as fast as possible)")
    return float("inf") if value == 0 else value


def pace_option(func: F) -> F:
    """--pace: 1 real time, 10 ten times faster, 0 as fast as possible (becomes inf)."""
    return click.option("--pace", type=float, default=1.0, show_default=True, callback=_pace,
                        help="Speed: 1 real time, 10 ten times faster, 0 as fast as possible.")(func)
