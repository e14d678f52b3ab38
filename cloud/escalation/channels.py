"""The escalation channels: a signed webhook, e-mail through SMTP, and an ntfy-style push topic.

Each channel sends one :class:`~cloud.escalation.notice.Notice` or raises :class:`DeliveryError` with a
short reason (stored as the delivery's ``last_error``; never a secret). :func:`build_channels` makes
them from ``[[escalation.channels]]`` and reads their secrets from the environment variables the
configuration names, failing with a :class:`~cloud.config.ConfigError` that names the variable (not
its value) when one is missing.

- **webhook**: ``POST url`` with the notice as JSON and the headers of :mod:`cloud.escalation.signing`
  (HMAC-SHA256 over ``<timestamp>.<body>``); any 2xx answer is a delivery.
- **push**: ``POST url`` (``https://ntfy.example.org/<topic>``) with the notice's text as the body and
  ``Title``, ``Priority`` (high → ``urgent``, medium → ``high``, low → ``default``) and ``Tags``
  headers, ``Authorization: Bearer <token>`` when ``token_env`` is set; any 2xx answer is a delivery.
  A phone subscribed to the topic (the ntfy app) shows it.
- **smtp**: an e-mail (subject = title, body = text) through aiosmtplib, with STARTTLS, implicit TLS
  or neither (``security``), logging in when ``username`` is set.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

import aiosmtplib
import httpx

from cloud.config import ConfigError, EscalationChannelConfig
from cloud.escalation.notice import Notice
from cloud.escalation.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

USER_AGENT = "ecgstream-escalation/1"
PUSH_PRIORITY = {"high": "urgent", "medium": "high", "low": "default"}
PUSH_TAGS = {"high": "rotating_light", "medium": "warning", "low": "bell"}


class DeliveryError(Exception):
    """One try to deliver failed; the message says why in a few words (no secrets)."""


class Channel(Protocol):
    """Something a notice can be sent to."""

    config: EscalationChannelConfig

    async def send(self, notice: Notice) -> None:
        """Deliver ``notice`` or raise :class:`DeliveryError`."""

    async def aclose(self) -> None:
        """Release connections."""


def _header_text(value: str) -> str:
    """A header value HTTP can carry: ASCII as is, anything else RFC 2047-encoded (ntfy decodes it)."""
    try:
        value.encode("ascii")
        return value
    except UnicodeEncodeError:
        return "=?utf-8?b?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="   # one encoded word


class _HttpChannel:
    """A channel that POSTs to ``config.url`` with one httpx client (its own connection pool)."""

    def __init__(self, config: EscalationChannelConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client or httpx.AsyncClient(timeout=config.timeout_s, follow_redirects=False,
                                                   headers={"User-Agent": USER_AGENT})

    async def _post(self, content: bytes, headers: Mapping[str, str]) -> None:
        try:
            r = await self._client.post(str(self.config.url), content=content, headers=dict(headers))
        except httpx.HTTPError as exc:
            detail = str(exc).replace(str(self.config.url), self.config.target)   # a query may carry a token
            raise DeliveryError(f"{type(exc).__name__} posting to {self.config.target}"
                                + (f": {detail}" if detail else "")) from None
        if not r.is_success:
            raise DeliveryError(f"HTTP {r.status_code} from {self.config.target}")

    async def aclose(self) -> None:
        await self._client.aclose()


class WebhookChannel(_HttpChannel):
    """A signed JSON POST (see :mod:`cloud.escalation.signing`)."""

    def __init__(self, config: EscalationChannelConfig, secret: bytes, client: httpx.AsyncClient | None = None
                 ) -> None:
        super().__init__(config, client)
        self._secret = secret

    async def send(self, notice: Notice) -> None:
        body = json.dumps(notice.as_json(), separators=(",", ":"), sort_keys=True).encode()
        timestamp = int(time.time())               # the receiver checks it against its own clock
        await self._post(body, {"Content-Type": "application/json", TIMESTAMP_HEADER: str(timestamp),
                                SIGNATURE_HEADER: sign(self._secret, timestamp, body),
                                DELIVERY_HEADER: str(notice.delivery_id)})


class PushChannel(_HttpChannel):
    """Text to an ntfy-style topic URL."""

    def __init__(self, config: EscalationChannelConfig, token: str | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config, client)
        self._token = token

    async def send(self, notice: Notice) -> None:
        tags = [PUSH_TAGS.get(notice.priority, "bell"), *self.config.tags]
        headers = {"Content-Type": "text/plain; charset=utf-8", "Title": _header_text(notice.title()),
                   "Priority": PUSH_PRIORITY.get(notice.priority, "default"), "Tags": ",".join(tags),
                   DELIVERY_HEADER: str(notice.delivery_id)}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        await self._post(notice.text().encode("utf-8"), headers)


class SmtpChannel:
    """An e-mail through an SMTP server."""

    def __init__(self, config: EscalationChannelConfig, password: str | None = None) -> None:
        self.config = config
        self._password = password

    def message(self, notice: Notice) -> EmailMessage:
        """The e-mail this notice becomes."""
        c = self.config
        msg = EmailMessage()
        msg["From"] = str(c.from_addr)
        msg["To"] = ", ".join(c.to)
        msg["Subject"] = notice.title()
        msg["Date"] = formatdate(notice.sent_us / 1e6, usegmt=True)
        msg["Message-ID"] = make_msgid("ecgstream", domain=str(c.from_addr).rsplit("@", 1)[-1])
        msg[DELIVERY_HEADER] = str(notice.delivery_id)
        msg["X-Priority"] = {"high": "1", "medium": "2"}.get(notice.priority, "3")
        msg.set_content(notice.text())
        return msg

    async def send(self, notice: Notice) -> None:
        c = self.config
        security = c.smtp_security
        try:
            await aiosmtplib.send(self.message(notice), hostname=str(c.host), port=c.smtp_port,
                                  username=c.username, password=self._password if c.username else None,
                                  use_tls=security == "tls", start_tls=security == "starttls",
                                  timeout=c.timeout_s)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__} sending mail via {c.host}:{c.smtp_port}"
                                + (f": {exc}" if str(exc) else "")) from None

    async def aclose(self) -> None:
        return None


def _secret(config: EscalationChannelConfig, key: str, environ: Mapping[str, str]) -> str | None:
    var = getattr(config, key)
    if var is None:
        return None
    value = environ.get(var)
    if not value:
        raise ConfigError(f"[escalation] channel {config.name!r}: environment variable {var} ({key}) is not set")
    return value


def build_channels(configs: Sequence[EscalationChannelConfig], *, environ: Mapping[str, str] | None = None
                   ) -> list[Channel]:
    """The channels of ``[[escalation.channels]]``, their secrets read from ``environ`` (default the process's)."""
    env = os.environ if environ is None else environ
    out: list[Channel] = []
    for c in configs:
        if c.kind == "webhook":
            out.append(WebhookChannel(c, str(_secret(c, "secret_env", env)).encode("utf-8")))
        elif c.kind == "push":
            out.append(PushChannel(c, _secret(c, "token_env", env)))
        else:
            out.append(SmtpChannel(c, _secret(c, "password_env", env)))
    return out


__all__ = ["Channel", "DeliveryError", "PushChannel", "SmtpChannel", "WebhookChannel", "build_channels"]
