"""HTTP hardening of the alert service: response security headers and the cross-site request guard.

:class:`SecurityHeaders` puts on every answer a strict Content-Security-Policy (the dashboard loads
its scripts and styles from ``/static`` and runs no inline script), ``X-Content-Type-Options:
nosniff``, no framing (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), ``Referrer-Policy:
no-referrer``, ``Cache-Control: no-store`` on API answers (patient data stays out of caches), and
HSTS when the request came over HTTPS (directly, or through a trusted proxy that said so: uvicorn's
``forwarded_allow_ips`` sets the scheme).

:class:`CsrfGuard` refuses (403 ``forbidden``) a state-changing request (any method but GET, HEAD,
OPTIONS) without ``Authorization`` whose ``Origin`` (or, without one, ``Referer``) names another origin
than the ``Host`` it was sent to (sign-in included: no logging a victim into an attacker's account). A request that the browser authenticates by itself (the session cookie, no ``Authorization``
header) must also name its origin: browsers always send ``Origin`` on a POST, so a cookie-only
state change without one did not come from a page of ours (sign-in, which the cookie does not
authenticate, is only held to the first rule). Bearer-token requests cannot be forged
cross-site (a page cannot make a browser attach a header it does not know), so those need no origin.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.api.errors import error_response
from cloud.api.openapi import SESSION_COOKIE

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NOT_BY_COOKIE = frozenset({"/api/auth/login"})
"""State-changing routes that the session cookie does not authenticate (a stale cookie rides along)."""


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers") or []}


class SecurityHeaders:
    """Security headers on every HTTP answer (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path", "").startswith("/api")
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                         (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer")]
                if api:
                    extra.append((b"cache-control", b"no-store"))
                if https:
                    extra.append((b"strict-transport-security", HSTS.encode()))
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _origin_of(url: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of an Origin or Referer value; None for ``null`` or junk."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.scheme, parts.netloc.rpartition("@")[2].lower()


def _default_port(scheme: str, host: str) -> str:
    """``host`` with its port spelled out (``cloud.test`` → ``cloud.test:80`` over http)."""
    if host.startswith("["):
        return host if "]:" in host else f"{host}:{443 if scheme == 'https' else 80}"
    return host if ":" in host else f"{host}:{443 if scheme == 'https' else 80}"


def cross_site_reason(scope: Scope) -> str | None:
    """Why this request must be refused as cross-site (None: it may go on)."""
    if scope["type"] != "http" or scope.get("method", "GET") in SAFE_METHODS:
        return None
    headers = _headers(scope)
    if b"authorization" in headers:  # a bearer token: no browser attaches one by itself
        return None
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    claimed = headers.get(b"origin") or headers.get(b"referer")
    if claimed is None:
        cookie_only = (scope.get("path") not in NOT_BY_COOKIE
                       and f"{SESSION_COOKIE}=".encode() in headers.get(b"cookie", b""))
        return "a request signed in by the session cookie must come with an Origin header" if cookie_only else None
    origin = _origin_of(claimed.decode("latin-1"))
    if origin is None or not host:
        return "the request's Origin is not this service"
    scheme, netloc = origin
    if _default_port(scheme, netloc) != _default_port(scheme, host) and netloc != host:
        return f"cross-site request from {scheme}://{netloc} refused"
    return None


class CsrfGuard:
    """Refuse cross-site state-changing requests with 403 ``forbidden`` (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = cross_site_reason(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        state = getattr(scope.get("app"), "state", None)
        if state is not None and hasattr(state, "metrics"):
            state.metrics.rejected("forbidden")
        await error_response(403, "forbidden", reason)(scope, receive, send)


__all__ = ["CONTENT_SECURITY_POLICY", "HSTS", "CsrfGuard", "SecurityHeaders", "cross_site_reason"]
