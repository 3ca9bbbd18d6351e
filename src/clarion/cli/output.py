"""CLI plumbing: the shared state, JSON or Rich output, and one-line errors instead of tracebacks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click
import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from typer.core import TyperGroup

from ..bootstrap import Clarion
from ..config import Settings
from ..domain.errors import ClarionError

console = Console()
err_console = Console(stderr=True)
JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")
_MISSING_TABLE = ("no such table", "does not exist", "undefinedtable")


@dataclass
class State:
    """What the global options chose; the Clarion instance is built on first use."""

    database_url: str | None = None
    _app: Clarion | None = field(default=None, repr=False)

    @property
    def app(self) -> Clarion:
        if self._app is None:
            settings = Settings(database_url=self.database_url) if self.database_url else Settings()
            self._app = Clarion.from_settings(settings)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


def app_of(ctx: typer.Context) -> Clarion:
    return state(ctx).app


def emit(data: Any, as_json: bool, render: Callable[[], None] | None = None) -> None:
    """JSON on stdout with ``--json``; otherwise the Rich rendering (or the JSON, pretty)."""
    if as_json or render is None:
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                                default=str).decode())
    else:
        render()


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*("" if v is None else str(v) for v in row))
    return result


def key_values(title: str, data: Mapping[str, Any]) -> Table:
    return table(title, ("field", "value"), ((k, _short(v)) for k, v in data.items()))


def _short(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    return value


def message_of(exc: BaseException) -> str | None:
    """The one line to show for an expected error, or None for a real bug."""
    if isinstance(exc, ClarionError):
        return str(exc)
    if isinstance(exc, (OperationalError, ProgrammingError)):
        text = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()[0]
        if any(marker in text.lower() for marker in _MISSING_TABLE):
            return f"the database has no Clarion tables ({text}); run `clarion db upgrade` first"
        return f"database error: {text}"
    if isinstance(exc, OSError):
        return str(exc)
    return None


class ClarionGroup(TyperGroup):
    """Turns expected errors anywhere below into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            message = message_of(exc)
            if message is None:
                raise
            err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
