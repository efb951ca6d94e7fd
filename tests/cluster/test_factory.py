"""URL → implementation, and the prefixes that keep clusters apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster import (
    EtcdConfigStore,
    FileConfigStore,
    InvalidURLError,
    LocalBus,
    RedisStreamBus,
    create_config_store,
    create_event_bus,
)
from tests.cluster.conftest import etcd_address, redis_url, unique, within


class TestCreateEventBus:
    async def test_local_url_gives_an_in_process_bus(self) -> None:
        bus = create_event_bus("local://", visibility_timeout_s=3)
        assert isinstance(bus, LocalBus)
        assert bus.visibility_timeout_s == 3
        await bus.close()

    async def test_redis_url_gives_a_working_stream_bus_with_the_url_prefix(self) -> None:
        prefix = unique("berthtest")
        bus = create_event_bus(f"{redis_url()}?prefix={prefix}")
        assert isinstance(bus, RedisStreamBus)
        assert bus.prefix == prefix
        try:
            async with bus.subscribe("ping") as sub:
                await bus.publish("ping", {"ok": True})
                assert (await within(anext(sub))).event == {"ok": True}
        finally:
            await bus.close()

    async def test_an_explicit_prefix_wins_over_the_url(self) -> None:
        bus = create_event_bus(f"{redis_url()}?prefix=fromurl", prefix="explicit")
        assert isinstance(bus, RedisStreamBus)
        assert bus.prefix == "explicit"
        await bus.close()

    @pytest.mark.parametrize("url", ["kafka://h:1", "local://host", "nonsense", ""])
    def test_unknown_or_malformed_urls_are_rejected(self, url: str) -> None:
        with pytest.raises(InvalidURLError):
            create_event_bus(url)


class TestCreateConfigStore:
    async def test_etcd_url_path_is_the_key_prefix(self) -> None:
        host, port = etcd_address()
        prefix = unique("berthtest")
        store = create_config_store(f"etcd://{host}:{port}/{prefix}")
        assert isinstance(store, EtcdConfigStore)
        assert store.prefix == f"/{prefix}"
        try:
            await store.put("config/x", "1")
            assert await store.get("config/x") == "1"
            await store.delete("config/x")
        finally:
            await store.close()

    def test_etcd_url_without_path_uses_the_default_prefix(self) -> None:
        store = create_config_store("etcd://127.0.0.1:2379")
        assert isinstance(store, EtcdConfigStore)
        assert store.prefix == "/berth"

    async def test_file_url_names_the_json_file(self, tmp_path: Path) -> None:
        path = tmp_path / "data" / "config-store.json"
        store = create_config_store(f"file://{path}?prefix=c1")
        assert isinstance(store, FileConfigStore)
        await store.put("config/x", "1")
        assert path.exists()
        assert await FileConfigStore(path, prefix="c1").get("config/x") == "1"
        assert await FileConfigStore(path, prefix="c2").get("config/x") is None

    @pytest.mark.parametrize(
        "url", ["etcd://", "etcd://host:notaport", "file://host/x.json", "file:///dir/", "zk://h"]
    )
    def test_unknown_or_malformed_urls_are_rejected(self, url: str) -> None:
        with pytest.raises(InvalidURLError):
            create_config_store(url)
