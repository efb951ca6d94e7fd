"""Device plugins against recorded /dev + sysfs layouts, plus the NVIDIA no-driver path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.devices.amd import AmdDevicePlugin
from agent.devices.base import DevicePlugin
from agent.devices.fake import FakeDevicePlugin
from agent.devices.npu import NpuDevicePlugin
from agent.devices.nvidia import NvidiaDevicePlugin
from agent.devices.tpu import TpuDevicePlugin
from agent.plugins import load_device_plugins

FIXTURES = Path(__file__).parent / "fixtures"


class TestAmd:
    def test_discovers_gpus_from_the_kfd_topology(self) -> None:
        plugin = AmdDevicePlugin(options={"root": FIXTURES / "amd_mi210x2"})
        devices = plugin.discover()
        assert [d.id for d in devices] == ["rocm-48132", "rocm-52015"]
        assert {d.slot_name for d in devices} == {"rocm.device"}
        assert [d.numa_node for d in devices] == [0, 1]
        assert devices[0].model == "Instinct MI210"
        assert devices[0].memory_bytes == 68702699520
        assert plugin.error is None

    def test_reservation_exposes_kfd_and_only_the_chosen_render_node(self) -> None:
        plugin = AmdDevicePlugin(options={"root": FIXTURES / "amd_mi210x2"})
        reservation = plugin.reserve(["rocm-52015"])
        assert reservation.device_nodes == ["/dev/kfd", "/dev/dri/renderD136"]
        assert reservation.env == {"HIP_VISIBLE_DEVICES": "1", "ROCR_VISIBLE_DEVICES": "1"}

    def test_metrics_come_from_sysfs(self) -> None:
        plugin = AmdDevicePlugin(options={"root": FIXTURES / "amd_mi210x2"})
        [metrics] = plugin.metrics(["rocm-48132"])
        assert metrics.utilization_pct == 37.0
        assert metrics.memory_used_bytes == 1073741824

    def test_no_driver_is_an_empty_inventory_with_a_reason(self, tmp_path: Path) -> None:
        plugin = AmdDevicePlugin(options={"root": tmp_path})
        assert plugin.discover() == []
        assert plugin.error is not None and "/dev/kfd" in plugin.error


class TestTpu:
    def test_accel_chips(self) -> None:
        plugin = TpuDevicePlugin(options={"root": FIXTURES / "tpu_v4", "model": "TPU v4"})
        devices = plugin.discover()
        assert [d.id for d in devices] == ["tpu-0", "tpu-1", "tpu-2", "tpu-3"]
        assert [d.numa_node for d in devices] == [0, 0, 1, 1]
        assert devices[0].model == "TPU v4"
        reservation = plugin.reserve(["tpu-1", "tpu-3"])
        assert reservation.device_nodes == ["/dev/accel1", "/dev/accel3"]
        assert reservation.env == {"TPU_VISIBLE_CHIPS": "1,3"}

    def test_vfio_groups_of_google_devices_only(self) -> None:
        plugin = TpuDevicePlugin(options={"root": FIXTURES / "tpu_vfio"})
        devices = plugin.discover()
        assert [d.id for d in devices] == ["tpu-vfio-12", "tpu-vfio-13"]
        assert "0x0063" in devices[0].model
        reservation = plugin.reserve(["tpu-vfio-13"])
        assert reservation.device_nodes == ["/dev/vfio/vfio", "/dev/vfio/13"]


class TestNpu:
    def test_gaudi_preset_ignores_control_nodes(self) -> None:
        plugin = NpuDevicePlugin(name="npu:gaudi", options={"root": FIXTURES / "npu_mixed"})
        devices = plugin.discover()
        assert [d.id for d in devices] == ["gaudi-0", "gaudi-1"]
        assert {d.slot_name for d in devices} == {"npu.gaudi.device"}
        assert [d.numa_node for d in devices] == [0, 1]
        reservation = plugin.reserve(["gaudi-1"])
        assert reservation.env == {"HABANA_VISIBLE_DEVICES": "1"}
        assert reservation.device_nodes == ["/dev/accel/accel1"]

    @pytest.mark.parametrize(
        ("preset", "ids", "env"),
        [
            ("neuron", ["neuron-0", "neuron-1", "neuron-2"], "AWS_NEURON_VISIBLE_DEVICES"),
            ("furiosa", ["furiosa-0"], "FURIOSA_DEVICES"),
            ("rebellions", ["rebellions-0"], "RBLN_DEVICES"),
        ],
    )
    def test_presets(self, preset: str, ids: list[str], env: str) -> None:
        plugin = NpuDevicePlugin(
            name=f"npu:{preset}", options={"preset": preset, "root": FIXTURES / "npu_mixed"}
        )
        assert [d.id for d in plugin.discover()] == ids
        assert list(plugin.reserve(ids[-1:]).env) == [env]

    def test_a_vendor_without_a_preset_is_configured_by_glob(self) -> None:
        plugin = NpuDevicePlugin(
            name="npu:acme",
            options={
                "vendor": "acme",
                "device_glob": "/dev/neuron[0-9]*",
                "visible_env": "ACME_DEVICES",
                "extra_device_nodes": ["/dev/acme_ctl"],
                "root": FIXTURES / "npu_mixed",
            },
        )
        devices = plugin.discover()
        assert devices[1].slot_name == "npu.acme.device"
        assert plugin.reserve(["acme-1"]).device_nodes == ["/dev/acme_ctl", "/dev/neuron1"]

    def test_incomplete_options_are_refused(self) -> None:
        with pytest.raises(ValueError, match="needs a preset"):
            NpuDevicePlugin(options={"vendor": "acme"})


class TestNvidia:
    def test_discovery_never_raises(self) -> None:
        plugin = NvidiaDevicePlugin()
        devices = plugin.discover()
        if devices:
            assert plugin.error is None
            assert all(d.id.startswith(("GPU-", "MIG-")) for d in devices)
        else:
            # The path every GPU-less machine (this one included) takes.
            assert plugin.error is not None
            assert plugin.error.startswith("no NVIDIA devices: ")
            assert plugin.metrics([]) == []

    def test_reserving_an_undiscovered_gpu_is_refused(self) -> None:
        plugin = NvidiaDevicePlugin()
        plugin.discover()
        with pytest.raises(KeyError):
            plugin.reserve(["GPU-00000000-0000-0000-0000-000000000000"])


class TestFake:
    def test_env_follows_the_kind_and_shares_are_offered(self) -> None:
        plugin = FakeDevicePlugin(options={"count": 2, "kind": "rocm", "shares": "1"})
        devices = plugin.discover()
        assert devices[0].share_slot_name == "rocm.shares"
        assert devices[0].share_capacity == Decimal(1)
        env = plugin.reserve(["fake-rocm-1"]).env
        assert env["HIP_VISIBLE_DEVICES"] == "1" and env["ROCR_VISIBLE_DEVICES"] == "1"


class TestSelection:
    def test_several_plugins_by_entry_point_name(self, tmp_path: Path) -> None:
        config = AgentConfig(
            node_id="sel",
            scratch_root=tmp_path,
            device_plugins=["fake", "npu:gaudi", "amd", "nvidia"],
            device_options={
                "fake": {"count": 1},
                "npu:gaudi": {"root": str(FIXTURES / "npu_mixed")},
                "amd": {"root": str(FIXTURES / "amd_mi210x2")},
            },
        )
        plugins: list[DevicePlugin] = load_device_plugins(config)
        assert [type(p).__name__ for p in plugins] == [
            "FakeDevicePlugin",
            "NpuDevicePlugin",
            "AmdDevicePlugin",
            "NvidiaDevicePlugin",
        ]
        ids = [d.id for p in plugins[:3] for d in p.discover()]
        assert ids == ["fake-cuda-0", "gaudi-0", "gaudi-1", "rocm-48132", "rocm-52015"]

    def test_unknown_plugin_names_fail_at_startup(self, tmp_path: Path) -> None:
        config = AgentConfig(node_id="sel", scratch_root=tmp_path, device_plugins=["quantum"])
        with pytest.raises(ValueError, match="unknown device plugin"):
            load_device_plugins(config)
