"""SQL constructs that render differently on SQLite and PostgreSQL but mean exactly the same.

The segment compiler builds one statement for both stores; what the dialects spell differently lives here,
each construct with a SQLite and a PostgreSQL rendering:

- typed access to one key of a JSON document (``contacts.attributes``, ``events.properties``): the value when
  it has the wanted JSON type, else NULL, so a comparison never casts a value of another type (PostgreSQL
  would fail on ``'abc'::float8``). SQLite reads the key through ``json_each`` and compares its decoded
  ``key`` column: a JSON path (``$."key"``) cannot name keys holding ``"`` and misses keys that the stored
  JSON text writes with ``\\u`` escapes (every non-ASCII key, as Python's json writes them).
- membership in a list bound as ONE JSON array parameter, so a 1,000-value ``in`` list, or hundreds of
  time zones, cost one bound parameter (SQLite allows 32,766 per statement);
- ASCII case folding, identical on both stores (SQLite's built-in ``lower()`` folds only ASCII letters, so
  PostgreSQL folds exactly those too);
- the month and day of a date as ``'MMDD'`` text.

Keys and lists are always bound parameters; the only literals rendered here are constants of this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Boolean, Float, String, Text, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_ASCII_FOLD = str.maketrans(_UPPER, _LOWER)

# JSON types per kind of value, as SQLite's json_each ``type`` column and PostgreSQL's jsonb_typeof name them.
_SQLITE_TYPES = {"number": "'integer', 'real'", "text": "'text'", "boolean": "'true', 'false'"}
_PG_TYPES = {"number": "'number'", "text": "'string'", "boolean": "'boolean'"}
_PG_CASTS = {"number": "FLOAT8", "text": "TEXT", "boolean": "BOOLEAN"}


def fold_text(text: str) -> str:
    """``text`` with ASCII letters lower-cased: the Python side of :class:`fold_case`."""
    return text.translate(_ASCII_FOLD)


def json_bind(values: Iterable[object]) -> ColumnElement:
    """A list as one bound JSON array text."""
    return bindparam(None, json.dumps(list(values), ensure_ascii=False), type_=Text(), unique=True)


def key_bind(key: str) -> ColumnElement:
    return bindparam(None, key, type_=String(), unique=True)


# -- JSON documents ---------------------------------------------------------------------------------
class _JsonValue(FunctionElement):
    """``doc[key]`` when it is a JSON value of this class's ``kind``, else NULL. Arguments: (doc, key)."""

    kind = ""
    inherit_cache = True


class json_number(_JsonValue):  # noqa: N801 - SQL function style
    kind = "number"
    type = Float()
    inherit_cache = True


class json_text(_JsonValue):  # noqa: N801
    kind = "text"
    type = Text()
    inherit_cache = True


class json_boolean(_JsonValue):  # noqa: N801
    kind = "boolean"
    type = Boolean()
    inherit_cache = True


class json_present(FunctionElement):  # noqa: N801
    """TRUE when ``doc`` has ``key`` with a value other than JSON null; never NULL. Arguments: (doc, key)."""

    type = Boolean()
    inherit_cache = True


def _arguments(element, compiler, **kw) -> list[str]:
    return [compiler.process(argument, **kw) for argument in element.clauses]


@compiles(_JsonValue, "sqlite")
def _json_value_sqlite(element, compiler, **kw) -> str:
    doc, key = _arguments(element, compiler, **kw)
    if element.kind == "boolean":
        value = "CASE type WHEN 'true' THEN 1 WHEN 'false' THEN 0 END"
    else:
        value = f"CASE WHEN type IN ({_SQLITE_TYPES[element.kind]}) THEN value END"
    return f"(SELECT {value} FROM json_each({doc}) WHERE key = {key})"


@compiles(_JsonValue, "postgresql")
def _json_value_postgresql(element, compiler, **kw) -> str:
    doc, key = _arguments(element, compiler, **kw)
    key = f"CAST({key} AS TEXT)"
    return (f"(CASE WHEN jsonb_typeof({doc} -> {key}) = {_PG_TYPES[element.kind]} "
            f"THEN CAST({doc} ->> {key} AS {_PG_CASTS[element.kind]}) END)")


@compiles(json_present, "sqlite")
def _json_present_sqlite(element, compiler, **kw) -> str:
    doc, key = _arguments(element, compiler, **kw)
    return f"EXISTS (SELECT 1 FROM json_each({doc}) WHERE key = {key} AND type <> 'null')"


@compiles(json_present, "postgresql")
def _json_present_postgresql(element, compiler, **kw) -> str:
    doc, key = _arguments(element, compiler, **kw)
    return f"coalesce(jsonb_typeof({doc} -> CAST({key} AS TEXT)) <> 'null', false)"


# -- lists bound as one JSON array ----------------------------------------------------------------------
class in_json_list(FunctionElement):  # noqa: N801
    """``expr IN (the values of a JSON array of text)``. Arguments: (expr, json_bind(values))."""

    type = Boolean()
    inherit_cache = True
    numeric = False


class in_json_numbers(in_json_list):  # noqa: N801
    """``expr IN (the values of a JSON array of numbers)``."""

    inherit_cache = True
    numeric = True


@compiles(in_json_list, "sqlite")
def _in_json_list_sqlite(element, compiler, **kw) -> str:
    expr, values = _arguments(element, compiler, **kw)
    return f"({expr} IN (SELECT value FROM json_each({values})))"


@compiles(in_json_list, "postgresql")
def _in_json_list_postgresql(element, compiler, **kw) -> str:
    expr, values = _arguments(element, compiler, **kw)
    item = f"jsonb_array_elements_text(CAST({values} AS JSONB))"
    return f"({expr} IN (SELECT {f'CAST({item} AS FLOAT8)' if element.numeric else item}))"


# -- text and dates -------------------------------------------------------------------------------------
class fold_case(FunctionElement):  # noqa: N801
    """ASCII letters lower-cased, the same on both stores (see the module docstring)."""

    type = Text()
    inherit_cache = True


@compiles(fold_case, "sqlite")
def _fold_case_sqlite(element, compiler, **kw) -> str:
    (text,) = _arguments(element, compiler, **kw)
    return f"lower({text})"


@compiles(fold_case, "postgresql")
def _fold_case_postgresql(element, compiler, **kw) -> str:
    (text,) = _arguments(element, compiler, **kw)
    return f"translate({text}, '{_UPPER}', '{_LOWER}')"


class month_day(FunctionElement):  # noqa: N801
    """The month and day of a DATE column as ``'MMDD'`` text."""

    type = Text()
    inherit_cache = True


@compiles(month_day, "sqlite")
def _month_day_sqlite(element, compiler, **kw) -> str:
    (value,) = _arguments(element, compiler, **kw)
    return f"strftime('%m%d', {value})"


@compiles(month_day, "postgresql")
def _month_day_postgresql(element, compiler, **kw) -> str:
    (value,) = _arguments(element, compiler, **kw)
    return f"to_char({value}, 'MMDD')"
