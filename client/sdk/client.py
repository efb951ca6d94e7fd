"""AsyncBerth: the typed async client for the manager's REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel

from client.config import ClientConfig
from client.sdk.admin import (
    Domains,
    Nodes,
    Projects,
    Quotas,
    ResourceGroups,
    Tokens,
    Usage,
    Users,
)
from client.sdk.errors import BerthConfigError
from client.sdk.http import RetryPolicy, Transport
from client.sdk.sessions import Sessions
from client.sdk.vfolders import VFolders

if TYPE_CHECKING:
    from manager.api.schemas.tenancy import WhoAmI

M = TypeVar("M", bound=BaseModel)


class AsyncBerth:
    """One manager, one token. Use as `async with AsyncBerth.from_config() as berth: ...`.

    Resources hang off the client: `sessions`, `nodes`, `users`, `projects`, `domains`,
    `tokens`, `groups`, `quotas`, `usage`, `vfolders`. Models are the manager's own pydantic
    schemas."""

    def __init__(
        self,
        endpoint: str,
        token: str | None,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not endpoint:
            raise BerthConfigError("no manager endpoint: set BERTH_ENDPOINT or run `berth login`")
        self.transport = Transport(
            endpoint=endpoint, token=token, timeout_s=timeout_s, retry=retry, transport=transport
        )
        self.sessions = Sessions(self)
        self.nodes = Nodes(self)
        self.users = Users(self)
        self.projects = Projects(self)
        self.domains = Domains(self)
        self.tokens = Tokens(self)
        self.groups = ResourceGroups(self)
        self.quotas = Quotas(self)
        self.usage = Usage(self)
        self.vfolders = VFolders(self)

    @classmethod
    def from_config(
        cls, config: ClientConfig | None = None, *, require_token: bool = True, **kwargs: Any
    ) -> AsyncBerth:
        """A client for ~/.config/berth/config.toml overridden by BERTH_ENDPOINT/BERTH_TOKEN."""
        config = config or ClientConfig.load()
        if require_token:
            check_logged_in(config)
        return cls(config.endpoint, config.token, **kwargs)

    @property
    def endpoint(self) -> str:
        return self.transport.endpoint

    async def __aenter__(self) -> AsyncBerth:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def whoami(self) -> WhoAmI:
        from manager.api.schemas.tenancy import WhoAmI

        return WhoAmI.model_validate(await self.get("/api/v1/auth/me"))

    # Plain verbs, for endpoints the resources do not wrap yet.
    async def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return await self.transport.request("GET", path, params=params)

    async def post(self, path: str, body: Any) -> Any:
        return await self.transport.request("POST", path, json_body=body)

    async def delete(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return await self.transport.request("DELETE", path, params=params)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        return await self.transport.request(method, path, params=params, json_body=body)

    async def paginate(
        self,
        path: str,
        model: type[M],
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = 100,
    ) -> AsyncIterator[M]:
        """Every item of a `{items, next_cursor}` list, one page per round trip."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        query["limit"] = page_size
        while True:
            page = await self.get(path, params=query)
            for item in page["items"]:
                yield model.model_validate(item)
            cursor = page.get("next_cursor")
            if not cursor:
                return
            query["cursor"] = cursor


def check_logged_in(config: ClientConfig) -> None:
    if not config.token:
        raise BerthConfigError(
            "not logged in: run `berth login --endpoint URL --token TOKEN` or set BERTH_TOKEN"
        )
