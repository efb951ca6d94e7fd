"""The `berth` command line: one typer app; command groups live in sibling modules.

Berth's own failures exit with the codes in client/cli/exitcodes.py (docs/cli.md), so a usage
error is 64, not click's 2, which a job could return itself."""

from __future__ import annotations

import importlib.util
import sys

import click
import typer

from client.cli import services, up
from client.cli.exitcodes import ExitCode

app = typer.Typer(
    name="berth",
    help=(
        "Berth: GPU/NPU cluster orchestration. Start everything on this machine with "
        "`berth up`; run a job with `berth run -- COMMAND`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(services.manager_app, name="manager")
app.add_typer(services.agent_app, name="agent")
app.add_typer(services.storage_app, name="storage-proxy")
app.command("up")(up.up)


def _register() -> None:
    """Client commands. Imported here, not at the top, so server subcommands do not pay for the
    SDK and the SDK does not import the server subcommands."""
    from client.cli import admin, admin_cluster, run, sessions

    app.command("login")(sessions.login)
    app.command("whoami")(sessions.whoami)
    app.command("run", context_settings={"allow_interspersed_args": False}, no_args_is_help=True)(
        run.run
    )
    app.command("ps")(sessions.ps)
    app.command("get")(sessions.get)
    app.command("logs")(sessions.logs)
    app.command("events")(sessions.events)
    app.command("why")(sessions.why)
    app.command("rm")(sessions.rm)
    assert admin_cluster.admin_app is admin.admin_app  # admin_cluster adds its groups to it
    app.add_typer(admin.admin_app, name="admin")
    if importlib.util.find_spec("client.cli.images") is not None:
        from client.cli.images import images_app

        app.add_typer(images_app, name="images")


_register()


def main() -> None:
    command = typer.main.get_command(app)
    try:
        result = command.main(prog_name="berth", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(0)
    except click.UsageError as exc:
        exc.show()
        sys.exit(int(ExitCode.USAGE))
    except click.Abort:
        sys.stderr.write("berth: aborted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.USAGE))
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
