"""The Berth Python SDK: `AsyncBerth` (async, typed) and `Berth` (blocking facade).

from client.sdk import Berth
with Berth.from_config() as berth:
    job = berth.sessions.create({"image": "python:3.11", "command": ["python", "-V"]})
    print(berth.sessions.wait(job.id).exit_code)
"""

from client.sdk.client import AsyncBerth
from client.sdk.errors import BerthAPIError, BerthConfigError, BerthConnectionError, BerthError
from client.sdk.http import RetryPolicy
from client.sdk.sessions import StatusEvent
from client.sdk.sync import Berth

__all__ = [
    "AsyncBerth",
    "Berth",
    "BerthAPIError",
    "BerthConfigError",
    "BerthConnectionError",
    "BerthError",
    "RetryPolicy",
    "StatusEvent",
]
