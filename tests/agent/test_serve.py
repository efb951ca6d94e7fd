"""`python -m agent --config FILE` serves the API and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.agent.conftest import AUTH, SECRET, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_agent_process_serves_and_exits_cleanly_on_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'node_id = "serve-{sig.value}"\n'
        'runtime = "process"\n'
        f"listen_port = {port}\n"
        f'cluster_secret = "{SECRET}"\n'
        f'scratch_root = "{tmp_path / "scratch"}"\n'
        'device_plugins = ["fake"]\n'
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz", headers=AUTH) as r:
                        return r.status == 200 and (await r.json())["status"] == "ok"
                except aiohttp.ClientError:
                    return False

            await wait_for(healthy, what="the agent process to answer /healthz")
        process.send_signal(sig)
        code = await asyncio.wait_for(process.wait(), timeout=15)
        assert code == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
