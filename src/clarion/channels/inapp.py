"""The in-app inbox channel: nothing leaves the building.

An ``inapp`` message is "sent" when it is stored in the contact's inbox, and that store happens in the
checkpoint, in the same transaction that marks the delivery ``sent`` (``runners.outcomes`` calls
``services.inbox.deliver``; ``delivery_id`` is unique there). So :meth:`InboxChannel.send` does no I/O
and always answers SENT: a crash before the checkpoint leaves neither the row nor the message, and the
retry stores it once. The customer's app fetches the inbox with a contact token (``api.inbox``).
"""

from __future__ import annotations

from .base import DeliveryResult, OutboundInApp, Outcome


class InboxChannel:
    async def send(self, message: OutboundInApp) -> DeliveryResult:
        return DeliveryResult(Outcome.SENT, provider_id=None, detail="stored in the in-app inbox")

    async def aclose(self) -> None:
        return None

    @classmethod
    def from_settings(cls, settings=None) -> InboxChannel:
        return cls()
