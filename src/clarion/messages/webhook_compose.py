"""From a leased delivery to a webhook: render the ``webhook`` part and wrap it in Clarion's envelope.

The receiver gets one JSON document per message::

    {"message_id": "42.4f0c...", "campaign": {"id": 7, "name": "churn-alert"},
     "contact": {"id": 12, "external_id": "u-12", "email": "ana@example.com", "phone": "+14155550101"},
     "sent_at": "2026-11-23T12:00:00+00:00", "data": <the template's webhook.body, rendered>}

The URL is the campaign's ``settings.webhook_url``, else ``CLARION_WEBHOOK_URL``; neither is a problem
of the campaign's set-up, reported as a render error naming ``webhook.url`` so the message fails with
the reason instead of going nowhere. The channel checks the URL's address again when it sends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from ..channels.base import OutboundWebhook
from ..content.errors import RenderError
from .compose import PartComposer

CONTACT_KEYS = ("id", "external_id", "email", "phone")


class WebhookComposer(PartComposer):
    part = "webhook"

    def compose(self, campaign: Any, item: Any, now: datetime) -> OutboundWebhook:
        row, profile = item.row, item.profile
        url = getattr(campaign.settings, "webhook_url", None) or self.settings.webhook_url
        if not url:
            raise RenderError("webhook.url", "no webhook URL: set the campaign's settings.webhook_url or "
                                             "CLARION_WEBHOOK_URL")
        data = self.render_part(campaign, item, now).webhook
        if data is None:
            raise RenderError("webhook.body", "the template has no webhook body")
        ids = self.ids(campaign, row)
        envelope = {"message_id": ids.message_id, "campaign": dict(campaign.render_view),
                    "contact": {name: profile.get(name) for name in CONTACT_KEYS},
                    "sent_at": now.isoformat(), "data": data}
        body = orjson.dumps(envelope, default=str)  # dates and decimals in rendered data as text
        return OutboundWebhook(url=url, body=body, message_id=ids.message_id, idempotency_key=ids.idempotency_key,
                               contact_id=row.contact_id)
