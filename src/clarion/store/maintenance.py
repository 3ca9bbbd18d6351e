"""Planner statistics after bulk writes (PostgreSQL).

After a bulk load the planner still believes the tables are as small as before, and the visibility
map is empty, so PostgreSQL neither picks good plans nor answers from index-only scans until
autovacuum comes by (it waits for a share of the table to change, then for its naptime). A segment
count over 10 million freshly loaded events ran on estimates of 50 rows and visited the heap for every
event. ``VACUUM (ANALYZE)`` right after the load fixes both; it cannot run inside a transaction, so it
gets its own autocommit connection. SQLite keeps its plans without statistics; nothing to do there.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine

from .schema import metadata


def refresh_statistics(engine: Engine, tables: Iterable[str], *, vacuum: bool = False) -> None:
    """PostgreSQL: ANALYZE (and, with ``vacuum``, VACUUM to set the visibility map) the named tables."""
    if engine.dialect.name != "postgresql":
        return
    names = [name for name in tables if name in metadata.tables]  # only our own tables: names are not bound
    command = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in names:
            conn.exec_driver_sql(f"{command} {name}")
