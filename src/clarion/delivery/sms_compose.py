"""From a leased delivery to an SMS: render the ``sms`` part, add the opt-out hint, derive the ids.

Marketing texts end with the workspace's opt-out hint ("Reply STOP to unsubscribe.") unless the text
already tells how to stop: carriers and the CTIA guidelines expect it, and the STOP reply is handled
(an inbound STOP records an opt-out). Transactional texts (codes, receipts) carry no hint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..channels.base import OutboundSms
from ..config import Settings
from .context import RenderContext
from .email_compose import idempotency_key
from .errors import RenderError
from .templates import RenderSettings, render


class SmsComposer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.render_settings = RenderSettings(default_timezone=settings.default_timezone)

    def compose(self, campaign: Any, item: Any, now: datetime) -> OutboundSms:
        row, profile = item.row, item.profile
        context = RenderContext(contact=profile, campaign=campaign.render_view, now=now, data=row.data or {})
        sms = render(campaign.template, context, self.render_settings, channels=("sms",)).sms
        if sms is None or not sms.text.strip():
            raise RenderError("sms.text", "the template has no SMS text")
        text = with_opt_out_hint(sms.text, self.settings.sms_opt_out_hint) if campaign.marketing else sms.text
        key = idempotency_key(self.settings.link_secret, campaign.id, row.step, row.contact_id, campaign.channel)
        return OutboundSms(to=item.address, body=text, message_id=f"{row.id}.{key[:20]}", idempotency_key=key,
                           sender=self.settings.sms_from or None)


def with_opt_out_hint(text: str, hint: str) -> str:
    if not hint or "stop" in text.lower():
        return text
    return f"{text.rstrip()} {hint}"
