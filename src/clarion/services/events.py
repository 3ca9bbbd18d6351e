"""Event ingestion: idempotent by message id, with the aggregates updated in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ..domain.events import EventInput, properties_json
from ..store.schema import events
from .imports.bulk import insert_events
from .imports.staging import Staged, stamp_text

MAX_PAGE = 1000  # events per listing page


@dataclass(frozen=True)
class IngestResult:
    inserted: int
    duplicates: int


class EventService:
    def ingest(self, conn: Connection, items: Sequence[EventInput]) -> IngestResult:
        """Store events whose message id is new; replays are ignored and counted as duplicates.

        The same set-based path as the importers (``import_bulk.insert_events``): the events are
        staged, the new ones inserted and folded into the aggregates in a few statements.
        """
        unique: dict[str, EventInput] = {}
        for item in items:
            if item.contact_id is None:
                raise ValueError("EventInput.contact_id must be resolved before ingest")
            unique.setdefault(item.message_id, item)  # the same message twice in one batch
        by_arrival: dict[datetime, list[EventInput]] = {}
        for item in unique.values():
            by_arrival.setdefault(item.received_at, []).append(item)
        inserted = 0
        for received_at, group in by_arrival.items():
            staged = [_staged(item) for item in group]
            inserted += insert_events(conn, [item.contact_id for item in group], staged, received_at)
        return IngestResult(inserted, len(items) - inserted)

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


def _staged(item: EventInput) -> Staged:
    """The importers' staged-event tuple (see ``import_staging``) for one event."""
    purchase = item.purchase()
    return (0, "", None, item.name, item.message_id, stamp_text(item.occurred_at),
            properties_json(item.properties).decode(), purchase.order_id, purchase.revenue, purchase.currency)
