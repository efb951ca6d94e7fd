"""The proxy's entry in the config store: `storage-proxies/<name>` under its own lease.

With `config_store_url` set, `serve()` publishes

    storage-proxies/<name> = {"name", "url", "public_url", "volumes"}

once both APIs listen (`url` is the internal API, the one managers call), refreshes the lease
while the proxy runs and revokes it on a clean shutdown, so managers stop using the proxy at
once; after a crash the key expires with the lease (`registration_ttl_s`). A store outage never
stops the proxy: the key comes back with a new lease when the store answers again
(`cluster.registry.LeasedKey`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from cluster.factory import create_config_store
from cluster.registry import STORAGE_PROXIES_PREFIX, LeasedKey
from storage_proxy.config import StorageProxyConfig

log = logging.getLogger(__name__)

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def registration_value(
    config: StorageProxyConfig, *, internal_url: str, public_url: str, volumes: list[str]
) -> str:
    return json.dumps(
        {"name": config.name, "url": internal_url, "public_url": public_url, "volumes": volumes},
        sort_keys=True,
    )


@contextlib.asynccontextmanager
async def registered(
    config: StorageProxyConfig, *, internal_url: str, public_url: str
) -> AsyncIterator[LeasedKey | None]:
    """Keep the proxy's key in the store for the duration of the block (None: no store)."""
    if not config.config_store_url:
        yield None
        return
    if config.advertised_internal_url is None and config.internal_host in WILDCARD_HOSTS:
        log.warning(
            "publishing %s for the internal API bound to a wildcard address; set "
            "advertised_internal_url to an address managers can reach",
            internal_url,
        )
    store = create_config_store(config.config_store_url)
    key = LeasedKey(
        store,
        STORAGE_PROXIES_PREFIX + config.name,
        registration_value(
            config,
            internal_url=internal_url,
            public_url=public_url,
            volumes=[v.name for v in config.volumes],
        ),
        ttl_s=config.registration_ttl_s,
    )
    task = asyncio.create_task(key.run(), name="storage-proxy-registration")
    try:
        yield key
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await key.revoke()
        await store.close()
