"""Storage proxy throughput and memory: upload and download of one large file through the public
API (tus upload, streamed download) against a local `cp` of the same file in the same run.

The proxy runs as a subprocess (`python -m storage_proxy <config>`) over a posix volume in a
temporary directory; its peak RSS is read from /proc/<pid>/status (VmHWM). Prints one JSON object.

    .venv/bin/python benchmarks/storage.py [--size-mib 1024] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from manager.clients.storage import StorageProxyClient
from storage_proxy.contract import mint_token

MiB = 1024 * 1024
CHUNK = 4 * MiB
CLUSTER_SECRET = "bench-cluster-secret-0123456789abcdef"
TOKEN_SECRET = "bench-token-secret-0123456789abcdef-01"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1 GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per step (median kept)")
    parser.add_argument("--dir", default=None, help="scratch directory (default: system temp)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-storage-bench-", dir=args.dir))
    try:
        result = asyncio.run(run(work, args.size_mib * MiB, args.repeat))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


async def run(work: Path, size: int, repeat: int) -> dict[str, object]:
    source = work / "source.bin"
    _make_file(source, size)
    volume = work / "volume"
    volume.mkdir()
    internal_port, public_port = _free_port(), _free_port()
    config = work / "storage.toml"
    config.write_text(
        f"internal_port = {internal_port}\npublic_port = {public_port}\n"
        f'cluster_secret = "{CLUSTER_SECRET}"\ntoken_secret = "{TOKEN_SECRET}"\n'
        f'[[volumes]]\nname = "bench"\nbackend = "posix"\n[volumes.options]\nroot = "{volume}"\n'
    )
    proxy = _start_proxy(work, config)
    runs: dict[str, list[float]] = {"cp": [], "upload": [], "download": []}
    cpu: dict[str, list[float]] = {"upload": [], "download": []}
    try:
        async with aiohttp.ClientSession() as http:
            internal = f"http://127.0.0.1:{internal_port}"
            public = f"http://127.0.0.1:{public_port}"
            client = StorageProxyClient(internal, CLUSTER_SECRET, http)
            await _wait_ready(client)
            rss_start_kib = _status_kib(proxy.pid, "VmRSS")
            fid = uuid.uuid4().hex
            await client.create_folder("bench", fid)
            for i in range(repeat):
                # Each step starts with no dirty pages left by the one before it.
                _sync()
                target = work / f"cp-{i}.bin"
                runs["cp"].append(_timed(lambda t=target: _cp(source, t)))
                target.unlink()
                _sync()
                before = _cpu_s(proxy.pid)
                runs["upload"].append(await _timed_async(_upload(http, public, fid, source, size)))
                cpu["upload"].append(_cpu_s(proxy.pid) - before)
                _sync()
                target = work / f"down-{i}.bin"
                before = _cpu_s(proxy.pid)
                runs["download"].append(await _timed_async(_download(http, public, fid, target)))
                cpu["download"].append(_cpu_s(proxy.pid) - before)
                if target.stat().st_size != size:
                    raise RuntimeError("downloaded file has the wrong size")
                target.unlink()
            peak_kib = _status_kib(proxy.pid, "VmHWM")
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)

    cp_s = statistics.median(runs["cp"])

    def summary(name: str) -> dict[str, object]:
        seconds = statistics.median(runs[name])
        out: dict[str, object] = {
            "median_s": round(seconds, 3),
            "mib_per_s": round(size / MiB / seconds, 1),
            "runs_s": [round(r, 3) for r in runs[name]],
        }
        if name != "cp":
            out["vs_cp"] = round(cp_s / seconds, 3)
            out["proxy_cpu_s"] = round(statistics.median(cpu[name]), 3)
        return out

    return {
        "size_bytes": size,
        "repeat": repeat,
        "cp": summary("cp"),
        "upload": summary("upload"),
        "download": summary("download"),
        "proxy_rss_kib": {"after_start": rss_start_kib, "peak": peak_kib},
    }


async def _upload(
    http: aiohttp.ClientSession, public: str, fid: str, source: Path, size: int
) -> None:
    token = mint_token(TOKEN_SECRET, volume="bench", folder_id=fid, op="upload", ttl_s=3600)
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    async with http.post(
        f"{public}/v1/upload",
        headers={**auth, "Upload-Length": str(size), "Upload-Metadata": "path YmlnLmJpbg=="},
    ) as resp:
        resp.raise_for_status()
        location = resp.headers["Location"]

    async def body() -> AsyncIterator[bytes]:
        # Large reads, as tus clients send large chunks; aiohttp's own file payload reads
        # 64 KiB per executor call and would measure the client instead of the proxy.
        fd = os.open(source, os.O_RDONLY)
        try:
            while chunk := await asyncio.to_thread(os.read, fd, CHUNK):
                yield chunk
        finally:
            os.close(fd)

    if True:
        async with http.patch(
            public + location,
            data=body(),
            headers={
                **auth,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
                "Content-Length": str(size),
            },
            timeout=aiohttp.ClientTimeout(total=None),
        ) as resp:
            resp.raise_for_status()


async def _download(http: aiohttp.ClientSession, public: str, fid: str, target: Path) -> None:
    token = mint_token(TOKEN_SECRET, volume="bench", folder_id=fid, op="download", ttl_s=3600)
    async with http.get(
        f"{public}/v1/download",
        params={"path": "big.bin"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=None),
    ) as resp:
        resp.raise_for_status()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            async for chunk in resp.content.iter_chunked(CHUNK):
                os.write(fd, chunk)
        finally:
            os.close(fd)


async def _wait_ready(client: StorageProxyClient) -> None:
    deadline = time.monotonic() + 30
    while not await client.health():
        if time.monotonic() > deadline:
            raise RuntimeError("storage proxy did not start")
        await asyncio.sleep(0.1)


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(16 * MiB)
    with open(path, "wb") as fh:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            fh.write(piece)
            left -= len(piece)
        fh.flush()
        os.fsync(fh.fileno())


def _cp(source: Path, target: Path) -> None:
    # Finished when its data is on disk, like an upload, which fsyncs before its rename.
    subprocess.run(["cp", str(source), str(target)], check=True)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _start_proxy(work: Path, config: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_STORAGE_")}
    with open(work / "proxy.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, *_profiler_args(), "-m", "storage_proxy", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _profiler_args() -> list[str]:
    # BERTH_BENCH_PROFILE=<file> runs the proxy under cProfile (written when it stops).
    target = os.environ.get("BERTH_BENCH_PROFILE")
    return ["-m", "cProfile", "-o", target] if target else []


def _sync() -> None:
    subprocess.run(["sync"], check=True)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


async def _timed_async(coro: object) -> float:
    start = time.perf_counter()
    await coro  # type: ignore[misc]
    return time.perf_counter() - start


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
