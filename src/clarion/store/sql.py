"""Small dialect-aware SQL helpers shared by the services."""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_for(conn: Connection, table: Table):
    """An INSERT that supports ``on_conflict_do_nothing``/``on_conflict_do_update`` on this dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so user text matches literally (use with ``escape='\\\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
