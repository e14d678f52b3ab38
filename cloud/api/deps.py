"""Request dependencies: the context, the signed-in user (cookie or bearer token), role checks.

:func:`current_user` names both security schemes of :mod:`cloud.api.openapi` (the session cookie and
the bearer token), so every route that needs a session declares them in the OpenAPI document; the
token itself is read by :func:`request_token` (a malformed Authorization header is a 401, not ignored).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from cloud.accounts import Role
from cloud.api.context import ApiContext
from cloud.api.errors import ApiError
from cloud.api.openapi import BEARER_SCHEME, SESSION_COOKIE, SESSION_COOKIE_SCHEME
from cloud.store import UserRecord

__all__ = ["SESSION_COOKIE", "AdminUser", "CurrentUser", "admin_user", "client_address", "current_user", "get_ctx",
           "request_token"]


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def request_token(request: Request) -> str | None:
    """The bearer token of ``Authorization: Bearer …``, else the session cookie, else None."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <token>'",
                       {"WWW-Authenticate": "Bearer"})
    return request.cookies.get(SESSION_COOKIE) or None


async def current_user(
    request: Request,
    _cookie: Annotated[str | None, Security(SESSION_COOKIE_SCHEME)] = None,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)] = None,
) -> UserRecord:
    """The signed-in user; 401 without a valid, unexpired session."""
    token = request_token(request)
    if token is None:
        raise ApiError(401, "unauthenticated", "sign in first (session cookie or Authorization: Bearer)",
                       {"WWW-Authenticate": "Bearer"})
    user = await get_ctx(request).accounts.authenticate(token)
    if user is None:
        raise ApiError(401, "unauthenticated", "the session is unknown or has expired; sign in again",
                       {"WWW-Authenticate": "Bearer"})
    request.state.user = user
    return user


async def admin_user(user: Annotated[UserRecord, Depends(current_user)]) -> UserRecord:
    """The signed-in user if an admin; 403 otherwise."""
    if user.role != Role.ADMIN.value:
        raise ApiError(403, "forbidden", "this needs the admin role")
    return user


CurrentUser = Annotated[UserRecord, Depends(current_user)]
"""A route parameter: the signed-in user (401 without one)."""
AdminUser = Annotated[UserRecord, Depends(admin_user)]
"""A route parameter: the signed-in admin (401 without a session, 403 for other roles)."""
