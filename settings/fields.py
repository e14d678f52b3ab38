"""Field types of settings tables, as pydantic annotations: strict TOML types, value rules, secrets.

A TOML value must already have its key's type (``port = "1883"`` is refused, not converted); the
environment reader turns text into that type first (:mod:`settings.reader`). A rule failing reads
``<key> <value> <problem>`` in the error, e.g. ``port 70000 is not a TCP port``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict
from pydantic_core import PydanticCustomError

SECRET: dict[str, Any] = {"secret": True}
"""Dataclass field metadata: a secret, which may only come from the environment (and is never shown)."""

INTERNAL: dict[str, Any] = {"internal": True}
"""Dataclass field metadata: not a settings key (e.g. where the settings were read from)."""


def rule(check: Callable[[Any], bool], problem: str) -> AfterValidator:
    """A value rule: ``check(value)`` must hold, else the error says ``<key> <value> <problem>``."""

    def validate(value: Any) -> Any:
        if not check(value):
            raise PydanticCustomError("rule", "{problem}", {"problem": problem})
        return value

    return AfterValidator(validate)


def problem(message: str, key: str | None = None, *, at: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """A table's problem (raise it from a model validator): ``key`` names the key it is about, ``at`` the
    place below the table (``("ble", 1)``: its second ``[[….ble]]`` entry) when it is not the table itself."""
    return PydanticCustomError("table", "{message}", {"message": message, "key": key, "at": at})


def _not_blank(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise PydanticCustomError("empty", "must not be empty")
    return value


Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict(), AfterValidator(_not_blank)]
"""A string that is not blank."""
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite number (a TOML integer is taken as a float)."""
FilePath = Annotated[Path, BeforeValidator(_not_blank)]
"""A path; relative ones in a file are taken from the file's folder (:mod:`settings.reader`)."""

POSITIVE = rule(lambda v: v > 0, "must be > 0")
TcpPort = Annotated[int, Strict(), rule(lambda v: 1 <= v <= 65535, "is not a TCP port")]
ListenPort = Annotated[int, Strict(), rule(lambda v: 0 <= v <= 65535, "is not a TCP port")]
"""A port to listen on; 0 means any free one (or off, where the key says so)."""
PositiveNumber = Annotated[Number, POSITIVE]
PositiveInt = Annotated[Int, POSITIVE]
