"""`berth images ls` against a real manager app on a loopback port, and `berth images build`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from client.cli.images import images_app
from manager.config import ManagerConfig
from tests.factories import unique
from tests.notebooks.conftest import Rows, Tenant, build_app


def _cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(images_app, name="images")
    return root


async def test_images_ls_lists_what_the_nodes_hold(
    rows: Rows, tenant: Tenant, manager_config: ManagerConfig
) -> None:
    image = f"berth/{unique('cli')}:1"
    await rows.agent(
        images=[
            {
                "name": image,
                "labels": {
                    "ai.berth.service-ports": "jupyter:http:8888",
                    "ai.berth.default-app": "jupyter",
                },
            }
        ]
    )
    server = TestServer(build_app(manager_config), host="127.0.0.1")
    await server.start_server()
    try:
        env = {"BERTH_ENDPOINT": str(server.make_url("")), "BERTH_TOKEN": tenant.owner.token}
        env["COLUMNS"] = "200"
        runner = CliRunner()

        def run(*args: str, **extra: str) -> Any:
            return runner.invoke(_cli(), ["images", *args], env={**env, **extra})

        table = await asyncio.to_thread(run, "ls")
        assert table.exit_code == 0, table.output
        assert image in table.output and "jupyter:http:8888" in table.output

        raw = await asyncio.to_thread(run, "ls", "--json")
        assert raw.exit_code == 0, raw.output
        names = [i["name"] for i in json.loads(raw.output)["items"]]
        assert image in names

        denied = await asyncio.to_thread(run, "ls", BERTH_TOKEN="berth_bogus.token")
        assert denied.exit_code == 1 and "401" in denied.output
    finally:
        await server.close()


def test_images_build_refuses_unknown_names_and_builds_busybox() -> None:
    runner = CliRunner()
    bad = runner.invoke(_cli(), ["images", "build", "nginx"])
    assert bad.exit_code == 2 and "busybox, python, jupyterlab, all" in bad.output
    ok = runner.invoke(_cli(), ["images", "build", "busybox"])
    assert ok.exit_code == 0, ok.output
