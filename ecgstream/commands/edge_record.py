"""``ecgstream edge record``: write what a live device sends to a WFDB record, gaps as NaN.

Defines the click command :func:`record`; it is registered under the ``edge`` group.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ecgstream.commands.options import broker_address


@click.command("record")
@click.option("--device", "device_id", required=True, metavar="ID", help="The device whose samples to record.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the record (DEVICE-YYYYmmddTHHMMSSZ.hea/.dat).")
@click.option("--broker", metavar="HOST[:PORT]", default="127.0.0.1", show_default=True,
              help="The MQTT broker the device publishes to (port 1883, 8883 with --tls).")
@click.option("--username", envvar="ECGSTREAM_MQTT_USERNAME", help="Broker user (env ECGSTREAM_MQTT_USERNAME).")
@click.option("--password", envvar="ECGSTREAM_MQTT_PASSWORD", help="Broker password (env ECGSTREAM_MQTT_PASSWORD).")
@click.option("--tls/--no-tls", default=False, help="TLS to the broker (port 8883 by default).")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False), help="CA bundle for --tls.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True),
              help="Stop after this much stream time (default: until Ctrl-C).")
@click.option("--idle-timeout", "idle_s", type=click.FloatRange(min=0, min_open=True),
              help="Stop when the device has sent nothing for this many seconds.")
@click.option("--name", help="Record name (default: DEVICE-<UTC start time>).")
def record(device_id: str, out_dir: Path, broker: str, username: str | None, password: str | None, tls: bool,
           cafile: str | None, seconds: float | None, idle_s: float | None, name: str | None) -> None:
    """Record a live device's stream from the broker as WFDB, lost frames as NaN (noted in the header).

    Replay it with `ecgstream sim replay OUT/NAME`: the same stream, as often as needed.
    """
    from edge.recording import StreamRecorder, record_from_broker
    from protocol.topics import validate_id
    from settings import client_tls_context

    validate_id(device_id, "device id")
    address = broker_address(broker, username, password, tls, cafile)
    host, port = address.host, address.port
    if host is None:
        raise click.UsageError("edge record listens on a running broker: pass --broker HOST[:PORT]")
    tls_context = client_tls_context(address)
    started = datetime.now(UTC)
    recorder = StreamRecorder(device_id)
    target = out_dir / (name or f"{device_id}-{started:%Y%m%dT%H%M%SZ}")
    until = f"for {seconds:g} s of stream" if seconds else "until Ctrl-C"

    async def run() -> None:
        subscribed = asyncio.Event()
        recording = asyncio.create_task(record_from_broker(
            recorder, hostname=host, port=port, username=username, password=password, tls_context=tls_context,
            seconds=seconds, subscribed=subscribed, idle_timeout_s=idle_s))
        ready = asyncio.create_task(subscribed.wait())
        await asyncio.wait({recording, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if subscribed.is_set():
            print(f"recording {device_id} from {host}:{port} {until}", file=sys.stderr, flush=True)
        await recording

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    header = recorder.write(target, comments=[f"recorded from {host} starting {started:%Y-%m-%d %H:%M:%S} UTC"])
    lost = recorder.lost_samples
    click.echo(f"wrote {header} ({recorder.duration_s:.1f} s, {', '.join(recorder.lead_names)}, "
               f"{recorder.fs:g} Hz; {lost} samples per lead lost, written as NaN)")
    if lost:
        print(f"note: {len(recorder.counters.gaps)} gaps in the stream are NaN in the record", file=sys.stderr)
