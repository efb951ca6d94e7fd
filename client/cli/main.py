"""The `berth` command line: one typer app; command groups live in sibling modules.

Berth's own failures exit with the codes in client/cli/exitcodes.py (docs/cli.md), so a usage
error is 64, not click's 2, which a job could return itself."""

from __future__ import annotations

import importlib.util
import sys

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
    from client.cli import admin, admin_cluster, run, sessions, vf

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
    app.add_typer(vf.vf_app, name="vf")
    if importlib.util.find_spec("client.cli.images") is not None:
        from client.cli.images import images_app

        app.add_typer(images_app, name="images")


_register()


def _cli_errors() -> tuple[type[Exception], ...]:
    """Usage-error classes: typer's vendored click, and click itself with older typer."""
    from typer.exceptions import TyperException

    classes: list[type[Exception]] = [TyperException]
    try:
        import click

        classes.append(click.ClickException)
    except ImportError:
        pass
    return tuple(classes)


def main() -> None:
    command = typer.main.get_command(app)
    try:
        result = command.main(prog_name="berth", standalone_mode=False)
    except _cli_errors() as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(0)
        # click's usage errors exit 2, which jobs use too; Berth's is 64.
        code = getattr(exc, "exit_code", 1)
        sys.exit(int(ExitCode.USAGE) if code in (1, 2) else code)
    except typer.Abort:
        sys.stderr.write("berth: aborted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
