"""The in-app inbox (the pull side): messages an ``inapp`` campaign delivered, fetched by the customer's app.

A message is stored by the checkpoint, in the same transaction that marks its delivery sent, so a crash
can neither lose it nor store it twice (``delivery_id`` is unique). The app lists a contact's messages,
newest first, pages with ``before`` (an id), and marks them read; expired messages are not listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from ..channels.base import OutboundInApp
from ..domain.errors import FieldError, NotFound
from ..store.schema import contacts
from ..store.schema_delivery import inbox_messages
from ..store.sql import insert_for
from ..tracking.engagements import record_open_once, touch_of

MAX_PAGE = 200  # messages per request
_FIELDS = ("id", "campaign_id", "title", "body", "url", "image", "data", "created_at", "read_at", "expires_at")


def deliver(conn: Connection, sent: Sequence[tuple[int, OutboundInApp]], *, campaign_id: int, now: datetime,
            keep_for: timedelta | None = None) -> None:
    """Stores a batch's messages, given with their delivery ids, in one statement; storing the same delivery
    again changes nothing."""
    if not sent:
        return
    expires_at = now + keep_for if keep_for else None
    rows = [{"contact_id": message.contact_id, "campaign_id": campaign_id, "delivery_id": delivery_id,
             "title": message.title, "body": message.body, "url": message.url, "image": message.image,
             "data": message.data or None, "created_at": now, "expires_at": expires_at}
            for delivery_id, message in sent]
    conn.execute(insert_for(conn, inbox_messages).on_conflict_do_nothing(index_elements=["delivery_id"]), rows)


def messages(conn: Connection, contact_id: int, now: datetime, *, unread_only: bool = False,
             before: int | None = None, limit: int = 50) -> dict[str, Any]:
    """A page of the contact's live messages, newest first, with the unread count of the whole inbox."""
    _contact(conn, contact_id)
    if not 1 <= limit <= MAX_PAGE:
        raise FieldError("limit", f"between 1 and {MAX_PAGE}")
    m = inbox_messages.c
    live = [m.contact_id == contact_id, or_(m.expires_at.is_(None), m.expires_at > now)]
    query = select(*(m[name] for name in _FIELDS)).where(*live)
    if unread_only:
        query = query.where(m.read_at.is_(None))
    if before is not None:
        query = query.where(m.id < before)
    rows = [dict(r._mapping) for r in conn.execute(query.order_by(m.id.desc()).limit(limit + 1))]
    unread = conn.execute(select(func.count()).select_from(inbox_messages).where(*live, m.read_at.is_(None)))
    return {"messages": rows[:limit], "unread": unread.scalar_one(),
            "next_before": rows[limit - 1]["id"] if len(rows) > limit else None}


def mark_read(conn: Connection, contact_id: int, ids: list[int] | None, now: datetime) -> int:
    """Marks the given messages (all of them when ``ids`` is None) read; returns how many changed.

    An id that is not one of the contact's messages is :class:`NotFound`, and nothing is marked: the app
    learns its list is stale, and another contact's ids are not told apart from ids that do not exist."""
    _contact(conn, contact_id)
    m = inbox_messages.c
    unread = [m.contact_id == contact_id, m.read_at.is_(None)]
    if ids is not None:
        if len(ids) > MAX_PAGE:
            raise FieldError("ids", f"at most {MAX_PAGE} ids at a time")
        wanted = set(ids)
        mine = set(conn.execute(select(m.id).where(m.contact_id == contact_id, m.id.in_(wanted))).scalars())
        if wanted - mine:
            raise NotFound("inbox message", min(wanted - mine))
        unread.append(m.id.in_(wanted))
    read = [d for d in conn.execute(select(m.delivery_id).where(*unread)).scalars() if d is not None]
    changed = conn.execute(update(inbox_messages).where(*unread).values(read_at=now)).rowcount
    for delivery_id in read:  # reading an inbox message is its open
        touch = touch_of(conn, delivery_id)
        if touch is not None:
            record_open_once(conn, touch, now, "inbox_read", "app")
    return changed


def remove(conn: Connection, contact_id: int, message_id: int) -> None:
    m = inbox_messages.c
    result = conn.execute(inbox_messages.delete().where(m.id == message_id, m.contact_id == contact_id))
    if result.rowcount == 0:
        raise NotFound("inbox message", message_id)


def _contact(conn: Connection, contact_id: int) -> None:
    if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
        raise NotFound("contact", contact_id)
