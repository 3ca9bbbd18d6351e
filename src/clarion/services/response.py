"""What recipients do with a message: tracked clicks, open pixels, app opens, read and delivery receipts.

A click resolves its signed token to a stored link row and answers that row's URL, never one from the
request. It records one ``clicked`` engagement, human or machine (tracking.classify); the first human
click of a delivery also counts as its open, because a person who clicked has opened the message even
when images were blocked. Forged, edited or truncated tokens, and tokens whose link row is gone (the
contact was erased), record nothing and answer 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, or_, select

from ..config import Settings
from ..messages.compose import idempotency_key
from ..messages.link_tracking import HONEYPOT
from ..store.schema_delivery import deliveries, tracked_links
from ..store.schema_scores import engagements
from ..tracking import engagements as recorded
from ..tracking.classify import BURST, Request, classify_click, classify_open, ip_prefix
from ..tracking.links import InvalidLink
from ..tracking.tokens import verify_click, verify_open
from .clock import utcnow

# Segment's and the mobile SDKs' names for a tapped notification.
APP_OPEN_EVENTS = frozenset({"Notification Opened", "Push Opened", "Push Notification Opened",
                             "Push Notification Tapped"})
# A click in three statements, built once: the link row with its delivery; the delivery's clicks within
# BURST and its human open; the insert (bench/tracking.py: building statements cost more than running them).
_LINK = (select(tracked_links.c.url, tracked_links.c.name, deliveries.c.contact_id, deliveries.c.campaign_id,
                deliveries.c.step, deliveries.c.channel, deliveries.c.sent_at)
         .join(deliveries, deliveries.c.id == tracked_links.c.delivery_id)
         .where(tracked_links.c.delivery_id == bindparam("delivery_id"),
                tracked_links.c.position == bindparam("position")))
_RECENT = (select(engagements.c.occurred_at, engagements.c.link, engagements.c.action)
           .where(engagements.c.delivery_id == bindparam("delivery_id"),
                  or_(and_(engagements.c.action == "clicked", engagements.c.occurred_at >= bindparam("since")),
                      and_(engagements.c.action == "opened", engagements.c.machine.is_(False)))))
_MESSAGE_ID = re.compile(r"^(\d{1,18})\.([0-9a-f]{20})$")


@dataclass(frozen=True)
class ClickAnswer:
    url: str | None  # where to redirect; None: the hidden honeypot link (no page behind it)
    machine: bool


class ResponseService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def click(self, conn: Connection, token: str, request: Request, at: datetime | None = None) -> ClickAnswer:
        """Raises :class:`InvalidLink` for a token that is not ours or whose link row is gone."""
        at = at or utcnow()
        target = verify_click(self.settings.link_secret, token)
        row = conn.execute(_LINK, {"delivery_id": target.delivery_id, "position": target.position}).first()
        if row is None:
            raise InvalidLink("this link is no longer valid")
        touch = recorded.Touch(target.delivery_id, row.contact_id, row.campaign_id, row.step, row.channel,
                               row.sent_at)
        honeypot = row.name == HONEYPOT and not row.url
        recent = conn.execute(_RECENT, {"delivery_id": target.delivery_id, "since": at - BURST}).all()
        verdict = classify_click(request, sent_at=row.sent_at, at=at, honeypot=honeypot, position=target.position,
                                 other_clicks=[(r.occurred_at, r.link) for r in recent if r.action == "clicked"])
        rows = [(touch, "clicked", at, {"link": target.position, "machine": verdict.machine, "reason": verdict.reason,
                                        "agent": verdict.agent, "ip_prefix": ip_prefix(request.ip)})]
        if not verdict.machine and not any(r.action == "opened" for r in recent):
            rows.append((touch, "opened", at, {"reason": "click", "agent": verdict.agent}))  # the first human click
        recorded.record_many(conn, rows)
        return ClickAnswer(None if honeypot else row.url, verdict.machine)

    def pixel(self, conn: Connection, token: str, request: Request, at: datetime | None = None) -> bool:
        """An email open; raises :class:`InvalidLink` for a forged token. False: nothing recorded."""
        touch = recorded.touch_of(conn, verify_open(self.settings.link_secret, token))
        if touch is None:
            return False
        verdict = classify_open(request)
        return recorded.record(conn, touch, "opened", at or utcnow(), machine=verdict.machine,
                               reason=verdict.reason or "pixel", agent=verdict.agent, ip_prefix=ip_prefix(request.ip))

    def app_open(self, conn: Connection, contact_id: int, properties: dict, at: datetime) -> bool:
        """A "Notification Opened" event from the contact's app: an open of the delivery its properties name
        (our ``message_id``, whose keyed hash proves it, or ``delivery_id`` of a message to this contact)."""
        touch = self._app_touch(conn, contact_id, properties)
        if touch is None or touch.contact_id != contact_id:
            return False
        return recorded.record_open_once(conn, touch, at, "app", "app")

    def _app_touch(self, conn: Connection, contact_id: int, properties: dict) -> recorded.Touch | None:
        raw_id = str(properties.get("message_id") or properties.get("clarion_message_id") or "")[:300]
        message_id = raw_id.strip().strip("<>").split("@", 1)[0]  # an email's Message-ID has its domain
        match = _MESSAGE_ID.match(message_id)
        if match:
            touch = recorded.touch_of(conn, int(match.group(1)))
            if touch is not None:
                key = idempotency_key(self.settings.link_secret, touch.campaign_id, touch.step, touch.contact_id,
                                      touch.channel)
                return touch if key[:20] == match.group(2) else None
        raw = properties.get("delivery_id") or properties.get("clarion_delivery")
        if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit() and len(raw) <= 18):
            return recorded.touch_of(conn, int(raw))
        return None

    @staticmethod
    def receipt(conn: Connection, touch: recorded.Touch, status: str, at: datetime) -> bool:
        """A provider's receipt: ``delivered`` once per delivery, ``read`` as the delivery's open."""
        if status == "read":
            return recorded.record_open_once(conn, touch, at, "read_receipt")
        if status == "delivered" and not recorded.has_any(conn, touch.delivery_id, "delivered"):
            return recorded.record(conn, touch, "delivered", at, reason="receipt")
        return False
