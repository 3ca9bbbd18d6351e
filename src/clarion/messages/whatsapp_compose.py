"""From a leased delivery to a WhatsApp message: free-form text inside the session window, else the template.

WhatsApp Business policy allows free-form messages only within 24 hours of the contact's last message to
the business (the customer-service window); outside it only an approved template may open a conversation.
https://developers.facebook.com/docs/whatsapp/pricing#customer-service-windows

So the composer sends the rendered ``text`` when the content has one and the contact wrote within
:data:`~clarion.domain.campaigns.WHATSAPP_SESSION` of ``now`` (``item.last_inbound_at``, from the
"WhatsApp Message Received" events the webhook records); otherwise the approved ``template`` with its
rendered body parameters. Content with text only, for a contact outside the window, is normally skipped
earlier by the policy chain (``outside_session_window``); if it gets here it is a :class:`RenderError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..channels.base import OutboundWhatsApp
from ..content.errors import RenderError
from ..domain.campaigns import WHATSAPP_SESSION
from .compose import PartComposer


class WhatsAppComposer(PartComposer):
    part = "whatsapp"

    def compose(self, campaign: Any, item: Any, now: datetime) -> OutboundWhatsApp:
        content = self.render_part(campaign, item, now).whatsapp
        if content is None:
            raise RenderError("whatsapp", "the template has no WhatsApp content")
        ids = self.ids(campaign, item.row)
        message = {"to": item.address, "message_id": ids.message_id, "idempotency_key": ids.idempotency_key}
        text = (content.text or "").strip()
        if text and in_session(item.last_inbound_at, now):
            return OutboundWhatsApp(**message, text=self.tracker(campaign, item).text(content.text))
        if content.template:
            return OutboundWhatsApp(**message, template=content.template, language=content.language,
                                    parameters=tuple(content.parameters))
        said = f"last message {item.last_inbound_at.isoformat(timespec='minutes')}" if item.last_inbound_at \
            else "the contact never wrote"
        raise RenderError("whatsapp.text", f"free-form text only goes within 24 hours of the contact's last message "
                                           f"({said}) and there is no approved template to send instead")


def in_session(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether ``now`` is inside the customer-service window the contact's last message opened."""
    return last_inbound_at is not None and now - last_inbound_at < WHATSAPP_SESSION
