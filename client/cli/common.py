"""What every client command shares: loading the config, calling the SDK with errors mapped to
the exit-code contract, output in table/json/yaml, and parsing durations and resources."""

from __future__ import annotations

import asyncio
import enum
import json
import re
import sys
import tomllib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from client.cli.exitcodes import ExitCode, for_http_status
from client.config import ClientConfig
from client.sdk.client import AsyncBerth
from client.sdk.errors import BerthAPIError, BerthConfigError, BerthConnectionError

T = TypeVar("T")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class Output(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOpt = typer.Option(
    Output.TABLE, "--output", "-o", help="table (default), json or yaml.", case_sensitive=False
)


def fail(code: ExitCode, message: str) -> NoReturn:
    """One line on stderr, then exit with a documented code."""
    err.print(f"[red]berth:[/red] {message}", soft_wrap=True, markup=True)
    raise typer.Exit(int(code))


def load_config() -> ClientConfig:
    try:
        return ClientConfig.load()
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        fail(ExitCode.CONFIG, f"cannot read the berth config file: {exc}")


def call(
    action: Callable[[AsyncBerth], Awaitable[T]],
    *,
    config: ClientConfig | None = None,
    need_token: bool = True,
) -> T:
    """Run one async action against the manager; SDK errors become exit codes."""
    config = config or load_config()

    async def main() -> T:
        async with AsyncBerth.from_config(config, require_token=need_token) as api:
            return await action(api)

    try:
        return asyncio.run(main())
    except BerthConfigError as exc:
        fail(ExitCode.CONFIG, str(exc))
    except BerthAPIError as exc:
        fail_api(exc)
    except BerthConnectionError as exc:
        fail(ExitCode.UNAVAILABLE, str(exc))
    except ValidationError as exc:
        fail(ExitCode.REJECTED, "invalid request: " + describe_validation(exc))


def fail_api(exc: BerthAPIError) -> NoReturn:
    suffix = f" (request id {exc.request_id})" if exc.status >= 500 and exc.request_id else ""
    fail(for_http_status(exc.status), f"{exc.code}: {exc.message}{suffix}")


def describe_validation(exc: ValidationError) -> str:
    parts = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item["loc"]) or "request"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


# Output ---------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """JSON-ready data from models, lists of models, decimals and datetimes."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def emit(data: Any, fmt: Output, table: Callable[[], Table | str]) -> None:
    """Print data as JSON or YAML (machine-readable, on stdout, no colour), or the table."""
    if fmt is Output.JSON:
        sys.stdout.write(json.dumps(plain(data), indent=2) + "\n")
    elif fmt is Output.YAML:
        import yaml

        sys.stdout.write(yaml.safe_dump(plain(data), sort_keys=False, allow_unicode=True))
    else:
        out.print(table())


def make_table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def kv_table(rows: Iterable[tuple[str, Any]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, fmt_value(value))
    return table


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return " ".join(f"{k}={fmt_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v) for v in value) or "-"
    if isinstance(value, Decimal):
        return fmt_amount(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def fmt_amount(value: Decimal | float | int) -> str:
    number = Decimal(str(value))
    if number == number.to_integral_value():
        return str(int(number))
    return f"{number.normalize():f}"


def age(when: datetime | None, now: datetime | None = None) -> str:
    """`3m`, `2h`, `5d`: how long ago, for narrow tables."""
    if when is None:
        return "-"
    now = now or datetime.now(when.tzinfo)
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# Parsing --------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds from `90`, `90s`, `10m`, `1h30m`, `2d`; ValueError otherwise."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if not text or not re.fullmatch(r"(\d+(?:\.\d+)?[smhdw])+", text):
        raise ValueError(f"{text!r} is not a duration (examples: 90s, 10m, 1h30m, 2d)")
    return round(sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text)))


def duration_or_usage(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        fail(ExitCode.USAGE, f"{option}: {exc}")


def parse_pairs(items: Sequence[str], option: str, form: str = "KEY=VALUE") -> dict[str, str]:
    """`KEY=VALUE` options into a dict; a malformed one is a usage error."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(ExitCode.USAGE, f"{option} expects {form}, got {item!r}")
        result[key.strip()] = value.strip()
    return result


def parse_amounts(items: Sequence[str], option: str) -> dict[str, str | int | float]:
    """`SLOT=AMOUNT` pairs; numbers stay numbers, `mem=4g` stays a string for the manager."""
    amounts: dict[str, str | int | float] = {}
    for slot, value in parse_pairs(items, option, "SLOT=AMOUNT").items():
        if not value:
            fail(ExitCode.USAGE, f"{option} {slot}= needs an amount")
        amounts[slot] = _number(value)
    return amounts


def _number(value: str) -> str | int | float:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value
