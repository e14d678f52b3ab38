"""The demo's dashboard login: an admin user with a random password, kept in ``--out/login.txt``.

The first run creates the user and writes the file (mode 0600); later runs read it and make sure the
user exists with that password (a ``--fresh`` database starts without users).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_USER = "demo-admin"
LOGIN_FILE = "login.txt"


@dataclass(frozen=True)
class DemoLogin:
    """A user name and password for the dashboard."""

    username: str
    password: str

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # created 0600, so the password is never readable by others, not even for a moment
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"username: {self.username}\npassword: {self.password}\n")
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)        # a file left by an older run keeps its mode on O_TRUNC

    @classmethod
    def read(cls, path: Path) -> DemoLogin | None:
        """The login in ``path``; None when it is missing or not in the demo's format."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return None
        fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
        if not fields.get("username") or not fields.get("password"):
            return None
        return cls(fields["username"], fields["password"])


def demo_login(out_dir: Path) -> DemoLogin:
    """The login kept under ``out_dir`` (a new one, written there, when there is none)."""
    path = out_dir / LOGIN_FILE
    login = DemoLogin.read(path)
    if login is None:
        login = DemoLogin(DEMO_USER, secrets.token_urlsafe(12))
        login.write(path)
    return login


async def ensure_user(accounts: Any, login: DemoLogin) -> None:
    """``login`` as an admin of the cloud whose :class:`cloud.accounts.Accounts` is ``accounts``."""
    users = {u.username for u in await accounts.list_users()}
    if login.username in users:
        await accounts.set_password(login.username, login.password)
    else:
        await accounts.create_user(login.username, login.password, "admin")
