"""The narrow interface the delivery pipeline owns: ``await channel.send(message) -> DeliveryResult``.

An adapter translates everything its provider can say into one of five outcomes; the pipeline acts
on the outcome alone (checkpoint, retry later, suppress the address, give up, pause the campaign).
Expected provider answers are values, never exceptions: an adapter raises only for its own bugs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    SENT = "sent"  # the provider accepted the message
    RETRY = "retry"  # transient: try again later (after ``retry_after`` seconds if given)
    BAD_ADDRESS = "bad_address"  # permanent for this address: suppress it (or invalidate the token)
    FAILED = "failed"  # permanent for this message, but the address is fine (5.7.x policy, content refused)
    CONFIG_ERROR = "config_error"  # our side is wrong (credentials, sender, TLS): pause, do not blame the contact


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    provider_id: str | None = None  # the provider's id for the message (SMTP queue id, FCM name ...)
    code: str | None = None  # the provider's code: "550 5.1.1", "UNREGISTERED", "21610"
    detail: str = ""  # the provider's words, shortened to a line
    retry_after: float | None = None  # seconds, when the provider said

    @property
    def sent(self) -> bool:
        return self.outcome is Outcome.SENT


@dataclass(frozen=True)
class OutboundEmail:
    """One rendered email, ready to go: ``data`` is the complete RFC 5322 message (signed if DKIM is on)."""

    sender: str  # envelope MAIL FROM (the bounce address)
    recipient: str  # envelope RCPT TO
    data: bytes
    message_id: str  # without the angle brackets
    idempotency_key: str
    headers: dict[str, str] = field(default_factory=dict)  # informational copy of the main headers


class EmailChannel(Protocol):
    async def send(self, message: OutboundEmail) -> DeliveryResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class OutboundSms:
    """One rendered text message: ``to`` and ``sender`` in E.164 (or a sender pool's messaging service)."""

    to: str
    body: str
    message_id: str  # Clarion's id for the message (the delivery's), echoed in status callbacks
    idempotency_key: str
    sender: str | None = None  # a number or alphanumeric sender; None: the channel's pool decides


class SmsChannel(Protocol):
    async def send(self, message: OutboundSms) -> DeliveryResult: ...

    async def aclose(self) -> None: ...
