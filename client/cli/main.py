"""The `berth` command line: one typer app; service subcommands live in sibling modules."""

import typer

app = typer.Typer(
    name="berth",
    help="Berth: GPU/NPU cluster orchestration. Start with `berth up`.",
    no_args_is_help=True,
)


def main() -> None:
    app()
