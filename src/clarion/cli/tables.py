"""Tables that never cut a value: they wrap prose, keep identifiers whole, and turn into records when narrow.

An address, a time zone or an ISO time is something a reader copies or greps, so a cell is only ever
broken at a space. When the terminal is too narrow for every column's longest word side by side, the
rows are shown as records instead (one ``column  value`` line each, like ``psql``'s expanded display).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, time
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.table import Table
from rich.text import Text

PADDING = 1  # cells of padding on each side of a table cell (Rich's default)


class FitTable:
    """A renderable table laid out for the width it is printed at (see the module's docstring)."""

    def __init__(self, title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
        self.title = title
        self.columns = tuple(columns)
        self.rows = [tuple(cell_text(value) for value in row) for row in rows]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        widths = column_widths(self.columns, self.rows, options.max_width)
        if widths is None:
            yield from self._records()
        else:
            yield self._table(widths)

    def _table(self, widths: Sequence[int]) -> Table:
        result = Table(title=Text(self.title) if self.title else None, title_justify="left")
        for name, width in zip(self.columns, widths, strict=True):
            result.add_column(Text(name), width=width, overflow="fold", no_wrap=False)
        for row in self.rows:
            result.add_row(*(Text(value) for value in row))
        return result

    def _records(self) -> Iterator[RenderableType]:
        if self.title:
            yield Text(self.title, style="table.title")
        for row in self.rows:
            record = Table.grid(padding=(0, 2))
            record.add_column(style="table.header", no_wrap=True)
            record.add_column(overflow="fold")
            for name, value in zip(self.columns, row, strict=True):
                record.add_row(Text(name), Text(value))
            yield Text("")
            yield record


def cell_text(value: Any) -> str:
    """A cell's text; times in ISO 8601, which has no space to wrap at (and is what --json gives)."""
    if value is None:
        return ""
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def column_widths(columns: Sequence[str], rows: Sequence[Sequence[str]], available: int) -> list[int] | None:
    """Each column's content width: its longest line when all fit, else at least its longest word.

    None when even the longest words do not fit side by side (show records instead); a two-column
    table (field, value) then folds its value column, since records would look the same.
    """
    cells = list(zip(columns, *rows, strict=True)) if rows else [(name,) for name in columns]
    longest = [max(_line_width(value) for value in column) for column in cells]
    shortest = [max(_word_width(value) for value in column) for column in cells]
    room = available - _chrome(len(columns))
    if sum(longest) <= room:
        return longest
    if sum(shortest) > room:
        if len(columns) != 2:
            return None
        label = min(shortest[0], max(room // 2, 1))
        return [label, max(room - label, 1)]
    spare = room - sum(shortest)
    wants = [long - short for long, short in zip(longest, shortest, strict=True)]
    # The width left once every word fits goes to the columns that wrap, in proportion to their want.
    return [short + spare * want // sum(wants) for short, want in zip(shortest, wants, strict=True)]


def _chrome(count: int) -> int:
    """Cells a boxed table spends on borders (one between and one outside each column) and padding."""
    return count + 1 + 2 * PADDING * count


def _line_width(value: str) -> int:
    return max((cell_len(line) for line in value.splitlines()), default=0)


def _word_width(value: str) -> int:
    return max((cell_len(word) for word in value.split()), default=0)
