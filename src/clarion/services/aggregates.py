"""Per-contact aggregates: applied incrementally on every ingest, and rebuildable from the events.

The two must agree: tests rebuild after ingesting and compare (money within float rounding).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, case, delete, func, literal, select

from ..domain.events import ORDER_COMPLETED
from ..store.schema import contact_aggregates as agg
from ..store.schema import contact_event_stats as stats
from ..store.schema import events
from ..store.sql import insert_for
from ..store.types import greatest, least


@dataclass(frozen=True)
class IngestedEvent:
    contact_id: int
    name: str
    occurred_at: datetime
    revenue: float | None


def _min(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _max(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _contact_deltas(rows: Iterable[IngestedEvent]) -> list[dict]:
    deltas: dict[int, dict] = {}
    for row in rows:
        d = deltas.setdefault(row.contact_id, {
            "contact_id": row.contact_id, "first_seen_at": row.occurred_at, "last_seen_at": row.occurred_at,
            "event_count": 0, "order_count": 0, "revenue_total": 0.0, "first_order_at": None,
            "last_order_at": None, "avg_order_value": None})
        d["first_seen_at"] = _min(d["first_seen_at"], row.occurred_at)
        d["last_seen_at"] = _max(d["last_seen_at"], row.occurred_at)
        d["event_count"] += 1
        if row.name == ORDER_COMPLETED:
            d["order_count"] += 1
            d["revenue_total"] += row.revenue or 0.0
            d["first_order_at"] = _min(d["first_order_at"], row.occurred_at)
            d["last_order_at"] = _max(d["last_order_at"], row.occurred_at)
    for d in deltas.values():
        if d["order_count"]:
            d["avg_order_value"] = d["revenue_total"] / d["order_count"]
    return list(deltas.values())


def _name_deltas(rows: Iterable[IngestedEvent]) -> list[dict]:
    deltas: dict[tuple[int, str], dict] = {}
    for row in rows:
        d = deltas.setdefault((row.contact_id, row.name), {
            "contact_id": row.contact_id, "name": row.name, "count": 0,
            "first_at": row.occurred_at, "last_at": row.occurred_at})
        d["count"] += 1
        d["first_at"] = _min(d["first_at"], row.occurred_at)
        d["last_at"] = _max(d["last_at"], row.occurred_at)
    return list(deltas.values())


def apply_increments(conn: Connection, rows: Sequence[IngestedEvent]) -> None:
    """Fold newly inserted (never replayed) events into the aggregates, in set-based upserts."""
    if not rows:
        return
    contact_rows = sorted(_contact_deltas(rows), key=lambda d: d["contact_id"])
    name_rows = sorted(_name_deltas(rows), key=lambda d: (d["contact_id"], d["name"]))
    stmt = insert_for(conn, agg)
    new = stmt.excluded
    orders = agg.c.order_count + new.order_count
    revenue = agg.c.revenue_total + new.revenue_total
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[agg.c.contact_id],
        set_={
            "first_seen_at": least(agg.c.first_seen_at, new.first_seen_at),
            "last_seen_at": greatest(agg.c.last_seen_at, new.last_seen_at),
            "event_count": agg.c.event_count + new.event_count,
            "order_count": orders,
            "revenue_total": revenue,
            "first_order_at": least(agg.c.first_order_at, new.first_order_at),
            "last_order_at": greatest(agg.c.last_order_at, new.last_order_at),
            "avg_order_value": case((orders > 0, revenue / orders), else_=None),
        }), contact_rows)
    stmt = insert_for(conn, stats)
    new = stmt.excluded
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[stats.c.contact_id, stats.c.name],
        set_={"count": stats.c.count + new.count,
              "first_at": least(stats.c.first_at, new.first_at),
              "last_at": greatest(stats.c.last_at, new.last_at)}), name_rows)


def rebuild(conn: Connection, contact_ids: Sequence[int] | None = None) -> None:
    """Recompute the aggregates from the events, for some contacts or for everyone."""
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
