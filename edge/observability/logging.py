"""Structured logs: JSON lines for machines or ``key=value`` text for people.

:func:`configure_logging` installs one stderr handler on the root logger;
:func:`log_event` logs an event name with fields (``device_id``,
``patient_id``, counts, ...), which both formats show. Fields whose name
suggests a secret (password, token, secret) are written as ``"***"``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_SECRET_WORDS = ("password", "secret", "token")
_RECORD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's structured fields: those of :func:`log_event` and any ``extra=`` keys."""
    fields = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and k != "fields"}
    fields.update(getattr(record, "fields", {}))
    return {k: "***" if any(w in k.lower() for w in _SECRET_WORDS) else v for k, v in fields.items()}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601, ms), ``level``, ``logger``, ``message``, fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        doc: dict[str, Any] = {"ts": ts, "level": record.levelname.lower(), "logger": record.name,
                               "message": record.getMessage(), **_fields(record)}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback after the fields
        return f"{head} {fields}{sep}{tail}"


def configure_logging(level: str = "info", fmt: Literal["json", "text"] = "text") -> logging.Handler:
    """Log ``level`` and above to stderr in ``fmt``; replaces the handler a previous call installed."""
    if level not in LEVELS or fmt not in ("json", "text"):
        raise ValueError(f"log level must be one of {', '.join(LEVELS)} and format json or text, got {level!r}, {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_ecgstream_edge", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._ecgstream_edge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    return handler


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` (a short snake_case name, also the message) with structured ``fields``."""
    logger.log(level, event, extra={"fields": {"event": event, **fields}})
