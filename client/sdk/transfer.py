"""File transfers with the storage proxy's public API: resumable tus 1.0 uploads and ranged
downloads. The manager mints a short-lived token per operation (`token_source`); file bytes go
straight to the proxy.

An upload records its tus URL in a small state file
(`~/.cache/berth/uploads/`), keyed by the destination and the local file's size and mtime, so a
rerun after an interruption asks the proxy for the offset (HEAD) and sends only the rest."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from client.sdk.errors import BerthConnectionError
from client.sdk.http import api_error

TUS_VERSION = "1.0.0"
CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Grant:
    """A proxy URL and a token for one operation."""

    url: str
    token: str


TokenSource = Callable[[str], Awaitable[Grant]]  # op ("upload"/"download") -> grant


def state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "berth" / "uploads"


def _state_file(key: str, local: Path) -> Path:
    st = local.stat()
    digest = hashlib.sha256(f"{key}|{local.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return state_dir() / f"{digest.hexdigest()[:32]}.json"


async def upload(
    tokens: TokenSource,
    *,
    key: str,
    local: Path,
    remote: str,
    chunk_size: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
    http: httpx.AsyncClient | None = None,
) -> int:
    """Upload `local` to `remote` (a path in the folder); resumes a previous attempt. The
    number of bytes the proxy holds at the end (the file's size)."""
    size, state = _file_size(local), _state_file(key, local)
    own = http is None
    client = http or httpx.AsyncClient(timeout=httpx.Timeout(60.0))
    try:
        grant = await tokens("upload")
        headers = {"Authorization": f"Bearer {grant.token}", "Tus-Resumable": TUS_VERSION}
        location, offset = await _resume(client, state, headers)
        if location is None:
            location, offset = await _create(client, grant, headers, size=size, remote=remote)
            _write_state(state, location=location, remote=remote)
        if progress:
            progress(offset, size)
        with local.open("rb") as fh:
            while offset < size:
                fh.seek(offset)
                data = fh.read(chunk_size)
                resp = await _call(
                    client,
                    "PATCH",
                    location,
                    headers={
                        **headers,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                    content=data,
                )
                offset = int(resp.headers["Upload-Offset"])
                if progress:
                    progress(offset, size)
        _forget(state)
        return offset
    finally:
        if own:
            await client.aclose()


async def _resume(
    client: httpx.AsyncClient, state: Path, headers: dict[str, str]
) -> tuple[str | None, int]:
    location = _read_state(state)
    if location is None:
        return None, 0
    try:
        resp = await client.head(location, headers=headers)
    except httpx.HTTPError:
        return None, 0
    if resp.status_code != 200:  # expired or unknown upload: start again
        _forget(state)
        return None, 0
    return location, int(resp.headers["Upload-Offset"])


async def _create(
    client: httpx.AsyncClient, grant: Grant, headers: dict[str, str], *, size: int, remote: str
) -> tuple[str, int]:
    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in (("path", remote), ("filename", Path(remote).name))
    )
    resp = await _call(
        client,
        "POST",
        f"{grant.url.rstrip('/')}/v1/upload",
        headers={**headers, "Upload-Length": str(size), "Upload-Metadata": meta},
    )
    location = resp.headers["Location"]
    if location.startswith("/"):
        location = grant.url.rstrip("/") + location
    return location, int(resp.headers.get("Upload-Offset", "0"))


async def download(
    tokens: TokenSource,
    *,
    remote: str,
    local: Path,
    progress: Callable[[int, int | None], None] | None = None,
    http: httpx.AsyncClient | None = None,
) -> int:
    """Download `remote` to `local`; a `local.part` left by an interrupted run is continued
    with a Range request. The number of bytes written."""
    part = local.with_name(local.name + ".part")
    have = _file_size(part) if _exists(part) else 0
    own = http is None
    client = http or httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None))
    try:
        grant = await tokens("download")
        headers = {"Authorization": f"Bearer {grant.token}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        url = f"{grant.url.rstrip('/')}/v1/download"
        async with client.stream("GET", url, params={"path": remote}, headers=headers) as resp:
            if resp.status_code == 416:  # the part file is already whole
                part.replace(local)
                return have
            if resp.status_code >= 400:
                raise api_error(resp, (await resp.aread()).decode("utf-8", "replace"))
            if resp.status_code == 200:
                have = 0  # the proxy ignored the range: start over
            total = _total(resp, have)
            with part.open("ab" if have else "wb") as fh:
                async for chunk in _chunks(resp):
                    fh.write(chunk)
                    have += len(chunk)
                    if progress:
                        progress(have, total)
        part.replace(local)
        return have
    except httpx.TransportError as exc:
        raise BerthConnectionError(
            f"download of {remote} broke off; run it again to continue: {exc}",
            endpoint=str(exc.request.url) if exc.request else "",
        ) from exc
    finally:
        if own:
            await client.aclose()


def _file_size(path: Path) -> int:
    return path.stat().st_size


def _exists(path: Path) -> bool:
    return path.exists()


def _read_state(state: Path) -> str | None:
    try:
        return str(json.loads(state.read_text())["location"])
    except (OSError, ValueError, KeyError):
        return None


def _write_state(state: Path, *, location: str, remote: str) -> None:
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"location": location, "remote": remote}))


def _forget(state: Path) -> None:
    state.unlink(missing_ok=True)


def _total(resp: httpx.Response, have: int) -> int | None:
    content_range = resp.headers.get("Content-Range", "")
    if "/" in content_range:
        tail = content_range.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else None
    length = resp.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


async def _chunks(resp: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in resp.aiter_bytes():
        yield chunk


async def _call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes | None = None,
) -> httpx.Response:
    try:
        resp = await client.request(method, url, headers=headers, content=content)
    except httpx.TransportError as exc:
        raise BerthConnectionError(
            f"the storage proxy at {url} did not answer; run it again to resume: {exc}",
            endpoint=url,
        ) from exc
    if resp.status_code >= 400:
        raise api_error(resp, resp.text)
    return resp
