"""Event ingestion: idempotent by message id, with the aggregates updated in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ..domain.events import EventInput
from ..store.schema import events
from ..store.sql import insert_for
from .aggregates import IngestedEvent, apply_increments

MAX_PAGE = 1000  # events per listing page


@dataclass(frozen=True)
class IngestResult:
    inserted: int
    duplicates: int


class EventService:
    def ingest(self, conn: Connection, items: Sequence[EventInput]) -> IngestResult:
        """Store events whose message id is new; replays are ignored and counted as duplicates."""
        if not items:
            return IngestResult(0, 0)
        rows, seen = [], set()
        for item in items:
            if item.contact_id is None:
                raise ValueError("EventInput.contact_id must be resolved before ingest")
            if item.message_id in seen:
                continue  # the same message twice in one batch
            seen.add(item.message_id)
            purchase = item.purchase()
            rows.append({
                "contact_id": item.contact_id, "name": item.name, "message_id": item.message_id,
                "occurred_at": item.occurred_at, "received_at": item.received_at,
                "properties": item.properties, "order_id": purchase.order_id,
                "revenue": purchase.revenue, "currency": purchase.currency})
        stmt = (insert_for(conn, events).on_conflict_do_nothing(index_elements=[events.c.message_id])
                .returning(events.c.contact_id, events.c.name, events.c.occurred_at, events.c.revenue))
        inserted = [IngestedEvent(*r) for r in conn.execute(stmt, rows)] if len(rows) > 1 else \
            [IngestedEvent(*r) for r in conn.execute(stmt.values(rows[0]))]
        apply_increments(conn, inserted)
        return IngestResult(len(inserted), len(items) - len(inserted))

    def list(self, conn: Connection, *, contact_id: int | None = None, name: str | None = None,
             since: datetime | None = None, until: datetime | None = None,
             limit: int = 100, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """(total, page) of events, newest first."""
        where = []
        if contact_id is not None:
            where.append(events.c.contact_id == contact_id)
        if name:
            where.append(events.c.name == name)
        if since:
            where.append(events.c.occurred_at >= since)
        if until:
            where.append(events.c.occurred_at < until)
        total = conn.execute(select(func.count()).select_from(events).where(*where)).scalar_one()
        rows = conn.execute(select(events).where(*where)
                            .order_by(events.c.occurred_at.desc(), events.c.id.desc())
                            .limit(min(max(limit, 1), MAX_PAGE)).offset(max(offset, 0))).all()
        return total, [dict(r._mapping) for r in rows]
