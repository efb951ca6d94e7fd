"""Bind-mount checks: absolute, normalised paths inside the allowed roots, never a socket."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from agent.contract import DEVICE_MANIFEST_PATH, MountMode, MountSpec
from agent.devices.base import HostMount
from agent.errors import BadMount

RESERVED_CONTAINER_PREFIX = os.path.dirname(DEVICE_MANIFEST_PATH)


def validate_mounts(
    mounts: Sequence[MountSpec], *, allowed_roots: Sequence[str]
) -> list[HostMount]:
    """Return runtime mounts or raise BadMount naming the first offending path."""
    result: list[HostMount] = []
    seen: set[str] = set()
    for mount in mounts:
        host = _checked_absolute(mount.host_path, what="host_path")
        target = _checked_absolute(mount.container_path, what="container_path")
        if target == "/" or _within(target, [RESERVED_CONTAINER_PREFIX]):
            raise BadMount(f"container_path {target!r} is reserved")
        if target in seen:
            raise BadMount(f"container_path {target!r} is mounted twice")
        seen.add(target)
        if not _within(host, allowed_roots):
            raise BadMount(f"host_path {host!r} is outside the allowed mount roots")
        real = os.path.realpath(host)
        # A symlink inside an allowed root must not lead outside of it.
        if not _within(real, [os.path.realpath(root) for root in allowed_roots]):
            raise BadMount(f"host_path {host!r} resolves outside the allowed mount roots")
        try:
            mode = os.stat(real).st_mode
        except OSError as exc:
            raise BadMount(f"host_path {host!r} does not exist on this node") from exc
        if stat.S_ISSOCK(mode):
            # Refuses the Docker socket (or any other control socket) wherever it lives.
            raise BadMount(f"host_path {host!r} is a socket; sockets are never mounted")
        result.append(
            HostMount(host_path=real, container_path=target, read_only=mount.mode == MountMode.RO)
        )
    return result


def _checked_absolute(path: str, *, what: str) -> str:
    if not path.startswith("/"):
        raise BadMount(f"{what} {path!r} must be absolute")
    if "\x00" in path or ":" in path:
        raise BadMount(f"{what} {path!r} contains a forbidden character")
    parts = path.split("/")
    if ".." in parts or "." in parts:
        raise BadMount(f"{what} {path!r} must not contain '.' or '..' components")
    return os.path.normpath(path)


def _within(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)
