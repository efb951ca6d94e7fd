"""The `berth` command line: one typer app; command groups live in sibling modules."""

from __future__ import annotations

import typer

from client.cli import services, up

app = typer.Typer(
    name="berth",
    help="Berth: GPU/NPU cluster orchestration. Start everything on this machine with `berth up`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(services.manager_app, name="manager")
app.add_typer(services.agent_app, name="agent")
app.add_typer(services.storage_app, name="storage-proxy")
app.command("up")(up.up)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
