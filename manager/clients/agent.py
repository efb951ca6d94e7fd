"""HTTP client the manager uses to drive one node agent (wire models from agent.contract)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from agent.contract import (
    CLUSTER_AUTH_HEADER,
    ContainerInfo,
    ContainerStats,
    CreateContainerRequest,
    ErrorBody,
    NodeReport,
)

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT_S = 30.0
CONNECTION_ERROR = "agent_unreachable"
BAD_RESPONSE = "bad_agent_response"


class AgentError(Exception):
    """An agent call failed. `transient` means retrying the same call later may succeed."""

    def __init__(self, code: str, message: str, *, status: int | None, transient: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.transient = transient


class AgentClient:
    def __init__(
        self,
        *,
        base_url: str,
        secret: str,
        http: aiohttp.ClientSession,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {CLUSTER_AUTH_HEADER: secret}
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def create_container(self, request: CreateContainerRequest) -> ContainerInfo:
        body = request.model_dump(mode="json", exclude_none=True)
        return await self._call("POST", "/v1/containers", ContainerInfo, json=body)

    async def destroy_container(self, container_id: str) -> bool:
        """Idempotent; returns whether the container existed on the agent."""
        data = await self._raw("DELETE", f"/v1/containers/{container_id}")
        return bool(data.get("existed"))

    async def list_containers(self) -> list[ContainerInfo]:
        data = await self._raw("GET", "/v1/containers")
        return [_parse(ContainerInfo, item) for item in data.get("containers", [])]

    async def get_container(self, container_id: str) -> ContainerInfo:
        return await self._call("GET", f"/v1/containers/{container_id}", ContainerInfo)

    async def stats(self, container_id: str) -> ContainerStats:
        return await self._call("GET", f"/v1/containers/{container_id}/stats", ContainerStats)

    async def node_report(self) -> NodeReport:
        return await self._call("GET", "/v1/node", NodeReport)

    async def logs(self, container_id: str, *, follow: bool = False) -> AsyncIterator[bytes]:
        """Output chunks as the agent sends them; with follow, until the container exits."""
        url = f"{self._base}/v1/containers/{container_id}/logs"
        # A followed stream may last as long as the container does.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total)
        try:
            async with self._http.get(
                url,
                params={"follow": "true" if follow else "false"},
                headers=self._headers,
                timeout=timeout,
            ) as response:
                if response.status >= 300:
                    raise await _error_from(response)
                async for chunk in response.content.iter_any():
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AgentError(CONNECTION_ERROR, repr(exc), status=None, transient=True) from exc

    async def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        return _parse(model, await self._raw(method, path, **kwargs))

    async def _raw(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with self._http.request(
                method, self._base + path, headers=self._headers, timeout=self._timeout, **kwargs
            ) as response:
                if response.status >= 300:
                    raise await _error_from(response)
                data = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AgentError(CONNECTION_ERROR, repr(exc), status=None, transient=True) from exc
        if not isinstance(data, dict):
            raise AgentError(BAD_RESPONSE, "expected a JSON object", status=200, transient=False)
        return data


async def _error_from(response: aiohttp.ClientResponse) -> AgentError:
    transient = response.status >= 500
    try:
        body = ErrorBody.model_validate(await response.json(content_type=None))
    except (ValueError, ValidationError, aiohttp.ContentTypeError):
        text = (await response.text())[:200]
        return AgentError(BAD_RESPONSE, text, status=response.status, transient=transient)
    return AgentError(body.code, body.message, status=response.status, transient=transient)


def _parse(model: type[M], data: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AgentError(BAD_RESPONSE, str(exc), status=200, transient=False) from exc
