"""`berth manager|agent|storage-proxy ...`: run and administer the server processes.

Server modules are imported inside the commands so that `berth ps` and friends start fast and the
SDK does not drag in the server stack."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)

manager_app = typer.Typer(help="Run and administer the manager.", no_args_is_help=True)
agent_app = typer.Typer(help="Run a node agent.", no_args_is_help=True)
storage_app = typer.Typer(help="Run the storage proxy.", no_args_is_help=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="TOML config file; BERTH_* env overrides.")


def _manager_config(config: Path | None):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from manager.config import ManagerConfig

    try:
        return ManagerConfig.load(config)
    except (ValidationError, OSError, ValueError) as exc:
        console.print(f"[red]invalid manager configuration:[/red] {exc}")
        raise typer.Exit(2) from None


@manager_app.command("serve")
def manager_serve(config: Path | None = ConfigOpt) -> None:
    """Serve the API (migrate the database first with `berth manager migrate`)."""
    from manager.app import run_manager

    run_manager(_manager_config(config))


@manager_app.command("migrate")
def manager_migrate(
    config: Path | None = ConfigOpt,
    revision: str = typer.Option("head", help="Target revision ('head', or 'base' to empty)."),
) -> None:
    """Upgrade (or downgrade) the database schema."""
    from manager.db import migrate

    cfg = _manager_config(config)
    url = cfg.db_url.get_secret_value()
    before = asyncio.run(migrate.current(url))
    if revision == "base":
        asyncio.run(migrate.downgrade(url, "base"))
    else:
        asyncio.run(migrate.upgrade(url, revision))
    after = asyncio.run(migrate.current(url))
    console.print(f"database schema: {before or 'empty'} → {after or 'empty'}")


@manager_app.command("check-config")
def manager_check_config(config: Path | None = ConfigOpt) -> None:
    """Validate the configuration and print the effective values (secrets masked)."""
    cfg = _manager_config(config)
    typer.echo(json.dumps(cfg.masked(), indent=2))


@manager_app.command("create-admin")
def manager_create_admin(
    config: Path | None = ConfigOpt,
    username: str = typer.Option("admin", help="Login name of the new superadmin."),
    password: str | None = typer.Option(None, help="Password for web login (optional)."),
    email: str | None = typer.Option(None),
) -> None:
    """Create a superadmin with an API token (printed once)."""
    from manager.auth.crypto import Sealer
    from manager.db.engine import create_db_factory, create_engine
    from manager.errors import DomainError
    from manager.services import bootstrap

    cfg = _manager_config(config)

    async def run() -> str:
        engine = create_engine(cfg.db_url.get_secret_value(), pool_size=1)
        try:
            async with create_db_factory(engine)() as db, db.begin():
                done = await bootstrap.create_admin(
                    db,
                    sealer=Sealer(cfg.secret_key.get_secret_value()),
                    username=username,
                    password=password,
                    email=email,
                    now=datetime.now(UTC),
                )
                return done.token
        finally:
            await engine.dispose()

    try:
        token = asyncio.run(run())
    except DomainError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    typer.echo(token)


@agent_app.command("serve")
def agent_serve(config: Path | None = ConfigOpt) -> None:
    """Run the agent of this node."""
    from pydantic import ValidationError

    from agent.app import run_agent
    from agent.config import AgentConfig

    try:
        cfg = AgentConfig.load(config)  # type: ignore[attr-defined]
    except (ValidationError, OSError, ValueError) as exc:
        console.print(f"[red]invalid agent configuration:[/red] {exc}")
        raise typer.Exit(2) from None
    run_agent(cfg)


@storage_app.command("serve")
def storage_serve(config: Path | None = ConfigOpt) -> None:
    """Run the storage proxy."""
    from pydantic import ValidationError

    from storage_proxy.app import run_storage_proxy
    from storage_proxy.config import StorageProxyConfig

    try:
        cfg = StorageProxyConfig.load(config)  # type: ignore[attr-defined]
    except (ValidationError, OSError, ValueError) as exc:
        console.print(f"[red]invalid storage proxy configuration:[/red] {exc}")
        raise typer.Exit(2) from None
    run_storage_proxy(cfg)
