"""The one command-line entry: ``ecgstream <tier> <command>``.

Commands live in :mod:`ecgstream.commands`, one module per tier; they parse
arguments and call the packages, nothing more. Every error a user can cause
(bad file, bad option value, unreachable broker, an account that already
exists) ends as one line on stderr, ``ecgstream: error: …``, and exit status 2;
``-v`` shows the traceback as well. A warning (a record read with a change, such
as infinite samples made gaps) is one line too, ``ecgstream: warning: …``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import TextIO

import click

from ecgstream.commands.cloud import cloud
from ecgstream.commands.demo import demo
from ecgstream.commands.edge import edge
from ecgstream.commands.eval import eval_group
from ecgstream.commands.models import models
from ecgstream.commands.plot import plot
from ecgstream.commands.sim import sim

_traceback = False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ecgstream")
@click.option("-v", "--verbose", count=True, help="More logging; -v also shows tracebacks on errors.")
def cli(verbose: int) -> None:
    """ecgstream: wearable ECG streaming from virtual or real devices to alerts.

    Not a medical device: for research, development and teaching only.
    """
    global _traceback
    _traceback = verbose > 0
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


cli.add_command(sim)
cli.add_command(demo)
cli.add_command(models)
cli.add_command(eval_group)
cli.add_command(edge)
cli.add_command(cloud)
cli.add_command(plot)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A warning as one line on stderr: ``ecgstream: warning: …`` (no source line, no traceback)."""
    click.echo(f"ecgstream: warning: {_one_line(str(message))}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        result = cli.main(args=argv, prog_name="ecgstream", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ecgstream: aborted", err=True)
        return 130
    except click.UsageError as exc:
        where = f"ecgstream {' '.join(exc.ctx.command_path.split()[1:])}".strip() if exc.ctx else "ecgstream"
        click.echo(f"ecgstream: error: {_one_line(exc.format_message()).rstrip('.')} (see '{where} --help')", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"ecgstream: error: {_one_line(exc.format_message())}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("ecgstream: interrupted", err=True)
        return 130
    except (ValueError, OSError, RuntimeError, ImportError) as exc:
        if _traceback:
            raise
        click.echo(f"ecgstream: error: {_one_line(exc)}", err=True)
        return 2
    return result if isinstance(result, int) else 0


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
