"""Pick device plugins and the runtime by entry-point name (berth.devices, berth.runtimes)."""

from __future__ import annotations

from importlib.metadata import entry_points

from agent.config import AgentConfig
from agent.devices.base import DevicePlugin
from agent.runtime.base import ContainerRuntime

DEVICE_GROUP = "berth.devices"
RUNTIME_GROUP = "berth.runtimes"


def load_device_plugins(config: AgentConfig) -> list[DevicePlugin]:
    """One instance per entry of `device_plugins`; `npu:gaudi` is the `npu` plugin named so."""
    available = {ep.name: ep for ep in entry_points(group=DEVICE_GROUP)}
    plugins: list[DevicePlugin] = []
    for entry in config.device_plugins:
        kind = entry.split(":", 1)[0]
        if kind not in available:
            raise ValueError(f"unknown device plugin {kind!r}; installed: {sorted(available)}")
        factory = available[kind].load()
        plugins.append(factory(name=entry, options=config.device_options.get(entry, {})))
    return plugins


def load_runtime(config: AgentConfig) -> ContainerRuntime:
    available = {ep.name: ep for ep in entry_points(group=RUNTIME_GROUP)}
    if config.runtime not in available:
        raise ValueError(f"unknown runtime {config.runtime!r}; installed: {sorted(available)}")
    runtime: ContainerRuntime = available[config.runtime].load()(config)
    return runtime
