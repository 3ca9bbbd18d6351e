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

from sqlalchemy import Connection, select

from ..config import Settings
from ..messages.compose import idempotency_key
from ..messages.link_tracking import HONEYPOT
from ..store.schema_delivery import tracked_links
from ..tracking import engagements as recorded
from ..tracking.classify import Request, classify_click, classify_open, ip_prefix
from ..tracking.links import InvalidLink
from ..tracking.tokens import verify_click, verify_open
from .clock import utcnow

# Segment's and the mobile SDKs' names for a tapped notification.
APP_OPEN_EVENTS = frozenset({"Notification Opened", "Push Opened", "Push Notification Opened",
                             "Push Notification Tapped"})
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
        link = conn.execute(select(tracked_links.c.url, tracked_links.c.name).where(
            tracked_links.c.delivery_id == target.delivery_id,
            tracked_links.c.position == target.position)).first()
        touch = recorded.touch_of(conn, target.delivery_id) if link is not None else None
        if touch is None:
            raise InvalidLink("this link is no longer valid")
        honeypot = link.name == HONEYPOT and not link.url
        verdict = classify_click(request, sent_at=touch.sent_at, at=at, honeypot=honeypot,
                                 other_clicks=recorded.clicks_of(conn, touch.delivery_id), position=target.position)
        details = {"agent": verdict.agent, "ip_prefix": ip_prefix(request.ip)}
        recorded.record(conn, touch, "clicked", at, link=target.position, machine=verdict.machine,
                        reason=verdict.reason, **details)
        if not verdict.machine:
            recorded.record_open_once(conn, touch, at, "click", verdict.agent)
        return ClickAnswer(None if honeypot else link.url, verdict.machine)

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
