"""Workspace-wide JSON documents (``workspace_settings``): read one by key, replace one by key.

The delivery defaults, the currency, the lead scoring rules, the events webhook's cursor and the attribution
mark each keep one document here; their services own what the document means.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from .schema_scores import workspace_settings
from .sql import insert_for


def read_document(conn: Connection, key: str, *, lock: bool = False) -> Any | None:
    """The document stored under ``key`` (None: never set); ``lock``: FOR UPDATE on PostgreSQL."""
    query = select(workspace_settings.c.document).where(workspace_settings.c.key == key)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return None if row is None else row.document


def write_document(conn: Connection, key: str, document: Any, now: datetime) -> None:
    """Store ``document`` under ``key``, replacing what was there."""
    statement = insert_for(conn, workspace_settings).values(key=key, document=document, updated_at=now)
    conn.execute(statement.on_conflict_do_update(index_elements=["key"], set_={
        "document": statement.excluded.document, "updated_at": statement.excluded.updated_at}))
