"""The proxy as an operator runs it: a process that serves both APIs and stops cleanly."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

from manager.clients.storage import StorageProxyClient

SECRET = "process-test-cluster-secret-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestStorageProxyProcess:
    async def test_serves_both_apis_and_stops_on_sigterm(self, tmp_path: Path) -> None:
        internal_port, public_port = _free_port(), _free_port()
        (tmp_path / "vol").mkdir()
        # A delete that crashed after its commit point, to be finished at startup.
        trash = tmp_path / "vol" / ".berth" / "trash" / "old.data.x"
        trash.mkdir(parents=True)
        (trash / "f").write_bytes(b"stale")
        config = tmp_path / "storage.toml"
        config.write_text(
            f"internal_port = {internal_port}\npublic_port = {public_port}\n"
            f'cluster_secret = "{SECRET}"\ntoken_secret = "{SECRET}"\n'
            f'public_url = "http://files.test"\n'
            f'[[volumes]]\nname = "v"\nbackend = "posix"\n'
            f'[volumes.options]\nroot = "{tmp_path / "vol"}"\n'
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "storage_proxy",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with aiohttp.ClientSession() as http:
                client = StorageProxyClient(f"http://127.0.0.1:{internal_port}", SECRET, http)
                deadline = time.monotonic() + 20
                while not await client.health():
                    assert proc.returncode is None, "proxy exited during startup"
                    assert time.monotonic() < deadline, "proxy did not start"
                    await asyncio.sleep(0.1)
                assert (await client.info()).public_url == "http://files.test"
                assert not trash.exists()
                async with http.options(f"http://127.0.0.1:{public_port}/v1/upload") as resp:
                    assert resp.headers["Tus-Version"] == "1.0.0"
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
            assert proc.returncode == 0, stderr.decode()
            assert b"Traceback" not in stderr
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
