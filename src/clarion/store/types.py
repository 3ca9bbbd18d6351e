"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), never a BIGINT one.
Id = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL so later segment queries can index into documents; JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out.

    PostgreSQL stores ``timestamptz``. SQLite has no time zone type, so values are stored as naive
    UTC text, which also keeps their lexical order equal to their time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Clarion stores only aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class greatest(GenericFunction):  # noqa: N801 - SQL function name
    """The larger of two values, ignoring NULL (PostgreSQL's GREATEST; SQLite's scalar MAX)."""

    inherit_cache = True


class least(GenericFunction):  # noqa: N801 - SQL function name
    """The smaller of two values, ignoring NULL (PostgreSQL's LEAST; SQLite's scalar MIN)."""

    inherit_cache = True


@compiles(greatest, "sqlite")
def _greatest_sqlite(element, compiler, **kw) -> str:
    a, b = (compiler.process(arg, **kw) for arg in element.clauses)
    # SQLite's scalar max() returns NULL if any argument is NULL; PostgreSQL's GREATEST ignores it.
    return f"max(coalesce({a}, {b}), coalesce({b}, {a}))"


@compiles(least, "sqlite")
def _least_sqlite(element, compiler, **kw) -> str:
    a, b = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"min(coalesce({a}, {b}), coalesce({b}, {a}))"


class utc_day(GenericFunction):  # noqa: N801 - SQL function name
    """The UTC calendar day of a ``UtcDateTime`` as 'YYYY-MM-DD' text, on both stores."""

    type = String()
    inherit_cache = True


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element, compiler, **kw) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"substr({value}, 1, 10)"  # stored as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element, compiler, **kw) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"to_char({value} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


class days_since(GenericFunction):  # noqa: N801 - SQL function name
    """Days (fractional) from a ``UtcDateTime`` column to a later moment: ``days_since(column, moment)``."""

    type = Float()
    inherit_cache = True


@compiles(days_since, "sqlite")
def _days_since_sqlite(element, compiler, **kw) -> str:
    column, moment = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(julianday({moment}) - julianday({column}))"  # both naive UTC text


@compiles(days_since, "postgresql")
def _days_since_postgresql(element, compiler, **kw) -> str:
    column, moment = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(extract(epoch FROM ({moment} - {column})) / 86400.0)"
