"""Per-contact aggregates rebuilt from the events.

Ingestion keeps them up to date incrementally, in set-based SQL (``import_bulk.insert_events``);
this is the reference: tests ingest random streams in random batches, rebuild, and compare
(money to the cent, since float sums depend on their order).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, case, delete, func, literal, select

from ..domain.events import ORDER_COMPLETED
from ..store.schema import contact_aggregates as agg
from ..store.schema import contact_event_stats as stats
from ..store.schema import events


def rebuild(conn: Connection, contact_ids: Sequence[int] | None = None) -> None:
    """Recompute the aggregates from the events, for some contacts or for everyone.

    On PostgreSQL the aggregate tables are locked first (EXCLUSIVE: reads go on, ingestion waits),
    so an event committed while the rebuild reads is counted once: either the rebuild's snapshot
    has it, or its own upsert runs after the rebuild commits. SQLite's write lock does the same.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE contact_aggregates, contact_event_stats IN EXCLUSIVE MODE")
    for table in (agg, stats):
        where = table.c.contact_id.in_(contact_ids) if contact_ids is not None else literal(True)
        conn.execute(delete(table).where(where))
    where = events.c.contact_id.in_(contact_ids) if contact_ids is not None else literal(True)
    is_order = events.c.name == ORDER_COMPLETED
    order_at = case((is_order, events.c.occurred_at))
    orders = func.sum(case((is_order, 1), else_=0))
    revenue = func.coalesce(func.sum(case((is_order, func.coalesce(events.c.revenue, 0.0)), else_=0.0)), 0.0)
    conn.execute(agg.insert().from_select(
        ["contact_id", "first_seen_at", "last_seen_at", "event_count", "order_count", "revenue_total",
         "first_order_at", "last_order_at", "avg_order_value"],
        select(events.c.contact_id, func.min(events.c.occurred_at), func.max(events.c.occurred_at),
               func.count(), orders, revenue, func.min(order_at), func.max(order_at),
               case((orders > 0, revenue / orders), else_=None))
        .where(where).group_by(events.c.contact_id)))
    conn.execute(stats.insert().from_select(
        ["contact_id", "name", "count", "first_at", "last_at"],
        select(events.c.contact_id, events.c.name, func.count(), func.min(events.c.occurred_at),
               func.max(events.c.occurred_at)).where(where).group_by(events.c.contact_id, events.c.name)))
