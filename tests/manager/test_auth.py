"""Credentials end to end through the real middleware and database: bearer tokens, HMAC-signed
requests, password login with cookie sessions and CSRF."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from manager.auth import crypto
from manager.db.models import UserRole
from tests.factories import World, unique


@pytest.fixture
async def alice(world: World) -> Any:
    domain = await world.domain()
    return await world.actor(domain, password="correct horse battery")


class TestBearerTokens:
    async def test_a_valid_token_identifies_its_user(self, api: Any, alice: Any) -> None:
        resp = await api.get("/api/v1/auth/me", headers=alice.headers)
        assert resp.status == 200
        assert (await resp.json())["user"]["username"] == alice.user.username

    @pytest.mark.parametrize(
        ("header", "code"),
        [
            (None, "unauthenticated"),
            ("Bearer nonsense", "invalid_token"),
            ("Bearer berth_BKUNKNOWN.secret", "invalid_token"),
            ("Basic dXNlcjpwYXNz", "invalid_token"),
        ],
    )
    async def test_missing_or_bad_tokens_get_401_with_a_code(
        self, api: Any, header: str | None, code: str
    ) -> None:
        resp = await api.get(
            "/api/v1/auth/me", headers={"Authorization": header} if header else {}
        )
        assert resp.status == 401
        assert (await resp.json())["code"] == code

    async def test_a_wrong_secret_for_a_real_access_key_is_rejected(
        self, api: Any, alice: Any
    ) -> None:
        access_key, _ = crypto.parse_token(alice.token)  # type: ignore[misc]
        forged = crypto.format_token(access_key, "not-the-secret")
        resp = await api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
        assert resp.status == 401

    async def test_a_revoked_token_stops_working(self, api: Any, alice: Any) -> None:
        created = await api.post("/api/v1/tokens", json={"name": "ci"}, headers=alice.headers)
        issued = await created.json()
        assert created.status == 201 and issued["token"].startswith("berth_")
        other = {"Authorization": f"Bearer {issued['token']}"}
        assert (await api.get("/api/v1/auth/me", headers=other)).status == 200
        revoked = await api.post(f"/api/v1/tokens/{issued['id']}/revoke", headers=alice.headers)
        assert (await revoked.json())["revoked_at"] is not None
        resp = await api.get("/api/v1/auth/me", headers=other)
        assert resp.status == 401 and (await resp.json())["code"] == "token_revoked"

    async def test_an_expired_token_stops_working(
        self, api: Any, alice: Any, world: World
    ) -> None:
        soon = datetime.now(UTC) + timedelta(seconds=1)
        created = await api.post(
            "/api/v1/tokens", json={"expires_at": soon.isoformat()}, headers=alice.headers
        )
        token = (await created.json())["token"]
        # Move the expiry into the past directly rather than waiting for the clock.
        from sqlalchemy import update

        from manager.db.models import ApiTokenRow

        async with world.db_factory() as db, db.begin():
            await db.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.access_key == crypto.parse_token(token)[0])  # type: ignore[index]
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        resp = await api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401 and (await resp.json())["code"] == "token_expired"

    async def test_requests_sharing_a_token_do_not_queue_on_its_last_use_stamp(
        self, alice: Any, world: World
    ) -> None:
        """One request stamps last_used_at and holds that row until it commits; another
        request with the same token must not wait for it (it used to, one commit after
        another, stalling the API for up to a second under load)."""
        from sqlalchemy import select, text

        from manager.db.models import ApiTokenRow
        from manager.services import auth as auth_service

        access_key = crypto.parse_token(alice.token)[0]  # type: ignore[index]
        first_at = datetime.now(UTC)
        async with world.db_factory() as first, first.begin():
            await auth_service.authenticate_bearer_with_expiry(
                first, token=alice.token, now=first_at
            )
            async with world.db_factory() as second, second.begin():
                # Fail fast instead of queueing if the stamp still takes the row lock.
                await second.execute(text("SET LOCAL lock_timeout = '1s'"))
                principal, _ = await auth_service.authenticate_bearer_with_expiry(
                    second, token=alice.token, now=first_at + timedelta(seconds=1)
                )
                assert principal.user_id == alice.user.id
        async with world.db_factory() as db:
            stamped = await db.scalar(
                select(ApiTokenRow.last_used_at).where(ApiTokenRow.access_key == access_key)
            )
        assert stamped == first_at, "the first request's stamp stands"

    async def test_tokens_are_listed_without_secrets(self, api: Any, alice: Any) -> None:
        resp = await api.get("/api/v1/tokens", headers=alice.headers)
        items = (await resp.json())["items"]
        assert items and all("token" not in t and "secret" not in str(t) for t in items)

    async def test_a_deactivated_user_cannot_use_their_token(self, api: Any, world: World) -> None:
        domain = await world.domain()
        admin = await world.actor(domain, role=UserRole.DOMAIN_ADMIN)
        bob = await world.actor(domain)
        resp = await api.patch(
            f"/api/v1/users/{bob.user.id}", json={"is_active": False}, headers=admin.headers
        )
        assert resp.status == 200
        resp = await api.get("/api/v1/auth/me", headers=bob.headers)
        assert resp.status == 401 and (await resp.json())["code"] == "user_inactive"


def _signed(token: str, *, method: str, path: str, body: bytes, date: datetime) -> dict[str, str]:
    access_key, secret = crypto.parse_token(token)  # type: ignore[misc]
    date_s = date.isoformat()
    sig = crypto.sign(
        crypto.signing_key_for(secret),
        crypto.string_to_sign(method=method, path_qs=path, date=date_s, body=body),
    )
    return {
        "Authorization": f"{crypto.SIGNATURE_SCHEME} Credential={access_key}, Signature={sig}",
        "X-Berth-Date": date_s,
        "Content-Type": "application/json",
    }


class TestSignedRequests:
    async def test_a_correctly_signed_request_is_accepted_once(self, api: Any, alice: Any) -> None:
        body = b'{"name": "signed"}'
        headers = _signed(
            alice.token, method="POST", path="/api/v1/tokens", body=body, date=datetime.now(UTC)
        )
        first = await api.post("/api/v1/tokens", data=body, headers=headers)
        assert first.status == 201
        replay = await api.post("/api/v1/tokens", data=body, headers=headers)
        assert replay.status == 401
        assert (await replay.json())["code"] == "replayed_request"

    async def test_a_tampered_body_fails_the_signature(self, api: Any, alice: Any) -> None:
        headers = _signed(
            alice.token, method="POST", path="/api/v1/tokens", body=b"{}", date=datetime.now(UTC)
        )
        resp = await api.post("/api/v1/tokens", data=b'{"name":"evil"}', headers=headers)
        assert resp.status == 401 and (await resp.json())["code"] == "bad_signature"

    @pytest.mark.parametrize("skew", [timedelta(minutes=-10), timedelta(minutes=10)])
    async def test_skewed_dates_are_rejected(self, api: Any, alice: Any, skew: timedelta) -> None:
        headers = _signed(
            alice.token,
            method="GET",
            path="/api/v1/auth/me",
            body=b"",
            date=datetime.now(UTC) + skew,
        )
        resp = await api.get("/api/v1/auth/me", headers=headers)
        assert resp.status == 401 and (await resp.json())["code"] == "date_skew"


class TestPasswordLogin:
    async def test_login_sets_a_session_cookie_that_authenticates(
        self, api: Any, alice: Any
    ) -> None:
        resp = await api.post(
            "/api/v1/auth/login",
            json={"username": alice.user.username, "password": "correct horse battery"},
        )
        assert resp.status == 200
        me = await resp.json()
        assert me["csrf_token"]
        cookie = resp.cookies["berth_session"]
        assert cookie["httponly"]
        whoami = await api.get("/api/v1/auth/me")
        assert whoami.status == 200
        # Writes with the cookie need the CSRF header.
        no_csrf = await api.post("/api/v1/tokens", json={"name": "x"})
        assert no_csrf.status == 403 and (await no_csrf.json())["code"] == "csrf_failed"
        ok = await api.post(
            "/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": me["csrf_token"]}
        )
        assert ok.status == 201
        out = await api.post("/api/v1/auth/logout", headers={"X-CSRF-Token": me["csrf_token"]})
        assert out.status == 204
        after = await api.get("/api/v1/auth/me")
        assert after.status == 401

    async def test_a_wrong_password_is_rejected_without_saying_which_part_was_wrong(
        self, api: Any, alice: Any
    ) -> None:
        wrong = await api.post(
            "/api/v1/auth/login", json={"username": alice.user.username, "password": "nope"}
        )
        missing = await api.post(
            "/api/v1/auth/login", json={"username": unique("ghost"), "password": "nope"}
        )
        assert wrong.status == missing.status == 401
        assert (await wrong.json())["message"] == (await missing.json())["message"]
