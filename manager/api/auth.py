"""Handlers for login/logout, the caller's identity, and API tokens."""

from __future__ import annotations

from aiohttp import web

from manager.api.framework import CSRF_TOKEN, Call
from manager.api.middleware import SESSION_COOKIE
from manager.api.schemas.common import PageResponse
from manager.api.schemas.tenancy import TokenIssued, TokenOut, UserOut, WhoAmI
from manager.ratelimit import RATE_LIMITS_KEY
from manager.services import auth as auth_service
from manager.services import tenancy
from manager.state import STATE_KEY


async def login(call: Call) -> web.Response:
    config = call.request.app[STATE_KEY].config
    limits = call.request.app[RATE_LIMITS_KEY]
    await limits.check_login(call.request.remote or "", call.body.username)
    result = await auth_service.login(
        call.tx,
        username=call.body.username,
        password=call.body.password,
        ttl_s=config.web_session_ttl_s,
        now=call.now,
    )
    principal = await auth_service.load_principal(call.tx, result.user)
    body = WhoAmI(
        user=UserOut.model_validate(result.user),
        project_roles=principal.project_roles,
        csrf_token=result.csrf_token,
    )
    response = web.Response(text=body.model_dump_json(), content_type="application/json")
    response.set_cookie(
        SESSION_COOKIE,
        result.cookie_value,
        max_age=config.web_session_ttl_s,
        httponly=True,
        samesite="Lax",
        secure=config.cookie_secure,
        path="/",
    )
    return response


async def logout(call: Call) -> web.Response:
    cookie = call.request.cookies.get(SESSION_COOKIE)
    if cookie:
        await auth_service.logout(call.tx, cookie_value=cookie)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def whoami(call: Call) -> WhoAmI:
    user = await tenancy.get_user(call.tx, call.me, user_id=call.me.user_id)
    return WhoAmI(
        user=UserOut.model_validate(user),
        project_roles=call.me.project_roles,
        csrf_token=call.request.get(CSRF_TOKEN),
    )


async def create_token(call: Call) -> TokenIssued:
    issued = await auth_service.create_token(
        call.tx,
        call.me,
        sealer=call.request.app[STATE_KEY].sealer,
        user_id=call.body.user_id,
        name=call.body.name,
        expires_at=call.body.expires_at,
        now=call.now,
    )
    out = TokenOut.model_validate(issued.row)
    return TokenIssued(**out.model_dump(), token=issued.token)


async def list_tokens(call: Call) -> PageResponse[TokenOut]:
    q = call.query
    page = await auth_service.list_tokens(
        call.tx, call.me, user_id=q.user_id, cursor=q.cursor, limit=q.limit
    )
    return PageResponse[TokenOut](
        items=[TokenOut.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )


async def revoke_token(call: Call) -> TokenOut:
    call.request.app[STATE_KEY].principals.clear()
    row = await auth_service.revoke_token(
        call.tx, call.me, token_id=call.path_uuid("token_id"), now=call.now
    )
    return TokenOut.model_validate(row)
