"""Write the manager's OpenAPI document to web_ui/openapi.json so the typed API client can be
generated at build time without a running manager (create_app connects to nothing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from manager.api.system import OPENAPI_KEY
from manager.app import create_app
from manager.config import ManagerConfig


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("openapi.json")
    app = create_app(ManagerConfig())
    text = json.dumps(app[OPENAPI_KEY], indent=1, sort_keys=True) + "\n"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


if __name__ == "__main__":
    main()
