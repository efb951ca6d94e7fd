"""`berth images ...`: build Berth's bundled images on this machine (no registry needed) and list
the images the cluster's nodes hold."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
out = Console()

images_app = typer.Typer(help="Build and list container images.", no_args_is_help=True)

BUNDLED = ("busybox", "python", "jupyterlab", "all")


def build_script() -> Path:
    """scripts/build-images of this checkout (the images' recipes live next to it)."""
    return Path(__file__).resolve().parents[2] / "scripts" / "build-images"


def build_images(names: list[str], *, cache_dir: Path | None = None) -> int:
    """Run scripts/build-images for `names`; the exit status of the script. `berth up` calls
    this too."""
    script = build_script()
    if not script.exists():
        console.print(
            f"[red]{script} is missing:[/red] `berth images build` needs a source checkout of "
            "Berth (the image recipes live in images/)"
        )
        return 2
    env = dict(os.environ)
    if cache_dir is not None:
        env["BERTH_IMAGE_CACHE"] = str(cache_dir)
    return subprocess.run([str(script), *names], env=env, check=False).returncode


@images_app.command("build")
def build(
    name: str = typer.Argument(
        "all", help="Which bundled image: busybox, python, jupyterlab, or all."
    ),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="Where built images are cached as .tar.gz (default ~/.cache/berth/images).",
    ),
) -> None:
    """Build Berth's bundled images locally (berth/busybox:test, berth/python:3.11,
    berth/jupyterlab:4); cached, so a second run only loads them."""
    if name not in BUNDLED:
        console.print(f"[red]unknown image {name!r}[/red]; choose one of: {', '.join(BUNDLED)}")
        raise typer.Exit(2)
    code = build_images([name], cache_dir=cache_dir)
    if code != 0:
        console.print(f"[red]building {name} failed[/red] (exit {code}); see the messages above")
    raise typer.Exit(code)


@images_app.command("ls")
def ls(
    project: str | None = typer.Option(
        None, "--project", help="Only images this project may use."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON."),
) -> None:
    """List the images on the cluster's live nodes, with their apps and allowed projects."""
    import httpx

    from client.config import ClientConfig

    cfg = ClientConfig.load()
    if not cfg.token:
        console.print("[red]not logged in:[/red] run `berth login` or set BERTH_TOKEN")
        raise typer.Exit(2)
    params = {"project_id": project} if project else {}
    try:
        resp = httpx.get(
            f"{cfg.endpoint}/api/v1/images",
            params=params,
            headers={"Authorization": f"Bearer {cfg.token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach the manager at {cfg.endpoint}:[/red] {exc}")
        raise typer.Exit(3) from None
    body: Any = _json(resp)
    if resp.status_code != 200:
        message = body.get("message") if isinstance(body, dict) else resp.text
        console.print(f"[red]error {resp.status_code}:[/red] {message}")
        raise typer.Exit(1)
    if as_json:
        out.print_json(json.dumps(body))
        return
    out.print(render(body["items"]))


def render(items: list[dict[str, Any]]) -> Table:
    table = Table(box=None)
    table.add_column("IMAGE", overflow="fold")  # never cut an image name short
    for title in ("NODES", "APPS", "DEFAULT", "MIN RESOURCES", "PROJECTS"):
        table.add_column(title)
    for item in items:
        apps = ", ".join(
            f"{p['name']}:{p['protocol']}:{p['container_port']}" for p in item["service_ports"]
        )
        if item["label_problems"]:
            apps = (apps + " " if apps else "") + "[yellow](bad labels)[/yellow]"
        allowed = item["allowed_project_ids"]
        table.add_row(
            item["name"],
            str(len(item["nodes"])),
            apps or "-",
            item["default_app"] or "-",
            " ".join(f"{k}={v}" for k, v in item["min_resources"].items()) or "-",
            "all" if allowed is None else (", ".join(str(p)[:8] for p in allowed) or "none"),
        )
    return table


def _json(resp: Any) -> Any:
    try:
        return resp.json()
    except ValueError:
        return {}
