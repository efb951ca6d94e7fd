"""Build the event bus and the config store from URLs (the only place that parses them).

| URL | result |
|---|---|
| `redis://[user:pass@]host:port/db[?prefix=p]` (also `rediss://`) | `RedisStreamBus` |
| `local://` | `LocalBus` (in-process) |
| `etcd://host:port[/prefix]` | `EtcdConfigStore`, keys under `/prefix` (default `/berth`) |
| `file:///path/to/store.json[?prefix=p]` | `FileConfigStore` on that file |

Everything is namespaced by a prefix so tests and several clusters can share one Redis or etcd;
an explicit `prefix=` argument wins over the URL's. Nothing connects here: clients connect on
first use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from cluster.bus import EventBus
from cluster.config_store import ConfigStore
from cluster.errors import InvalidURLError
from cluster.etcd_store import DEFAULT_PREFIX as ETCD_DEFAULT_PREFIX
from cluster.etcd_store import EtcdConfigStore
from cluster.file_store import FileConfigStore
from cluster.local_bus import LocalBus
from cluster.redis_bus import RedisStreamBus

DEFAULT_BUS_PREFIX = "berth"
ETCD_DEFAULT_PORT = 2379


def create_event_bus(url: str, *, prefix: str | None = None, **options: Any) -> EventBus:
    """An `EventBus` for `url`. `options` go to the implementation (`visibility_timeout_s`,
    `maxlen`, `subscriber_queue`; `block_s` for Redis)."""
    parts = urlsplit(url)
    if parts.scheme == "local":
        if parts.netloc or parts.path not in ("", "/"):
            raise InvalidURLError(f"local:// takes no host or path: {url!r}")
        return LocalBus(**options)
    if parts.scheme in ("redis", "rediss", "unix"):
        query = parse_qs(parts.query)
        url_prefix = query.pop("prefix", [None])[0]
        rest = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        chosen = prefix or url_prefix or DEFAULT_BUS_PREFIX
        return RedisStreamBus.from_url(rest, prefix=chosen, **options)
    raise InvalidURLError(f"unknown event bus URL scheme {parts.scheme!r} in {url!r}")


def create_config_store(url: str, *, prefix: str | None = None, **options: Any) -> ConfigStore:
    """A `ConfigStore` for `url`. `options` go to the implementation (`poll_interval_s` for
    files, `timeout_s` for etcd)."""
    parts = urlsplit(url)
    if parts.scheme == "etcd":
        if not parts.hostname:
            raise InvalidURLError(f"etcd URL needs a host: {url!r}")
        try:
            port = parts.port or ETCD_DEFAULT_PORT
        except ValueError as exc:
            raise InvalidURLError(f"bad port in {url!r}") from exc
        chosen = prefix or parts.path.rstrip("/") or ETCD_DEFAULT_PREFIX
        return EtcdConfigStore.connect(parts.hostname, port, prefix=chosen, **options)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path or parts.path.endswith("/"):
            raise InvalidURLError(f"file URL must be file:///absolute/path/to/file: {url!r}")
        url_prefix = parse_qs(parts.query).get("prefix", [""])[0]
        return FileConfigStore(parts.path, prefix=prefix or url_prefix, **options)
    raise InvalidURLError(f"unknown config store URL scheme {parts.scheme!r} in {url!r}")
