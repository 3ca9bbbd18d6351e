"""Read-only figures for the CLI and the demo: counts, revenue, top customers, time zones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from ..domain.events import ORDER_COMPLETED
from ..store.schema import contact_aggregates, contacts, events


def totals(conn: Connection) -> dict[str, Any]:
    """Contacts, events, orders and revenue (summed over ``Order Completed`` events)."""
    contact_count = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
    event_count = conn.execute(select(func.count()).select_from(events)).scalar_one()
    orders, revenue = conn.execute(
        select(func.count(), func.coalesce(func.sum(events.c.revenue), 0.0))
        .where(events.c.name == ORDER_COMPLETED)).one()
    return {"contacts": contact_count, "events": event_count, "orders": orders, "revenue": round(float(revenue), 2)}


def top_customers(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    """The contacts with the highest revenue (from the aggregates)."""
    rows = conn.execute(
        select(contacts.c.id, contacts.c.external_id, contacts.c.email, contacts.c.first_name,
               contacts.c.last_name, contacts.c.country, contact_aggregates.c.order_count,
               contact_aggregates.c.revenue_total)
        .join(contact_aggregates, contact_aggregates.c.contact_id == contacts.c.id)
        .order_by(contact_aggregates.c.revenue_total.desc(), contacts.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


def contacts_per_timezone(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(contacts.c.timezone, func.count().label("contacts"))
        .group_by(contacts.c.timezone).order_by(func.count().desc(), contacts.c.timezone).limit(limit))
    return [{"timezone": r.timezone, "contacts": r.contacts} for r in rows]
