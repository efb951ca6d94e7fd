"""`python -m agent [--config PATH]` runs the node agent; `berth agent serve` calls `serve`."""

from __future__ import annotations

import argparse

from agent.app import run_agent
from agent.config import AgentConfig


def serve(config_path: str | None = None) -> None:
    run_agent(AgentConfig.load(config_path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agent", description="Berth node agent")
    parser.add_argument("--config", help="TOML file (else $BERTH_AGENT_CONFIG, env, defaults)")
    args = parser.parse_args(argv)
    serve(args.config)


if __name__ == "__main__":
    main()
