"""Every ``clarion`` command, fed bad arguments, answers with a usage error or one line, never a traceback.

The commands are found by walking the command tree, so a command added later is covered without a new
test. For each one: no arguments at all; then each parameter in turn given values a person could type by
mistake (a word where a number goes, a date in another format, an empty string, a huge value, a file that
does not exist), the other required parameters filled with plausible but unknown values. Each runs on a
migrated database with nothing in it, and once on a database without Clarion's tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from clarion.cli.main import app as cli

runner = CliRunner()
BLOCKING = {("serve",)}  # runs until stopped: only its argument errors and an unready database are tried
ALWAYS = {("worker",): ["--until-idle"]}  # so that a run with acceptable arguments ends

WORDS = ["", "nope", "10am", "12/09/2026", "-1", "9" * 40, "x" * 5000, "'; DROP TABLE contacts; --", "{{ 7*7 }}",
         "é☃", "country = ", "2026-02-30"]
NUMBER_WORDS = ["nope", "1.5", "-1", "9" * 40]


def leaf_commands() -> list[tuple[tuple[str, ...], object]]:
    def walk(group, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], object]]:
        for name, command in sorted(group.commands.items()):
            if hasattr(command, "commands"):  # a group
                yield from walk(command, (*path, name))
            else:
                yield (*path, name), command

    return list(walk(typer.main.get_command(cli), ()))


COMMANDS = leaf_commands()


def _kind(param) -> str:
    """number, path or text, from the annotation Typer read (it vendors click, so click's types do not apply)."""
    annotation = param.type_descriptor.annotation
    if annotation in (int, float):
        return "number"
    return "path" if annotation is Path else "text"


def _plausible(param, tmp_path) -> str:
    """A value that parses but names nothing that exists."""
    return {"number": "424242", "path": str(tmp_path / "missing" / "nothing.json"), "text": "nope"}[_kind(param)]


def _bad_values(param, tmp_path) -> list[str]:
    return {"number": NUMBER_WORDS, "path": [str(tmp_path / "missing.csv"), str(tmp_path), ""],
            "text": WORDS}[_kind(param)]


def _as_args(param, value: str) -> list[str]:
    if param.param_type_name == "argument":
        return [value]
    return [param.opts[0], value]


def _fillers(command, tmp_path, skip) -> list[str]:
    args: list[str] = []
    for param in command.params:
        if param is skip or not param.required or getattr(param, "is_flag", False):
            continue
        args += _as_args(param, _plausible(param, tmp_path))
    return args


def _invocations(path: tuple[str, ...], command, tmp_path) -> Iterator[list[str]]:
    extra = ALWAYS.get(path, [])
    if path not in BLOCKING:
        yield [*path, *extra]
    typed = [p for p in command.params if p.name not in ("help", "as_json") and not getattr(p, "is_flag", False)]
    for param in typed:
        if path in BLOCKING and _kind(param) != "number":
            continue
        for value in NUMBER_WORDS[:1] if path in BLOCKING else _bad_values(param, tmp_path):
            yield [*path, *_fillers(command, tmp_path, param), *_as_args(param, value), *extra]


def _check(result, args: list[str]) -> None:
    shown = f"clarion {' '.join(a[:40] for a in args)} -> exit {result.exit_code}\n{result.output[-2000:]}"
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{shown}\n{type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in result.output, shown
    if result.exit_code not in (0, 2):  # 2: click's usage errors, which print usage and an Error: line
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) >= 1 and lines[-1].startswith("error: "), shown


@pytest.mark.slow
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_bad_arguments_never_print_a_traceback(path, command, tmp_path, monkeypatch, sqlite_template):
    # given a migrated, empty database (files the commands write go to a scratch directory)
    import shutil

    monkeypatch.chdir(tmp_path)
    database = tmp_path / "clarion.db"
    shutil.copyfile(sqlite_template, database)
    url = f"sqlite:///{database}"
    # when the command runs with each bad argument, then none prints a traceback
    for args in _invocations(path, command, tmp_path):
        _check(runner.invoke(cli, ["--database-url", url, *args]), args)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_a_database_without_tables_is_one_line(path, command, tmp_path, monkeypatch):
    # given a database without Clarion's tables
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    # when the command runs with plausible arguments
    args = [*path, *_fillers(command, tmp_path, None), *ALWAYS.get(path, [])]
    result = runner.invoke(cli, ["--database-url", url, *args])
    # then it says what to do in one line (or works without the database, or is a usage error)
    _check(result, args)
    if result.exit_code == 1 and "Clarion tables" in result.stderr:
        assert "clarion db upgrade" in result.stderr
