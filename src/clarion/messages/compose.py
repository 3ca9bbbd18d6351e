"""What every composer does the same way: render one template part for a leased delivery, derive its ids.

The idempotency key is derived from the delivery's unique key (campaign, step, contact, channel) with a
keyed hash, so every attempt of one delivery, even after a crash and a new lease, carries the same key
and message id: a provider or receiver that removes duplicates by them sees one message.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import Settings
from ..content.context import RenderContext
from ..content.render import RenderedMessage, RenderSettings, render
from .link_tracking import LinkTracker, TrackingOptions

NO_TRACKING = TrackingOptions(links=False, opens=False)


def idempotency_key(secret: str, campaign_id: int, step: str, contact_id: int | None, channel: str) -> str:
    unique = f"{campaign_id}:{step}:{contact_id}:{channel}".encode()
    return hmac.new(secret.encode(), b"delivery:" + unique, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class MessageIds:
    message_id: str  # the delivery's id and a prefix of the key: readable in logs, unique per delivery
    idempotency_key: str


class PartComposer:
    """Base of the composers that render one part of the template (sms, voice, push ...)."""

    part: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.render_settings = RenderSettings(default_timezone=settings.default_timezone)

    def render_part(self, campaign: Any, item: Any, now: datetime, part: str | None = None) -> RenderedMessage:
        context = RenderContext(contact=item.profile, campaign=campaign.render_view, now=now,
                                data=item.row.data or {})
        return render(campaign.template, context, self.render_settings, channels=(part or self.part,))

    def tracker(self, campaign: Any, item: Any) -> LinkTracker:
        return link_tracker(self.settings, campaign, item)

    def ids(self, campaign: Any, row: Any) -> MessageIds:
        key = idempotency_key(self.settings.link_secret, campaign.id, row.step, row.contact_id, campaign.channel)
        return MessageIds(f"{row.id}.{key[:20]}", key)


def link_tracker(settings: Settings, campaign: Any, item: Any) -> LinkTracker:
    """The message's link tracker; its links reach the ``sent`` checkpoint through ``item.links``."""
    tracker = LinkTracker(settings.link_secret, settings.public_url, item.row.id or 0,
                          getattr(campaign, "tracking", NO_TRACKING))
    item.links = tracker.links
    return tracker
