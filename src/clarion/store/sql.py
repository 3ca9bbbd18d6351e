"""Small dialect-aware SQL helpers shared by the services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

ANALYTICS_WORK_MEM = "256MB"  # per sort or hash node of one analytic query (a 10M-event window fits)


def insert_for(conn: Connection, table: Table):
    """An INSERT that supports ``on_conflict_do_nothing``/``on_conflict_do_update`` on this dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so user text matches literally (use with ``escape='\\\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def tune_for_analytics(conn: Connection) -> None:
    """PostgreSQL, for this transaction: room for sorts and hashes, and no JIT.

    Segment counts, refreshes and score recomputes group and rank millions of rows; at the default
    ``work_mem`` (4 MB) those sorts spill to disk, and PostgreSQL's JIT (on by default since 11) spends
    hundreds of milliseconds compiling each such query, more than it saves here. SQLite needs neither.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{ANALYTICS_WORK_MEM}'")
        conn.exec_driver_sql("SET LOCAL jit = off")


@contextmanager
def scratch_tables(conn: Connection, *tables: Table) -> Iterator[None]:
    """Temporary tables for one transaction's set-based work: created fresh, dropped when the work succeeds.

    Not dropped after an error: the transaction rolls back and takes them along (DDL is transactional
    on both stores), while a statement in a failed PostgreSQL transaction would hide the real error.
    """
    for table in tables:
        table.drop(conn, checkfirst=True)
        table.create(conn)
    yield
    for table in tables:
        table.drop(conn)
