"""`python -m storage_proxy [config.toml]`: run the storage proxy (the CLI wraps the same call)."""

from __future__ import annotations

import logging
import sys

from storage_proxy.app import run_storage_proxy
from storage_proxy.config import StorageProxyConfig


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    run_storage_proxy(StorageProxyConfig.load(sys.argv[1] if len(sys.argv) > 1 else None))


if __name__ == "__main__":
    main()
