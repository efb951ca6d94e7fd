"""FUSE mounts of S3 folders on a node, so containers get a plain directory to bind-mount.

Decision (see docs/storage.md): nodes mount each S3 folder with `weed mount` against the
SeaweedFS filer that serves the bucket; the agent then bind-mounts the mountpoint like any posix
folder. Staging data through the proxy was rejected: it copies whole folders before a session can
start and loses writes made after the copy.

Non-root containers: files written through S3 belong to uid/gid 0 on the filer; `uid`/`gid` map
that owner to the container user (`-map.uid=<uid>:0`) so the user can read and write, and `umask`
shapes the modes of new files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from storage_proxy.contract import FuseMountSpec

MOUNT_TIMEOUT_S = 20.0
_POLL_S = 0.05


class FuseError(Exception):
    """A mount or unmount failed; the message carries the mount tool's output."""


@dataclass(frozen=True)
class FuseMount:
    mountpoint: Path
    pid: int
    log_path: Path


def is_mounted(path: Path) -> bool:
    """True when `path` is a mountpoint listed in /proc/self/mountinfo."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 4 and _unescape(fields[4]) == target:
                return True
    return False


async def mount_folder(
    spec: FuseMountSpec,
    mountpoint: Path,
    *,
    uid: int | None = None,
    gid: int | None = None,
    umask: str = "022",
    weed_binary: str = "weed",
    cache_dir: Path | None = None,
    timeout_s: float = MOUNT_TIMEOUT_S,
) -> FuseMount:
    """Mount `spec.filer_path` at `mountpoint` (created if missing) and wait until it is live.

    Idempotent for an existing mount of the same path: returns without mounting twice. The mount
    process runs in its own session so it outlives the caller; `unmount` ends it.
    """
    if len(umask) > 4 or any(c not in "01234567" for c in umask):
        raise ValueError(f"umask must be octal, got {umask!r}")
    cache = cache_dir or mountpoint.parent / f".{mountpoint.name}.cache"
    if await asyncio.to_thread(_prepare, mountpoint, cache):
        return FuseMount(mountpoint=mountpoint, pid=0, log_path=Path(os.devnull))
    args = [
        weed_binary,
        "mount",
        f"-filer={spec.filer}",
        f"-filer.path={spec.filer_path}",
        f"-dir={mountpoint}",
        f"-cacheDir={cache}",
        f"-umask={umask}",
    ]
    if uid is not None:
        args.append(f"-map.uid={uid}:0")
    if gid is not None:
        args.append(f"-map.gid={gid}:0")
    log_path = cache / "mount.log"
    log_fd = await asyncio.to_thread(
        os.open, log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
    )
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=log_fd,
            stderr=log_fd,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        os.close(log_fd)
    deadline = time.monotonic() + timeout_s
    while not is_mounted(mountpoint):
        if proc.returncode is not None or time.monotonic() > deadline:
            _kill(proc.pid)
            raise FuseError(f"weed mount of {spec.filer_path} failed: {_tail(log_path)}")
        try:
            await asyncio.wait_for(proc.wait(), timeout=_POLL_S)
        except TimeoutError:
            pass
    return FuseMount(mountpoint=mountpoint, pid=proc.pid, log_path=log_path)


async def unmount(mount: FuseMount | Path, *, timeout_s: float = 10.0) -> None:
    """Unmount and end the mount process; idempotent. Falls back to a lazy unmount when busy."""
    path = mount.mountpoint if isinstance(mount, FuseMount) else mount
    pid = mount.pid if isinstance(mount, FuseMount) else 0
    if is_mounted(path):
        tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
        proc = await asyncio.create_subprocess_exec(
            tool, "-u", str(path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0 and is_mounted(path):
            lazy = await asyncio.create_subprocess_exec(tool, "-u", "-z", str(path))
            await lazy.wait()
            if is_mounted(path):
                raise FuseError(f"cannot unmount {path}: {err.decode(errors='replace')}")
    if pid:
        await asyncio.to_thread(_reap, pid, timeout_s)


def unmount_sync(mount: FuseMount, *, timeout_s: float = 10.0) -> None:
    """Blocking `unmount` for callers without an event loop (shutdown hooks, test teardown)."""
    if is_mounted(mount.mountpoint):
        tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
        done = subprocess.run(
            [tool, "-u", str(mount.mountpoint)], capture_output=True, check=False
        )
        if done.returncode != 0 and is_mounted(mount.mountpoint):
            subprocess.run([tool, "-u", "-z", str(mount.mountpoint)], check=False)
    if mount.pid:
        _reap(mount.pid, timeout_s)


def _prepare(mountpoint: Path, cache: Path) -> bool:
    """Create the directories; True when `mountpoint` is already mounted."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    return is_mounted(mountpoint)


def _reap(pid: int, timeout_s: float) -> None:
    """Give the mount process time to exit after the unmount, then make sure it is gone."""
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    _kill(pid)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")).replace(
        "\\134", "\\"
    )
