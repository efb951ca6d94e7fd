"""Bare-process runtime for hosts without Docker (e.g. lent GPU machines).

Each container is a process group started through a tiny `sh` wrapper that first joins the
container's cgroups (best effort: limits apply only where the agent may write cgroupfs) and
records the command's exit code in a file. State lives in `scratch_root/process/<id>/`:
`manifest.json` (labels, pid, process start time), `output.log`, `exit_code`, so an agent
restart recovers every container from files alone. Not isolated: the process sees the host
filesystem (mounts are checked and announced in BERTH_MOUNTS, not bind-mounted, and `ro` is not
enforced) and every device node; device visibility comes from the reservation's env variables.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import shlex
import shutil
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import labels as L
from agent.config import AgentConfig
from agent.contract import ContainerState, ContainerStats
from agent.errors import BadRequest, ContainerExists, ContainerNotFound, RuntimeFailure
from agent.runtime.base import RuntimeContainer, RuntimeEvent, RuntimeSpec
from agent.runtime.cgroups import ProcessCgroup, create_process_cgroup, read_counters

log = logging.getLogger(__name__)

LIVENESS_POLL_S = 1.0  # how often processes adopted after a restart are checked for exit
LOG_FOLLOW_POLL_S = 0.1
MANIFEST = "manifest.json"
EXIT_FILE = "exit_code"
LOG_FILE = "output.log"


class ProcessRuntime:
    name = "process"

    def __init__(self, config: AgentConfig) -> None:
        self._config = config
        self._root = config.scratch_root / "process"
        self._children: dict[str, asyncio.subprocess.Process] = {}
        self._waiters: set[asyncio.Task[None]] = set()
        self._events: asyncio.Queue[RuntimeEvent] | None = None

    # -- protocol --------------------------------------------------------------------------

    async def create(self, spec: RuntimeSpec) -> RuntimeContainer:
        if not spec.command:
            raise BadRequest("the process runtime needs an explicit command")
        command = list(spec.command)
        directory = self._dir(spec.container_id)
        if directory.exists():
            raise ContainerExists(f"process container {spec.container_id} already exists")
        directory.mkdir(parents=True)
        cgroup = create_process_cgroup(
            name=f"{self._config.node_id}/{spec.container_id}",
            memory_bytes=spec.memory_bytes,
            pids_limit=spec.pids_limit,
            cpu=spec.cpu,
        )
        try:
            process = await self._spawn(spec, command=command, directory=directory, cgroup=cgroup)
        except BaseException:
            cgroup.remove()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        # The wrapper joins its cgroups itself before running the command; joining it from here
        # too means the limits already show when create() returns.
        _join_cgroup(cgroup, process.pid)
        started_at = datetime.now(UTC)
        _write_json(
            directory / MANIFEST,
            {
                "container_id": spec.container_id,
                "labels": spec.labels,
                "pid": process.pid,
                "start_ticks": _start_ticks(process.pid),
                "started_at": started_at.isoformat(),
                "cgroup_dirs": list(cgroup.directories),
            },
        )
        self._children[spec.container_id] = process
        task = asyncio.create_task(self._reap(spec.container_id, process, directory))
        self._waiters.add(task)
        task.add_done_callback(self._waiters.discard)
        return RuntimeContainer(
            container_id=spec.container_id,
            labels=spec.labels,
            state=ContainerState.RUNNING,
            started_at=started_at,
        )

    async def destroy(self, container_id: str) -> bool:
        directory = self._dir(container_id)
        manifest = _read_manifest(directory)
        if manifest is None:
            shutil.rmtree(directory, ignore_errors=True)
            return False
        if _alive(manifest):
            await self._stop(container_id, manifest)
        ProcessCgroup(tuple(manifest.get("cgroup_dirs", [])), ()).remove()
        shutil.rmtree(directory, ignore_errors=True)
        return True

    async def list(self) -> list[RuntimeContainer]:
        if not self._root.is_dir():
            return []
        result = []
        for directory in sorted(self._root.iterdir()):
            manifest = _read_manifest(directory)
            if manifest is None:
                continue
            if manifest.get("labels", {}).get(L.NODE_ID) != self._config.node_id:
                continue
            result.append(self._describe(directory, manifest))
        return result

    async def logs(self, container_id: str, *, follow: bool) -> AsyncIterator[bytes]:
        directory = self._dir(container_id)
        manifest = _read_manifest(directory)
        if manifest is None:
            raise ContainerNotFound(f"container {container_id} does not exist")
        offset = 0
        while True:
            chunk = _read_chunk(directory / LOG_FILE, offset)
            if chunk:
                offset += len(chunk)
                yield chunk
                continue
            if not follow or not _alive(manifest):
                rest = _read_chunk(directory / LOG_FILE, offset)
                if rest:
                    yield rest
                return
            await asyncio.sleep(LOG_FOLLOW_POLL_S)

    async def stats(self, container_id: str) -> ContainerStats:
        manifest = _read_manifest(self._dir(container_id))
        if manifest is None:
            raise ContainerNotFound(f"container {container_id} does not exist")
        counters = read_counters(int(manifest["pid"])) if _alive(manifest) else None
        return ContainerStats(
            container_id=container_id,
            memory_bytes=counters.memory_bytes if counters else None,
            memory_limit_bytes=counters.memory_limit_bytes if counters else None,
            cpu_ns=counters.cpu_ns if counters else None,
            pids=counters.pids if counters else None,
            source=counters.source if counters else "not running",
            at=datetime.now(UTC),
        )

    # -- optional capabilities -------------------------------------------------------------

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        """Exits of our own children arrive at once; adopted processes are polled."""
        self._events = queue = asyncio.Queue[RuntimeEvent]()
        watched: set[str] = set()
        yield RuntimeEvent(kind="resync")
        while True:
            try:
                yield await asyncio.wait_for(queue.get(), timeout=LIVENESS_POLL_S)
            except TimeoutError:
                for container in await self.list():
                    cid = container.container_id
                    if cid in self._children:
                        continue
                    if container.state == ContainerState.RUNNING:
                        watched.add(cid)
                    elif cid in watched:
                        watched.discard(cid)
                        yield RuntimeEvent(kind="exited", container_id=cid)

    async def aclose(self) -> None:
        # Containers outlive the agent; only stop waiting for them.
        for task in list(self._waiters):
            task.cancel()
        self._children.clear()

    # -- helpers ---------------------------------------------------------------------------

    def _dir(self, container_id: str) -> Path:
        return self._root / container_id

    async def _spawn(
        self,
        spec: RuntimeSpec,
        *,
        command: builtins.list[str],
        directory: Path,
        cgroup: ProcessCgroup,
    ) -> asyncio.subprocess.Process:
        exit_file = shlex.quote(str(directory / EXIT_FILE))
        join = "".join(f"echo $$ > {shlex.quote(f)} 2>/dev/null; " for f in cgroup.procs_files)
        record = f"echo $rc > {exit_file}.tmp && mv {exit_file}.tmp {exit_file}"
        script = f'{join}"$@"; rc=$?; {record}; exit $rc'
        mounts = [
            {"host_path": m.host_path, "container_path": m.container_path, "ro": m.read_only}
            for m in spec.mounts
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(directory),
            "LANG": "C.UTF-8",
            "BERTH_MOUNTS": json.dumps(mounts),
            **spec.env,
        }
        kwargs: dict[str, Any] = {}
        if spec.user:
            if os.geteuid() != 0:
                raise BadRequest("the process runtime can only switch users when run as root")
            uid, _, gid = spec.user.partition(":")
            kwargs["user"] = int(uid)
            kwargs["group"] = int(gid or uid)
            kwargs["extra_groups"] = []
        log_file = _open_log(directory / LOG_FILE)
        try:
            return await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                script,
                "berth-process",
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=directory,
                start_new_session=True,
                **kwargs,
            )
        except OSError as exc:
            raise RuntimeFailure(f"cannot start process: {exc}") from exc
        finally:
            log_file.close()

    async def _reap(
        self, container_id: str, process: asyncio.subprocess.Process, directory: Path
    ) -> None:
        code = await process.wait()
        # The wrapper itself was killed (destroy, OOM): keep the shell convention 128+signal.
        _record_exit(directory, 128 - code if code < 0 else code)
        self._children.pop(container_id, None)
        if self._events is not None:
            self._events.put_nowait(RuntimeEvent(kind="exited", container_id=container_id))

    async def _stop(self, container_id: str, manifest: dict[str, Any]) -> None:
        pid = int(manifest["pid"])
        _signal_group(pid, signal.SIGTERM)
        child = self._children.get(container_id)
        deadline = asyncio.get_running_loop().time() + self._config.stop_grace_s
        while _alive(manifest) and asyncio.get_running_loop().time() < deadline:
            if child is not None:
                try:
                    await asyncio.wait_for(child.wait(), timeout=0.05)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0.05)
        if _alive(manifest):
            _signal_group(pid, signal.SIGKILL)
            if child is not None:
                await child.wait()

    def _describe(self, directory: Path, manifest: dict[str, Any]) -> RuntimeContainer:
        started_at = datetime.fromisoformat(manifest["started_at"])
        exit_text = _read(directory / EXIT_FILE)
        alive = _alive(manifest)
        if alive and exit_text is None:
            return RuntimeContainer(
                container_id=manifest["container_id"],
                labels=manifest["labels"],
                state=ContainerState.RUNNING,
                started_at=started_at,
            )
        cgroup = ProcessCgroup(tuple(manifest.get("cgroup_dirs", [])), ())
        finished = _mtime(directory / EXIT_FILE)
        return RuntimeContainer(
            container_id=manifest["container_id"],
            labels=manifest["labels"],
            state=ContainerState.EXITED,
            exit_code=int(exit_text) if exit_text and exit_text.lstrip("-").isdigit() else None,
            oom_killed=cgroup.oom_killed(),
            started_at=started_at,
            finished_at=finished,
        )


def _join_cgroup(cgroup: ProcessCgroup, pid: int) -> None:
    for procs in cgroup.procs_files:
        try:
            Path(procs).write_text(str(pid))
        except OSError:
            log.debug("pid %s already gone or cgroup %s not writable", pid, procs)


def _read_chunk(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(65536)
    except OSError:
        return b""


def _open_log(path: Path) -> Any:
    return path.open("wb")


def _record_exit(directory: Path, code: int) -> None:
    exit_file = directory / EXIT_FILE
    try:
        if directory.exists() and not exit_file.exists():
            exit_file.write_text(str(code))
    except OSError:
        log.debug("%s removed before its exit code was recorded", directory)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _alive(manifest: dict[str, Any]) -> bool:
    """True while the recorded process runs; the start time guards against pid reuse."""
    pid = int(manifest.get("pid", 0))
    if pid <= 0:
        return False
    stat = _read(Path(f"/proc/{pid}/stat"))
    if stat is None:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    state, ticks = fields[0], fields[19]
    return state != "Z" and str(manifest.get("start_ticks")) == ticks


def _start_ticks(pid: int) -> str | None:
    stat = _read(Path(f"/proc/{pid}/stat"))
    return None if stat is None else stat.rsplit(")", 1)[-1].split()[19]


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    text = _read(directory / MANIFEST)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        log.warning("ignoring unreadable manifest in %s", directory)
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None
