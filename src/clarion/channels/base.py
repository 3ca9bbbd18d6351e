"""The narrow interface the delivery pipeline owns: ``await channel.send(message) -> DeliveryResult``.

An adapter translates everything its provider can say into one of five outcomes; the pipeline acts
on the outcome alone (checkpoint, retry later, suppress the address, give up, pause the campaign).
Expected provider answers are values, never exceptions: an adapter raises only for its own bugs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


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
    # Push tokens or subscriptions the provider declared gone (FCM UNREGISTERED, APNs 410, web push 404/410):
    # the checkpoint invalidates them whatever the outcome (one of a contact's devices may be gone, others not).
    gone: tuple[GoneToken, ...] = ()

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


@dataclass(frozen=True)
class GoneToken:
    """A device token a provider no longer accepts. ``since``: when the provider says it became invalid
    (APNs's 410 timestamp); a token registered again after that is kept."""

    kind: str  # fcm, apns, webpush
    token: str
    since: datetime | None = None


@dataclass(frozen=True)
class PushTarget:
    """One live device of the contact: an FCM or APNs token, or a web push subscription (endpoint + keys)."""

    kind: str  # fcm, apns, webpush
    token: str  # the registration token, device token or web push endpoint URL
    p256dh: str | None = None  # web push only: the browser's P-256 public key, base64url
    auth: str | None = None  # web push only: the 16-byte auth secret, base64url
    platform: str | None = None  # android, ios, web ... as registered
    app_id: str | None = None  # the app's bundle id (APNs topic) when the device said


@dataclass(frozen=True)
class OutboundPush:
    """One notification for every live device of a contact (``targets``); the fan-out sends it to each."""

    targets: tuple[PushTarget, ...]
    title: str
    body: str
    message_id: str
    idempotency_key: str
    image: str | None = None
    url: str | None = None  # deep link (mobile) or the page a click opens (web)
    icon: str | None = None  # web push only
    badge: int | None = None
    sound: str | None = None
    data: dict[str, str] = field(default_factory=dict)  # custom key/values for the app (strings, as FCM wants)
    collapse_key: str | None = None  # a newer message with the same key replaces an undelivered one
    ttl_seconds: int = 86_400  # how long the provider keeps an undelivered message
    urgency: str = "normal"  # "high" wakes the device (FCM priority, APNs 10, web push Urgency)
    overrides: dict[str, Any] = field(default_factory=dict)  # FCM android/apns/webpush blocks, merged as given


class PushProvider(Protocol):
    """Sends one notification to one device of one kind; :class:`~.push_fanout.PushFanout` combines them."""

    async def send_to(self, message: OutboundPush, target: PushTarget) -> DeliveryResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class OutboundWhatsApp:
    """A WhatsApp message: an approved template with its parameters, or free-form ``text`` (allowed only
    inside the 24-hour customer-service window the composer checked)."""

    to: str  # E.164
    message_id: str
    idempotency_key: str
    template: str | None = None
    language: str | None = None  # the template's language code as approved ("en_US", "pt_BR")
    parameters: tuple[str, ...] = ()  # the body's {{1}}, {{2}} ... in order
    text: str | None = None


@dataclass(frozen=True)
class OutboundCall:
    """A voice call that says ``text`` in ``language`` (BCP 47) when answered."""

    to: str  # E.164
    text: str
    language: str
    message_id: str
    idempotency_key: str
    voice: str | None = None  # a provider voice name ("Polly.Joanna"); None: the provider's default
    sender: str | None = None  # the caller id; None: the channel's configured number


@dataclass(frozen=True)
class OutboundWebhook:
    """A JSON document to POST to the workspace's endpoint, signed by the channel."""

    url: str
    body: bytes  # the JSON document, as sent (the signature covers these bytes)
    message_id: str
    idempotency_key: str
    contact_id: int | None = None


@dataclass(frozen=True)
class OutboundInApp:
    """A message for the contact's in-app inbox; the checkpoint stores it with the ledger row."""

    contact_id: int
    title: str
    body: str
    message_id: str
    idempotency_key: str
    url: str | None = None
    image: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
