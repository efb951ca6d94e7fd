"""Authentication use cases: API tokens (bearer and HMAC-signed), password login with cookie
sessions, and resolving a request's credentials to a Principal."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from manager.auth import crypto
from manager.auth.principal import Principal
from manager.db.models import (
    ApiTokenRow,
    MembershipRow,
    SeenSignatureRow,
    UserRow,
    WebSessionRow,
)
from manager.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated
from manager.services.pagination import Page, paginate


@dataclass(frozen=True)
class IssuedToken:
    row: ApiTokenRow
    token: str  # shown once, never stored


async def load_principal(db: AsyncSession, user: UserRow) -> Principal:
    memberships = (
        await db.execute(
            select(MembershipRow.project_id, MembershipRow.role).where(
                MembershipRow.user_id == user.id
            )
        )
    ).all()
    return Principal(
        user_id=user.id,
        domain_id=user.domain_id,
        role=user.role,
        project_roles={pid: role for pid, role in memberships},
        username=user.username,
    )


# --- API tokens -------------------------------------------------------------------------------


async def create_token(
    db: AsyncSession,
    principal: Principal,
    *,
    sealer: crypto.Sealer,
    user_id: uuid.UUID | None,
    name: str,
    expires_at: datetime | None,
    now: datetime,
) -> IssuedToken:
    owner_id = user_id or principal.user_id
    if owner_id != principal.user_id:
        owner = await db.get(UserRow, owner_id)
        if owner is None or not principal.is_domain_admin_of(owner.domain_id):
            raise NotFound("user not found")
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("expires_at must be in the future")
    access_key, secret = crypto.new_access_key(), crypto.new_secret()
    row = ApiTokenRow(
        user_id=owner_id,
        name=name,
        access_key=access_key,
        secret_hash=crypto.sha256(secret),
        signing_key_sealed=sealer.seal(crypto.signing_key_for(secret)),
        expires_at=expires_at,
    )
    db.add(row)
    await db.flush()
    return IssuedToken(row=row, token=crypto.format_token(access_key, secret))


async def list_tokens(
    db: AsyncSession,
    principal: Principal,
    *,
    user_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[ApiTokenRow]:
    query = select(ApiTokenRow)
    if user_id is not None and user_id != principal.user_id:
        if not principal.is_superadmin:
            owner = await db.get(UserRow, user_id)
            if owner is None or not principal.is_domain_admin_of(owner.domain_id):
                raise NotFound("user not found")
        query = query.where(ApiTokenRow.user_id == user_id)
    else:
        query = query.where(ApiTokenRow.user_id == principal.user_id)
    return await paginate(db, query, model=ApiTokenRow, cursor=cursor, limit=limit)


async def revoke_token(
    db: AsyncSession, principal: Principal, *, token_id: uuid.UUID, now: datetime
) -> ApiTokenRow:
    row = await db.get(ApiTokenRow, token_id)
    if row is None:
        raise NotFound("token not found")
    if row.user_id != principal.user_id:
        owner = await db.get(UserRow, row.user_id)
        if owner is None or not principal.is_domain_admin_of(owner.domain_id):
            raise NotFound("token not found")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


async def authenticate_bearer(db: AsyncSession, *, token: str, now: datetime) -> Principal:
    principal, _ = await authenticate_bearer_with_expiry(db, token=token, now=now)
    return principal


async def authenticate_bearer_with_expiry(
    db: AsyncSession, *, token: str, now: datetime
) -> tuple[Principal, datetime | None]:
    """The token's principal and the token's own expiry (for callers that cache it)."""
    parsed = crypto.parse_token(token)
    if parsed is None:
        raise Unauthenticated("malformed API token", code="invalid_token")
    access_key, secret = parsed
    row = await _usable_token(db, access_key=access_key, now=now)
    if not hmac.compare_digest(row.secret_hash, crypto.sha256(secret)):
        raise Unauthenticated("invalid API token", code="invalid_token")
    return await _token_principal(db, row, now=now), row.expires_at


async def authenticate_signed(
    db: AsyncSession,
    *,
    sealer: crypto.Sealer,
    access_key: str,
    signature: str,
    date_header: str,
    method: str,
    path_qs: str,
    body: bytes,
    window_s: int,
    now: datetime,
) -> Principal:
    try:
        signed_at = datetime.fromisoformat(date_header)
    except ValueError:
        raise Unauthenticated("X-Berth-Date must be an ISO 8601 timestamp", code="bad_date")
    if signed_at.tzinfo is None:
        raise Unauthenticated("X-Berth-Date must carry a timezone", code="bad_date")
    if abs((now - signed_at).total_seconds()) > window_s:
        raise Unauthenticated(
            f"request date is more than {window_s}s away from the server clock; sync your clock",
            code="date_skew",
        )
    row = await _usable_token(db, access_key=access_key, now=now)
    key = sealer.unseal(row.signing_key_sealed)
    expected = crypto.sign(
        key or b"",
        crypto.string_to_sign(method=method, path_qs=path_qs, date=date_header, body=body),
    )
    if key is None or not hmac.compare_digest(expected, signature.lower()):
        raise Unauthenticated("request signature does not match", code="bad_signature")
    # A signature is accepted once: replaying a captured request inside the window fails.
    inserted = await db.execute(
        insert(SeenSignatureRow)
        .values(signature=expected, expires_at=signed_at + timedelta(seconds=2 * window_s))
        .on_conflict_do_nothing()
        .returning(SeenSignatureRow.signature)
    )
    if inserted.first() is None:
        raise Unauthenticated("this signed request was already used", code="replayed_request")
    return await _token_principal(db, row, now=now)


async def _usable_token(db: AsyncSession, *, access_key: str, now: datetime) -> ApiTokenRow:
    row = await db.scalar(select(ApiTokenRow).where(ApiTokenRow.access_key == access_key))
    if row is None:
        raise Unauthenticated("invalid API token", code="invalid_token")
    if row.revoked_at is not None:
        raise Unauthenticated("API token was revoked; create a new one", code="token_revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated("API token expired; create a new one", code="token_expired")
    return row


async def _token_principal(db: AsyncSession, row: ApiTokenRow, *, now: datetime) -> Principal:
    user = await db.get(UserRow, row.user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("the token's user is deactivated", code="user_inactive")
    # Coarse last-use stamp: one write per minute per token at most keeps hot paths cheap.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        await _stamp_last_use(db, row.id, now=now)
    return await load_principal(db, user)


async def _stamp_last_use(db: AsyncSession, token_id: uuid.UUID, *, now: datetime) -> None:
    """Set last_used_at unless another request is already doing it. The stamp is held until
    the request's transaction commits; a plain UPDATE made every concurrent request with the
    same token queue on that row lock, one commit after another (a pile-up of up to a second
    at 200 requests/s). SKIP LOCKED lets them go on: one of them stamps, the rest need not."""
    due = now - timedelta(minutes=1)
    target = (
        select(ApiTokenRow.id)
        .where(
            ApiTokenRow.id == token_id,
            (ApiTokenRow.last_used_at.is_(None)) | (ApiTokenRow.last_used_at < due),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    await db.execute(update(ApiTokenRow).where(ApiTokenRow.id == target).values(last_used_at=now))


# --- password login and web sessions ----------------------------------------------------------


@dataclass(frozen=True)
class WebLogin:
    cookie_value: str
    csrf_token: str
    expires_at: datetime
    user: UserRow


async def login(
    db: AsyncSession, *, username: str, password: str, ttl_s: int, now: datetime
) -> WebLogin:
    user = await db.scalar(
        select(UserRow).where((UserRow.username == username) | (UserRow.email == username))
    )
    ok = crypto.verify_password(user.password_hash if user else None, password)
    if user is None or not ok:
        raise Unauthenticated("wrong username or password", code="bad_credentials")
    if not user.is_active:
        raise Forbidden("this account is deactivated; ask an administrator", code="user_inactive")
    cookie_value = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(24)
    expires_at = now + timedelta(seconds=ttl_s)
    db.add(
        WebSessionRow(
            id_hash=crypto.sha256(cookie_value),
            user_id=user.id,
            csrf_token=csrf_token,
            expires_at=expires_at,
        )
    )
    # Expired sessions of this user are dropped on login rather than by a separate loop.
    await db.execute(
        delete(WebSessionRow).where(
            WebSessionRow.user_id == user.id, WebSessionRow.expires_at <= now
        )
    )
    return WebLogin(cookie_value, csrf_token, expires_at, user)


async def authenticate_cookie(
    db: AsyncSession, *, cookie_value: str, now: datetime
) -> tuple[Principal, str]:
    row = await db.get(WebSessionRow, crypto.sha256(cookie_value))
    if row is None or row.expires_at <= now:
        raise Unauthenticated("login session expired; log in again", code="session_expired")
    user = await db.get(UserRow, row.user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("login session expired; log in again", code="session_expired")
    return await load_principal(db, user), row.csrf_token


async def logout(db: AsyncSession, *, cookie_value: str) -> None:
    await db.execute(
        delete(WebSessionRow).where(WebSessionRow.id_hash == crypto.sha256(cookie_value))
    )
