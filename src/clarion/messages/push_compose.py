"""From a leased delivery to a push notification for every live device of the contact.

A ``push`` campaign renders the template's ``push`` part (mobile: FCM and APNs), a ``webpush`` campaign
its ``webpush`` part. The targets are the contact's live devices the lease loaded (newest first);
lifetime and urgency come from the campaign's settings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..channels.base import OutboundPush
from ..content.errors import RenderError
from ..tracking.tokens import open_url, sign_open
from .compose import PartComposer


class PushComposer(PartComposer):
    """Renders the ``push`` part for a ``push`` campaign and the ``webpush`` part for a ``webpush`` one."""

    def compose(self, campaign: Any, item: Any, now: datetime) -> OutboundPush:
        channel = campaign.channel
        content = getattr(self.render_part(campaign, item, now, part=channel), channel)
        if content is None or not (content.title or "").strip():
            raise RenderError(f"{channel}.title", f"the template has no {channel} title")
        ids, options, tracker = self.ids(campaign, item.row), campaign.settings, self.tracker(campaign, item)
        common = {"targets": item.targets, "title": content.title, "body": content.body or "",
                  "message_id": ids.message_id, "idempotency_key": ids.idempotency_key,
                  "ttl_seconds": options.push_ttl_seconds, "urgency": options.push_urgency,
                  "data": {**options.push_data, "message_id": ids.message_id, "campaign": str(campaign.id),
                           **_open_report(self.settings, item.row.id)},
                  "overrides": options.push_overrides}
        if channel == "webpush":
            return OutboundPush(**common, icon=content.icon, url=tracker.url(content.url))
        # Only http(s) deep links (universal and app links) go through the redirect; an app scheme
        # (myapp://) cannot, and its taps are counted by the app's "Push Opened" (docs/tracking.md).
        return OutboundPush(**common, image=content.image, url=tracker.url(content.deep_link), badge=content.badge,
                            sound=content.sound)


def _open_report(settings: Any, delivery_id: int | None) -> dict[str, str]:
    """Where the web push service worker reports a notification click (a signed open pixel URL)."""
    if not delivery_id:
        return {}
    return {"clarion_open": open_url(settings.public_url, sign_open(settings.link_secret, delivery_id))}
