"""Berth's coordination layer: the event bus (hints), the config store (etcd or a file) and
leader election. Build them from URLs with `cluster.factory`."""

from cluster.bus import BusMessage, EventBus, MessageStream
from cluster.config_store import ConfigStore, Lease, LeaseManager, Watch, WatchEvent
from cluster.errors import (
    BusClosedError,
    ClusterError,
    ConfigStoreError,
    InvalidEventError,
    InvalidNameError,
    InvalidURLError,
    LeaseExpiredError,
    NotAckableError,
)
from cluster.etcd_store import EtcdConfigStore
from cluster.factory import create_config_store, create_event_bus
from cluster.file_store import FileConfigStore
from cluster.leader import LeaderElection, current_leader
from cluster.local_bus import LocalBus
from cluster.redis_bus import RedisStreamBus

__all__ = [
    "BusClosedError",
    "BusMessage",
    "ClusterError",
    "ConfigStore",
    "ConfigStoreError",
    "EtcdConfigStore",
    "EventBus",
    "FileConfigStore",
    "InvalidEventError",
    "InvalidNameError",
    "InvalidURLError",
    "LeaderElection",
    "Lease",
    "LeaseExpiredError",
    "LeaseManager",
    "LocalBus",
    "MessageStream",
    "NotAckableError",
    "RedisStreamBus",
    "Watch",
    "WatchEvent",
    "create_config_store",
    "create_event_bus",
    "current_leader",
]
