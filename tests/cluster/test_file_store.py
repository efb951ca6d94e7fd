"""What only the file-backed store promises: cross-process safety and never losing data."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from cluster import ConfigStoreError, FileConfigStore, WatchEvent
from tests.cluster.conftest import within

CHILD = """
import asyncio, sys
from cluster import FileConfigStore
async def main():
    store = FileConfigStore(sys.argv[1])
    won = await store.put(sys.argv[2], sys.argv[3], if_absent=True)
    print("won" if won else "lost")
asyncio.run(main())
"""


async def run_child(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await within(proc.communicate(), timeout_s=60)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


class TestFileConfigStore:
    async def test_processes_racing_to_create_a_key_have_one_winner(self, tmp_path: Path) -> None:
        path = tmp_path / "store.json"
        results = await asyncio.gather(
            *(run_child(str(path), "leader/x", f"p{i}") for i in range(4))
        )
        assert sorted(results) == ["lost", "lost", "lost", "won"]
        winner = results.index("won")
        assert await FileConfigStore(path).get("leader/x") == f"p{winner}"

    async def test_a_watch_sees_a_write_made_by_another_process(self, tmp_path: Path) -> None:
        path = tmp_path / "store.json"
        store = FileConfigStore(path, poll_interval_s=0.05)
        async with store.watch_prefix("config/") as watch:
            assert await run_child(str(path), "config/volume", "posix") == "won"
            event = await within(anext(watch))
        assert event == WatchEvent("put", "config/volume", "posix")

    async def test_a_corrupt_file_is_reported_and_left_untouched(self, tmp_path: Path) -> None:
        path = tmp_path / "store.json"
        path.write_text('{"version": 1, "keys": {"a": ')
        store = FileConfigStore(path)
        with pytest.raises(ConfigStoreError, match="corrupt"):
            await store.put("config/x", "1")
        with pytest.raises(ConfigStoreError):
            await store.get("config/x")
        assert path.read_text() == '{"version": 1, "keys": {"a": '

    async def test_a_file_of_an_unknown_format_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "store.json"
        path.write_text('{"version": 99}')
        with pytest.raises(ConfigStoreError, match="unknown format"):
            await FileConfigStore(path).get("k")

    async def test_writes_replace_the_file_whole_and_leave_no_temporary_files(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "nested" / "store.json"
        store = FileConfigStore(path)
        for n in range(20):
            await store.put(f"k/{n}", str(n))
        data = json.loads(path.read_text())
        assert data["version"] == 1
        assert {k: v["value"] for k, v in data["keys"].items()} == {
            f"k/{n}": str(n) for n in range(20)
        }
        assert sorted(p.name for p in path.parent.iterdir()) == ["store.json", "store.json.lock"]

    async def test_a_lease_expired_while_nobody_wrote_is_already_invisible(
        self, tmp_path: Path
    ) -> None:
        now = [1000.0]
        store = FileConfigStore(tmp_path / "s.json", clock=lambda: now[0])
        lease = await store.leases.grant(5)
        await store.put("agents/n1", "x", lease=lease)
        now[0] += 4.9
        assert await store.get("agents/n1") == "x"
        now[0] += 0.2
        assert await store.get("agents/n1") is None
        assert await store.get_prefix("agents/") == {}
