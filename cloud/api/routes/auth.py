"""Sign-in, sign-out, who am I, changing one's own password, and (admin) user management: add, delete,
unlock after failed sign-ins, put in a ward or care team."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request, Response

from cloud.accounts import AccountError, BadCredentials, RateLimited, UserExists
from cloud.api.deps import (
    SESSION_COOKIE,
    AdminUser,
    CurrentUser,
    client_address,
    get_ctx,
    request_token,
)
from cloud.api.errors import ApiError
from cloud.api.models import LoginOut, PasswordChangedOut, UnlockOut, UserList, UserOut, UserRef
from cloud.api.openapi import error_responses
from cloud.api.schemas import CreateUserBody, LoginBody, PasswordChangeBody, TeamBody
from cloud.api.views import user_json
from cloud.store import NotFound

router = APIRouter(prefix="/api", tags=["auth"])

_SET_COOKIE = {"Set-Cookie": {"description": "ecgstream_session=<token>; HttpOnly; SameSite=Strict; Path=/ "
                                             "(Secure unless [http] cookie_secure says otherwise: by default "
                                             "whenever the service is not on loopback or the request came over "
                                             "HTTPS)", "schema": {"type": "string"}}}


def _secure(request: Request) -> bool:
    return get_ctx(request).settings.http.secure_cookie(https=request.url.scheme == "https")


@router.post("/auth/login", response_model=LoginOut,
             responses={200: {"headers": _SET_COOKIE}, **error_responses(401, 413, 422, 429)})
async def login(body: LoginBody, request: Request, response: Response) -> dict[str, object]:
    """Sign in: the token comes back in the body and as the HttpOnly session cookie."""
    ctx = get_ctx(request)
    client = client_address(request)
    try:
        result = await ctx.accounts.login(body.username, body.password, client=client)
    except RateLimited as exc:
        ctx.metrics.logins.labels(result="rate_limited").inc()
        raise ApiError(429, "rate_limited", str(exc), {"Retry-After": str(math.ceil(exc.retry_after_s))}) from None
    except BadCredentials:
        ctx.metrics.logins.labels(result="bad_credentials").inc()
        raise ApiError(401, "bad_credentials", "unknown user name or wrong password") from None
    ctx.metrics.logins.labels(result="ok").inc()
    await ctx.store.audit(result.user.username, "login", f"user:{result.user.username}", {"client": client})
    response.set_cookie(SESSION_COOKIE, result.token, max_age=int(ctx.settings.accounts.session_ttl_s),
                        httponly=True, samesite="strict", secure=_secure(request), path="/")
    return {"token": result.token, "user": {"username": result.user.username, "role": result.user.role},
            "expires_us": result.expires_us}


@router.post("/auth/logout", status_code=204, response_class=Response, responses=error_responses(401))
async def logout(request: Request, user: CurrentUser) -> Response:
    ctx = get_ctx(request)
    token = request_token(request)
    if token is not None:
        await ctx.accounts.logout(token)
    await ctx.store.audit(user.username, "logout", f"user:{user.username}")
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return response


@router.post("/auth/password", response_model=PasswordChangedOut, responses=error_responses(401, 413, 422, 429))
async def change_password(body: PasswordChangeBody, request: Request, user: CurrentUser) -> dict[str, object]:
    """Change one's own password (the current one is checked, and wrong ones count against the sign-in
    limit); every other session of the user is signed out, this one stays."""
    ctx = get_ctx(request)
    client = client_address(request)
    try:
        ended = await ctx.accounts.change_password(user.username, body.old_password, body.new_password,
                                                   client=client, keep_token=request_token(request))
    except RateLimited as exc:
        raise ApiError(429, "rate_limited", str(exc), {"Retry-After": str(math.ceil(exc.retry_after_s))}) from None
    except BadCredentials:
        raise ApiError(401, "bad_credentials", "the current password is wrong") from None
    except AccountError as exc:
        raise ApiError(422, "invalid_request", f"new_password: {exc}") from None
    await ctx.store.audit(user.username, "change_password", f"user:{user.username}",
                          {"client": client, "sessions_ended": ended})
    return {"sessions_ended": ended}


@router.get("/me", response_model=UserRef, responses=error_responses(401))
async def me(user: CurrentUser) -> dict[str, object]:
    return {"username": user.username, "role": user.role}


@router.get("/users", response_model=UserList, responses=error_responses(401, 403))
async def list_users(request: Request, _: AdminUser) -> dict[str, object]:
    return {"users": [user_json(u) for u in await get_ctx(request).accounts.list_users()]}


@router.post("/users", status_code=201, response_model=UserOut,
             responses=error_responses(401, 403, 409, 413, 422))
async def create_user(body: CreateUserBody, request: Request, admin: AdminUser
                      ) -> dict[str, object]:
    ctx = get_ctx(request)
    try:
        user = await ctx.accounts.create_user(body.username, body.password, body.role)
    except UserExists as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except AccountError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    await ctx.store.audit(admin.username, "create_user", f"user:{user.username}", {"role": user.role})
    return user_json(user)


@router.delete("/users/{username}", status_code=204, response_class=Response,
               responses=error_responses(401, 403, 404, 409, 422))
async def delete_user(username: str, request: Request, admin: AdminUser) -> Response:
    ctx = get_ctx(request)
    if username == admin.username:
        raise ApiError(409, "conflict", "you cannot delete your own account")
    if not await ctx.accounts.delete_user(username):
        raise ApiError(404, "not_found", f"user {username[:80]!r} not found")
    await ctx.store.audit(admin.username, "delete_user", f"user:{username}")
    return Response(status_code=204)


@router.post("/users/{username}/unlock", response_model=UnlockOut, responses=error_responses(401, 403, 404, 422))
async def unlock_user(username: str, request: Request, admin: AdminUser) -> dict[str, object]:
    """Forget a user's failed sign-ins, so the growing delay after them ends now."""
    ctx = get_ctx(request)
    if await ctx.store.get_user(username[:128]) is None:
        raise ApiError(404, "not_found", f"user {username[:80]!r} not found")
    forgotten = await ctx.accounts.unlock(username)
    await ctx.store.audit(admin.username, "unlock_user", f"user:{username}", {"forgotten_failures": forgotten})
    return {"username": username, "forgotten_failures": forgotten}


@router.put("/users/{username}/team", response_model=UserOut, responses=error_responses(401, 403, 404, 413, 422))
async def set_user_team(username: str, body: TeamBody, request: Request, admin: AdminUser) -> dict[str, object]:
    """Put a user in a ward or care team (``null``: none); audited as ``set_team``."""
    ctx = get_ctx(request)
    try:
        user = await ctx.accounts.set_team(username[:128], body.team)
    except NotFound:
        raise ApiError(404, "not_found", f"user {username[:80]!r} not found") from None
    except AccountError as exc:
        raise ApiError(422, "invalid_request", f"team: {exc}") from None
    await ctx.store.audit(admin.username, "set_team", f"user:{username}", {"team": body.team})
    return user_json(user)
