"""From a leased delivery to an in-app inbox message: render the ``inapp`` part (title, body, url, image).

The message keeps the delivery's ``data`` (a transactional message's payload: an order id the app can
open) beside the rendered texts; the checkpoint stores it in the inbox with the ``sent`` row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..channels.base import OutboundInApp
from ..content.errors import RenderError
from .compose import PartComposer


class InAppComposer(PartComposer):
    part = "inapp"

    def compose(self, campaign: Any, item: Any, now: datetime) -> OutboundInApp:
        row = item.row
        content = self.render_part(campaign, item, now).inapp
        if content is None:
            raise RenderError("inapp", "the template has no in-app message")
        if not content.title.strip() and not content.body.strip():
            raise RenderError("inapp.body", "the title and the body both render empty")
        ids, tracker = self.ids(campaign, row), self.tracker(campaign, item)
        return OutboundInApp(contact_id=row.contact_id, title=content.title, body=content.body,
                             message_id=ids.message_id, idempotency_key=ids.idempotency_key,
                             url=tracker.url(content.url or None), image=content.image or None,
                             data=dict(row.data or {}))
