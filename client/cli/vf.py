"""`berth vf ...`: virtual folders. Bytes go straight to the storage proxy with a token the
manager mints; uploads resume where an interrupted run stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from client.cli.admin import _collect, project_id
from client.cli.common import Output, OutputOpt, call, emit, err, kv_table, make_table, out
from client.sdk.client import AsyncBerth

vf_app = typer.Typer(
    help="Virtual folders: create, share, upload, download.", no_args_is_help=True
)
FolderArg = typer.Argument(..., help="Folder name or id.", show_default=False)


@vf_app.command("ls")
def vf_ls(
    usage: bool = typer.Option(False, "--usage", help="Ask for each folder's usage (slower)."),
    output: Output = OutputOpt,
) -> None:
    """List the folders you own, your projects own, or are shared with you."""
    folders = call(lambda api: _collect(api.vfolders.list(with_usage=usage)))

    def table() -> Any:
        t = make_table("ID", "NAME", "OWNER", "ACCESS", "STATUS", "USED")
        for f in folders:
            used = "-" if f.used_bytes is None else _size(f.used_bytes)
            t.add_row(
                str(f.id)[:8], f.name, f.owner.kind, f.permission.value, f.status.value, used
            )
        return t

    emit(folders, output, table)


@vf_app.command("create")
def vf_create(
    name: str = typer.Argument(..., show_default=False),
    project: str | None = typer.Option(None, "--project", "-p", help="Owned by a project."),
    volume: str | None = typer.Option(None, "--volume", help="Storage volume."),
    quota: int | None = typer.Option(None, "--quota-bytes", min=0, help="Size limit."),
    output: Output = OutputOpt,
) -> None:
    """Create a folder (yours, or a project's with --project)."""

    async def create(api: AsyncBerth) -> Any:
        fields: dict[str, Any] = {"name": name}
        if project:
            fields["project_id"] = await project_id(api, project)
        if volume:
            fields["volume"] = volume
        if quota is not None:
            fields["quota_bytes"] = quota
        return await api.vfolders.create(**fields)

    folder = call(create)
    emit(folder, output, lambda: kv_table(folder.model_dump().items()))


@vf_app.command("get")
def vf_get(folder: str = FolderArg, output: Output = OutputOpt) -> None:
    """Show a folder with its usage."""
    found = call(lambda api: api.vfolders.get(folder))
    emit(found, output, lambda: kv_table(found.model_dump().items()))


@vf_app.command("rm")
def vf_rm(
    folder: str = FolderArg,
    force: bool = typer.Option(False, "--force", help="Even while sessions mount it."),
) -> None:
    """Delete a folder and its files."""
    call(lambda api: api.vfolders.delete(folder, force=force))
    err.print(f"deleted {folder}")


@vf_app.command("share")
def vf_share(
    folder: str = FolderArg,
    user: str | None = typer.Option(None, "--user", "-u", help="Username."),
    project: str | None = typer.Option(None, "--project", "-p", help="Project id or name."),
    mode: str = typer.Option("ro", "--mode", help="ro or rw."),
    output: Output = OutputOpt,
) -> None:
    """Share a folder with a user or a project."""

    async def share(api: AsyncBerth) -> Any:
        pid = await project_id(api, project) if project else None
        return await api.vfolders.share(folder, username=user, project_id=pid, mode=mode)

    shared = call(share)
    emit(shared, output, lambda: kv_table(shared.model_dump().items()))


@vf_app.command("files")
def vf_files(
    folder: str = FolderArg,
    path: str = typer.Argument("", help="Directory inside the folder."),
    output: Output = OutputOpt,
) -> None:
    """List the files in a folder (or a directory of it)."""
    entries = call(lambda api: api.vfolders.files(folder, path))

    def table() -> Any:
        t = make_table("PATH", "KIND", "SIZE", "MODIFIED")
        for e in entries:
            when = e.modified_at.strftime("%Y-%m-%d %H:%M") if e.modified_at else "-"
            t.add_row(e.path, e.kind.value, _size(e.size), when)
        return t

    emit(entries, output, table)


@vf_app.command("upload")
def vf_upload(
    folder: str = FolderArg,
    local: Path = typer.Argument(..., exists=True, dir_okay=False, help="Local file."),
    remote: str | None = typer.Argument(None, help="Path in the folder (default: file name)."),
) -> None:
    """Upload a file; rerun the same command to resume an interrupted upload.

    Example: berth vf upload data ./train.csv datasets/train.csv
    """
    target = remote or local.name
    stored = call(lambda api: api.vfolders.upload(folder, local, target))
    err.print(f"uploaded {local} to {folder}:{target} ({_size(stored)})")


@vf_app.command("download")
def vf_download(
    folder: str = FolderArg,
    remote: str = typer.Argument(..., help="Path in the folder."),
    local: Path | None = typer.Argument(None, help="Local file (default: its name here)."),
) -> None:
    """Download a file; rerun to continue an interrupted download."""
    target = local or Path(Path(remote).name)
    written = call(lambda api: api.vfolders.download(folder, remote, target))
    out.print(f"{target}", markup=False, highlight=False)
    err.print(f"downloaded {folder}:{remote} ({_size(written)})")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{n}B"
