"""A contact's timeline: their events and what they did with our messages, merged, newest first.

Engagement rows (``engagements``) are shown as named events, the names the commercial peers use, so a
timeline, the outgoing webhook stream (``services.currents``) and ``clarion events export`` all speak
the same words:

=============  =====================================================================================
action         name
=============  =====================================================================================
received       ``Message Sent`` (the channel took the message: the send ledger's "sent")
delivered      ``Message Delivered`` (a provider's receipt)
opened         ``Email Opened`` (email), ``Push Opened`` (push, webpush), ``Message Opened`` (others)
clicked        ``Link Clicked``
converted      ``Converted`` (the goal event credited to this message; ``revenue`` in the workspace currency)
bounced        ``Email Bounced``
complained     ``Spam Reported``
unsubscribed   ``Unsubscribed``
=============  =====================================================================================

Machine rows (mail privacy proxies, link scanners: ``tracking.classify``) are listed, marked
``machine: true`` with the rule that caught them in ``reason``; ``human_only`` leaves them out.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select

from ..domain.errors import FieldError, NotFound
from ..store.engine import Store
from ..store.schema import contacts, events
from ..store.schema_delivery import campaigns, tracked_links
from ..store.schema_scores import engagements

MAX_PAGE = 1000  # items per timeline page
# Offset pagination reads offset + limit rows of each source: beyond this, page with ``until`` instead.
MAX_OFFSET = 10_000
EXPORT_CHUNK = 5_000  # engagements per query of an export: ~5 MB of rows, one short read transaction each

ACTION_NAMES = {"received": "Message Sent", "delivered": "Message Delivered", "clicked": "Link Clicked",
                "converted": "Converted", "bounced": "Email Bounced", "complained": "Spam Reported",
                "unsubscribed": "Unsubscribed"}
OPEN_NAMES = {"email": "Email Opened", "push": "Push Opened", "webpush": "Push Opened"}
OPEN_NAME_OTHERS = "Message Opened"
# The keys of one engagement item, in the order they are documented (docs/webhooks-out.md).
ITEM_KEYS = ("id", "type", "occurred_at", "contact_id", "campaign_id", "campaign", "channel", "delivery_id",
             "machine", "reason", "link", "url", "revenue")


def event_name(action: str, channel: str) -> str:
    """The timeline name of an engagement: ``Email Opened`` for an email's ``opened`` ..."""
    if action == "opened":
        return OPEN_NAMES.get(channel, OPEN_NAME_OTHERS)
    try:
        return ACTION_NAMES[action]
    except KeyError:
        raise ValueError(f"unknown engagement action {action!r}") from None


def engagement_query() -> Select:
    """Engagements with their campaign's name and, for clicks, the tracked link's URL (outer joins: a
    campaign or a link row may be gone, the engagement stays)."""
    e = engagements.c
    link = and_(tracked_links.c.delivery_id == e.delivery_id, tracked_links.c.position == e.link)
    joined = engagements.outerjoin(campaigns, campaigns.c.id == e.campaign_id).outerjoin(tracked_links, link)
    return select(e.id, e.action, e.occurred_at, e.contact_id, e.campaign_id, campaigns.c.name.label("campaign"),
                  e.channel, e.delivery_id, e.machine, e.reason, e.link, tracked_links.c.url, e.revenue
                  ).select_from(joined)


def engagement_item(row: Any) -> dict[str, Any]:
    """One engagement as the webhook stream and the export send it (``ITEM_KEYS``)."""
    return {"id": row.id, "type": event_name(row.action, row.channel), "occurred_at": row.occurred_at,
            "contact_id": row.contact_id, "campaign_id": row.campaign_id, "campaign": row.campaign,
            "channel": row.channel, "delivery_id": row.delivery_id, "machine": bool(row.machine),
            "reason": row.reason, "link": row.link, "url": row.url, "revenue": row.revenue}


def wire_item(row: Any) -> dict[str, Any]:
    """An engagement item with its time as ISO 8601 text: JSON-ready, as sent, exported and dead-lettered."""
    item = engagement_item(row)
    item["occurred_at"] = item["occurred_at"].isoformat()
    return item


def _engagement_entry(row: Any) -> dict[str, Any]:
    item = engagement_item(row)
    properties = {key: item[key] for key in ITEM_KEYS if key not in ("id", "type", "occurred_at", "contact_id")}
    return {"kind": "engagement", "id": row.id, "name": item["type"], "occurred_at": row.occurred_at,
            "machine": item["machine"], "properties": properties}


def _event_entry(row: Any) -> dict[str, Any]:
    return {"kind": "event", "id": row.id, "name": row.name, "occurred_at": row.occurred_at, "machine": False,
            "properties": row.properties, "revenue": row.revenue, "currency": row.currency}


class TimelineService:
    def timeline(self, conn: Connection, contact_id: int, *, limit: int = 50, offset: int = 0,
                 until: datetime | None = None, human_only: bool = False) -> dict[str, Any]:
        """A page of the contact's events and engagements, newest first (``until``: before this time)."""
        if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
            raise NotFound("contact", contact_id)
        limit = min(max(limit, 1), MAX_PAGE)
        if not 0 <= offset <= MAX_OFFSET:
            raise FieldError("offset", f"at most {MAX_OFFSET:,}; page further back with until=<time>")
        event_where = [events.c.contact_id == contact_id]
        engagement_where = [engagements.c.contact_id == contact_id]
        if until is not None:
            event_where.append(events.c.occurred_at < until)
            engagement_where.append(engagements.c.occurred_at < until)
        if human_only:
            engagement_where.append(engagements.c.machine.is_(False))
        wanted = offset + limit
        own_events = conn.execute(
            select(events.c.id, events.c.name, events.c.occurred_at, events.c.properties, events.c.revenue,
                   events.c.currency).where(*event_where)
            .order_by(events.c.occurred_at.desc(), events.c.id.desc()).limit(wanted))
        own_engagements = conn.execute(
            engagement_query().where(*engagement_where)
            .order_by(engagements.c.occurred_at.desc(), engagements.c.id.desc()).limit(wanted))
        merged = _newest_first((_event_entry(r) for r in own_events), (_engagement_entry(r) for r in own_engagements))
        total = (conn.execute(select(func.count()).select_from(events).where(*event_where)).scalar_one()
                 + conn.execute(select(func.count()).select_from(engagements).where(*engagement_where)).scalar_one())
        return {"contact_id": contact_id, "total": total, "limit": limit, "offset": offset,
                "items": merged[offset:offset + limit]}


def _newest_first(*sources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge sources each sorted newest first. Items of the same instant are ordered by kind, then id (both
    descending), so a page boundary falls at the same place on every request."""
    return list(heapq.merge(*sources, key=lambda item: (item["occurred_at"], item["kind"], item["id"]), reverse=True))


def export_items(store: Store, *, since: datetime, until: datetime | None = None, human_only: bool = False,
                 chunk: int = EXPORT_CHUNK) -> Iterator[dict[str, Any]]:
    """Every engagement that occurred in [since, until), as stream items (``ITEM_KEYS``) in id order.

    Read in chunks by id, each in its own short transaction, so neither the whole table nor a long-lived
    snapshot is held: an export of millions of rows runs beside the API and the workers. Rows written
    while it runs appear when their id is past the chunk being read.
    """
    where = [engagements.c.occurred_at >= since]
    if until is not None:
        where.append(engagements.c.occurred_at < until)
    if human_only:
        where.append(engagements.c.machine.is_(False))
    after = 0
    while True:
        with store.read() as conn:
            rows = conn.execute(engagement_query().where(engagements.c.id > after, *where)
                                .order_by(engagements.c.id).limit(chunk)).all()
        yield from (wire_item(row) for row in rows)
        if len(rows) < chunk:
            return
        after = rows[-1].id
