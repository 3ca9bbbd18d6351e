"""The CLI's tables: prose wraps at spaces, identifiers stay whole, narrow terminals get records."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from clarion.cli.output import PIPE_WIDTH, ClarionConsole, key_values, table
from clarion.cli.tables import column_widths

ADDRESS = "maria.fernanda.gonzalez-villanueva@correo.example.com.ar"
SUBJECT = "Spring offers for you and your family, with free shipping on every order this week"


def _render(renderable, width: int | None) -> list[str]:
    if width is None:  # a pipe: not a terminal, and no width given
        console = ClarionConsole(file=io.StringIO(), color_system=None)
    else:
        console = ClarionConsole(file=io.StringIO(), force_terminal=True, color_system=None, width=width)
    console.print(renderable)
    return console.file.getvalue().splitlines()


def test_a_table_that_fits_wraps_prose_at_spaces_and_keeps_identifiers_whole():
    # given a long subject (prose) beside an address; when shown 100 columns wide
    lines = _render(table("Sends", ("address", "subject"), [(ADDRESS, SUBJECT)]), 100)
    # then it stays a table within the width: the address whole on one line, the subject wrapped at spaces
    assert max(len(line) for line in lines) <= 100
    assert any(ADDRESS in line for line in lines)
    words = " ".join(line.split("│")[2].strip() for line in lines if line.startswith("│"))
    assert words.split() == SUBJECT.split()


def test_when_the_longest_words_do_not_fit_side_by_side_the_rows_become_records():
    # given three unbreakable values wider together than 70 columns
    zone, when = "America/Argentina/Buenos_Aires", datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    lines = _render(table(None, ("address", "zone", "send at"), [(ADDRESS, zone, when)]), 70)
    # then each value is on its own "column  value" line, whole, times in ISO 8601
    assert [line.rstrip() for line in lines if line.strip()] == [
        f"address  {ADDRESS}", f"zone     {zone}", "send at  2026-12-01T12:00:00+00:00"]


def test_a_field_value_table_folds_a_value_longer_than_the_terminal():
    # given a value with no space, longer than the terminal; when shown 40 columns wide
    value = "x" * 100
    lines = _render(key_values("Contact 1", {"token": value}), 40)
    # then it stays a two-column table within the width, and no character is lost
    assert max(len(line) for line in lines) <= 40
    assert "".join(line.split("│")[2].strip() for line in lines if line.startswith("│")) == value


def test_piped_output_is_never_cut_whatever_the_width_would_be():
    # given rows wider than any terminal; when printed to a pipe
    lines = _render(table("Sends", ("address", "subject"), [(ADDRESS, SUBJECT * 3)]), None)
    # then each row is one line, whole
    assert any(ADDRESS in line and SUBJECT * 3 in line for line in lines)
    assert ClarionConsole(file=io.StringIO()).width == PIPE_WIDTH


def test_values_are_shown_as_they_are_not_as_markup():
    # given a value that looks like Rich markup
    lines = _render(table(None, ("name",), [("[bold]vip[/bold]",)]), 80)
    # then it is printed literally
    assert any("[bold]vip[/bold]" in line for line in lines)


def test_column_widths_give_the_spare_width_to_the_columns_that_wrap():
    # given a short identifier column and a long prose column that do not fit in 40 columns
    widths = column_widths(("id", "text"), [("1", "word " * 20)], 40)
    # then the identifier keeps its width and the prose takes the rest of the 40 (7 go to borders and padding)
    assert widths is not None and widths[0] == 2 and sum(widths) <= 40 - 7
