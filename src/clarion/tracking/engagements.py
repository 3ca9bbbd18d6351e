"""Writing engagement rows: what a recipient (or a machine on their behalf) did with one delivery.

Every writer goes through :func:`record`, so each row names its delivery, contact, campaign, step and
channel the same way, whoever saw it: the redirect, the pixel, the app, a provider's receipt, an ESP's
webhook. A delivery whose contact was erased records nothing (the person is gone; the counts in the
ledger stay).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from ..store.schema_delivery import deliveries
from ..store.schema_scores import engagements


@dataclass(frozen=True)
class Touch:
    """The ledger row an engagement answers."""

    delivery_id: int
    contact_id: int | None
    campaign_id: int
    step: str
    channel: str
    sent_at: datetime | None


_TOUCH_COLUMNS = (deliveries.c.id, deliveries.c.contact_id, deliveries.c.campaign_id, deliveries.c.step,
                  deliveries.c.channel, deliveries.c.sent_at)
# Statements built once: a click or an open runs them per request, and building a statement costs more
# than running it (bench/tracking.py).
_TOUCH = select(*_TOUCH_COLUMNS).where(deliveries.c.id == bindparam("delivery_id"))
_INSERT = engagements.insert()
DETAILS = ("machine", "reason", "agent", "ip_prefix", "link", "revenue", "event_id")


def touch_of(conn: Connection, delivery_id: int) -> Touch | None:
    row = conn.execute(_TOUCH, {"delivery_id": delivery_id}).first()
    return Touch(*row) if row is not None else None


def touch_by_message_id(conn: Connection, message_id: str) -> Touch | None:
    """The delivery whose Clarion message id ("<delivery id>.<key>", echoed back by a provider or an ESP)
    this is: looked up by primary key, and the whole id must match, so a guessed id finds nothing."""
    from ..delivery.ledger import by_message_id

    row = by_message_id(conn, message_id)
    return touch_from_row(row) if row is not None else None


def touch_from_row(row: Any) -> Touch:
    """A :class:`Touch` from a ``deliveries`` row already read."""
    return Touch(row.id, row.contact_id, row.campaign_id, row.step, row.channel, row.sent_at)


def row_of(touch: Touch, action: str, at: datetime, details: dict[str, Any]) -> dict[str, Any]:
    """The ``engagements`` row for ``touch``: every column named, so one prebuilt INSERT serves them all."""
    unknown = set(details) - set(DETAILS)
    if unknown:
        raise TypeError(f"unknown engagement details {sorted(unknown)}")
    return {"contact_id": touch.contact_id, "campaign_id": touch.campaign_id, "delivery_id": touch.delivery_id,
            "step": touch.step, "channel": touch.channel, "action": action, "occurred_at": at,
            **{key: details.get(key) for key in DETAILS}, "machine": bool(details.get("machine", False))}


def record(conn: Connection, touch: Touch, action: str, at: datetime, **details: Any) -> bool:
    """One engagement row; ``details``: machine, reason, agent, ip_prefix, link, revenue, event_id.
    False when nothing was recorded (the contact was erased)."""
    if touch.contact_id is None:
        return False
    conn.execute(_INSERT, row_of(touch, action, at, details))
    return True


def record_many(conn: Connection, rows: Iterable[tuple[Touch, str, datetime, dict[str, Any]]]) -> int:
    """Many rows in one executemany, each as :func:`record` writes it; erased contacts' are left out."""
    values = [row_of(touch, action, at, details) for touch, action, at, details in rows
              if touch.contact_id is not None]
    if values:
        conn.execute(_INSERT, values)
    return len(values)


def has_human(conn: Connection, delivery_id: int, action: str) -> bool:
    return conn.execute(select(engagements.c.id).where(
        engagements.c.delivery_id == delivery_id, engagements.c.action == action,
        engagements.c.machine.is_(False)).limit(1)).first() is not None


def has_any(conn: Connection, delivery_id: int, action: str) -> bool:
    return conn.execute(select(engagements.c.id).where(
        engagements.c.delivery_id == delivery_id, engagements.c.action == action).limit(1)).first() is not None


def record_open_once(conn: Connection, touch: Touch, at: datetime, reason: str, agent: str | None = None) -> bool:
    """A human open from a source that says "opened" without a pixel (a click, the app, a read receipt):
    recorded unless the delivery already has a human open, so each such source adds one open at most."""
    if has_human(conn, touch.delivery_id, "opened"):
        return False
    return record(conn, touch, "opened", at, reason=reason, agent=agent)
