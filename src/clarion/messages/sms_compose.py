"""From a leased delivery to an SMS: render the ``sms`` part, add the opt-out hint, derive the ids.

Marketing texts end with the workspace's opt-out hint ("Reply STOP to unsubscribe.") unless the text
already tells how to stop: carriers and the CTIA guidelines expect it, and the STOP reply is handled
(an inbound STOP records an opt-out). Transactional texts (codes, receipts) carry no hint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..channels.base import OutboundSms
from ..content.errors import RenderError
from .compose import PartComposer


class SmsComposer(PartComposer):
    part = "sms"

    def compose(self, campaign: Any, item: Any, now: datetime) -> OutboundSms:
        sms = self.render_part(campaign, item, now).sms
        if sms is None or not sms.text.strip():
            raise RenderError("sms.text", "the template has no SMS text")
        # Links are rewritten before anything counts the text: the GSM-7/UCS-2 segments are the tracked text's.
        text = self.tracker(campaign, item).text(sms.text)
        text = with_opt_out_hint(text, self.settings.sms_opt_out_hint) if campaign.marketing else text
        ids = self.ids(campaign, item.row)
        return OutboundSms(to=item.address, body=text, message_id=ids.message_id, idempotency_key=ids.idempotency_key,
                           sender=self.settings.sms_from or None)


def with_opt_out_hint(text: str, hint: str) -> str:
    if not hint or "stop" in text.lower():
        return text
    return f"{text.rstrip()} {hint}"
