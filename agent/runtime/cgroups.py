"""cgroup v1/v2 helpers: read a process's counters and (best effort) confine bare processes.

Reading goes through /proc/<pid>/cgroup, so it finds the right directory whatever the cgroup
driver (cgroupfs `docker/<id>`, systemd `docker-<id>.scope`) or hierarchy version.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000  # the kernel default period; quota is expressed against it


@dataclass(frozen=True)
class CgroupCounters:
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    cpu_ns: int | None = None
    pids: int | None = None
    source: str = "none"


def read_counters(pid: int) -> CgroupCounters:
    """Counters of the cgroup(s) `pid` lives in; all None if the process is gone."""
    paths = _membership(pid)
    if not paths:
        return CgroupCounters(source="none")
    if "" in paths and len(paths) == 1:
        return _read_v2(CGROUP_ROOT / paths[""].lstrip("/"))
    memory = _v1_dir("memory", paths)
    cpuacct = _v1_dir("cpuacct", paths)
    pids = _v1_dir("pids", paths)
    return CgroupCounters(
        memory_bytes=_int(memory / "memory.usage_in_bytes") if memory else None,
        memory_limit_bytes=_limit(memory / "memory.limit_in_bytes") if memory else None,
        cpu_ns=_int(cpuacct / "cpuacct.usage") if cpuacct else None,
        pids=_int(pids / "pids.current") if pids else None,
        source="cgroup-v1",
    )


def is_v2() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


@dataclass(frozen=True)
class ProcessCgroup:
    """Where a bare process was confined; `procs_files` get the wrapper's pid."""

    directories: tuple[str, ...]
    procs_files: tuple[str, ...]

    def oom_killed(self) -> bool:
        for directory in self.directories:
            path = Path(directory)
            for name in ("memory.oom_control", "memory.events"):
                for line in (_text(path / name) or "").splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                        return True
        return False

    def remove(self) -> None:
        for directory in self.directories:
            try:
                os.rmdir(directory)
            except OSError:
                log.debug("cgroup %s not removed (still busy or gone)", directory)


def create_process_cgroup(
    *, name: str, memory_bytes: int | None, pids_limit: int | None, cpu: Decimal | None
) -> ProcessCgroup:
    """Create cgroups for a bare process. Best effort: a controller we may not write is skipped."""
    made: list[str] = []
    procs: list[str] = []
    if is_v2():
        directory = CGROUP_ROOT / "berth" / name
        settings: dict[str, object] = {
            "memory.max": memory_bytes,
            "pids.max": pids_limit,
            "cpu.max": None if cpu is None else f"{int(cpu * CFS_PERIOD_US)} {CFS_PERIOD_US}",
        }
        if _make(directory, settings, parent_controllers=("memory", "pids", "cpu")):
            made.append(str(directory))
            procs.append(str(directory / "cgroup.procs"))
        return ProcessCgroup(tuple(made), tuple(procs))
    quota = None if cpu is None else int(cpu * CFS_PERIOD_US)
    per_controller: dict[str, Mapping[str, object]] = {
        "memory": {"memory.limit_in_bytes": memory_bytes},
        "pids": {"pids.max": pids_limit},
        "cpu": {"cpu.cfs_period_us": CFS_PERIOD_US if quota else None, "cpu.cfs_quota_us": quota},
        "cpuacct": {},
    }
    for controller, values in per_controller.items():
        base = CGROUP_ROOT / controller
        if not base.is_dir():
            continue
        directory = base / "berth" / name
        if _make(directory, values, parent_controllers=()):
            made.append(str(directory))
            procs.append(str(directory / "cgroup.procs"))
    return ProcessCgroup(tuple(made), tuple(procs))


def _make(
    directory: Path, settings: Mapping[str, object], *, parent_controllers: tuple[str, ...]
) -> bool:
    try:
        if parent_controllers:
            _enable_controllers(directory.parent, parent_controllers)
        directory.mkdir(parents=True, exist_ok=True)
        for key, value in settings.items():
            if value is not None:
                (directory / key).write_text(str(value))
    except OSError as exc:
        log.warning("cgroup %s unavailable, limits not enforced: %s", directory, exc)
        return False
    return True


def _enable_controllers(parent: Path, controllers: tuple[str, ...]) -> None:
    # In v2 a controller is usable in a child only once every ancestor delegates it.
    current = CGROUP_ROOT
    for part in ("", *parent.relative_to(CGROUP_ROOT).parts):
        if part:
            current = current / part
            current.mkdir(exist_ok=True)
        for controller in controllers:
            try:
                (current / "cgroup.subtree_control").write_text(f"+{controller}")
            except OSError:
                log.debug("cannot enable %s in %s", controller, current)


def _membership(pid: int) -> dict[str, str]:
    """controller name (or '' for the v2 unified hierarchy) → cgroup path."""
    text = _text(Path(f"/proc/{pid}/cgroup"))
    if text is None:
        return {}
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            result[""] = path
            continue
        for controller in controllers.split(","):
            result[controller] = path
    return result


def _v1_dir(controller: str, paths: dict[str, str]) -> Path | None:
    path = paths.get(controller)
    if path is None:
        return None
    for mount in _v1_mounts(controller):
        candidate = mount / path.lstrip("/")
        if candidate.is_dir():
            return candidate
    return None


def _v1_mounts(controller: str) -> list[Path]:
    names = [controller]
    if controller in ("cpu", "cpuacct"):
        names += ["cpu,cpuacct", "cpuacct,cpu"]
    return [CGROUP_ROOT / name for name in names]


def _read_v2(directory: Path) -> CgroupCounters:
    usage_us = None
    for line in (_text(directory / "cpu.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            usage_us = int(value)
    return CgroupCounters(
        memory_bytes=_int(directory / "memory.current"),
        memory_limit_bytes=_limit(directory / "memory.max"),
        cpu_ns=None if usage_us is None else usage_us * 1000,
        pids=_int(directory / "pids.current"),
        source="cgroup-v2",
    )


def _text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _text(path)
    try:
        return None if text is None else int(text.strip())
    except ValueError:
        return None


def _limit(path: Path) -> int | None:
    value = _int(path)
    # v1 reports "no limit" as a huge page-aligned number, v2 as "max" (parsed as None).
    return None if value is None or value >= 2**62 else value
