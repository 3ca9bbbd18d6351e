"""CLI plumbing: the shared state, JSON or Rich output, and one-line errors instead of tracebacks.

Imported by every command module, so it imports only what ``clarion --help`` needs: the settings, the
store and the services are imported when a command first asks for them (``State.app``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console, ConsoleDimensions, RenderableType
from typer.core import TyperGroup

from ..domain.errors import ClarionError
from . import startup

if TYPE_CHECKING:
    from ..bootstrap import Clarion

# "Unlimited": wider than any line Clarion prints, so a pipe or a file gets every value whole.
PIPE_WIDTH = 1_000_000


class ClarionConsole(Console):
    """The terminal's width on a terminal; on a pipe or a file, lines as long as they are (for grep)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        return size if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = ClarionConsole()
err_console = ClarionConsole(stderr=True)
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
            from ..bootstrap import Clarion
            from ..config import Settings

            settings = Settings(database_url=self.database_url) if self.database_url else Settings()
            self._app = Clarion.from_settings(settings)
            startup.resume_collector()  # the command has loaded what it runs on; it may run for hours
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
        import orjson

        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                                default=str).decode())
    else:
        render()


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> RenderableType:
    """Rows under a title, as wide as the terminal; values are never cut (see cli/tables.py)."""
    from .tables import FitTable

    return FitTable(title, columns, rows)


def key_values(title: str, data: Mapping[str, Any]) -> RenderableType:
    return table(title, ("field", "value"), ((k, _short(v)) for k, v in data.items()))


def _short(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    return value


def message_of(exc: BaseException) -> str | None:
    """The one line to show for an expected error, or None for a real bug."""
    if isinstance(exc, ClarionError):
        return str(exc)
    # Only a command that used the database can have met a database error: no import just to ask.
    database = sys.modules.get("sqlalchemy.exc")
    if database is not None and isinstance(exc, database.NoSuchTableError):  # reflecting a table (bulk loads)
        return _missing_tables(f"no such table: {exc}")
    driver_error = type(exc).__module__.partition(".")[0] in ("sqlite3", "psycopg")  # raw cursors (bulk SQL)
    if driver_error or (database is not None and isinstance(exc, (database.OperationalError,
                                                                   database.ProgrammingError))):
        orig = exc.orig if database is not None and isinstance(exc, database.DBAPIError) else exc
        text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        if any(marker in text.lower() for marker in _MISSING_TABLE):
            return _missing_tables(text)
        return f"database error: {text}"
    if isinstance(exc, OSError):
        return str(exc)
    return None


def _missing_tables(text: str) -> str:
    return f"the database has no Clarion tables ({text}); run `clarion db upgrade` first"


class ClarionGroup(TyperGroup):
    """Turns expected errors anywhere below into one line on stderr and exit status 1.

    Typer's own signals (Exit, Abort, usage errors) are not expected errors: message_of gives None and
    they go on up to Typer.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = message_of(exc)
            if message is None:
                raise
            err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
