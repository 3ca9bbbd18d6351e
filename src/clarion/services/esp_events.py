"""What an email service provider's feedback does: Amazon SES (through SNS) and SendGrid's Event Webhook.

Mail relayed through an ESP's SMTP server is accepted at once; whether it reached the mailbox, bounced
later, or was reported as spam arrives afterwards, by webhook. Each event becomes at most one engagement
on the delivery it answers (its ``reason`` in brackets):

- SES Delivery, SendGrid ``delivered``: ``delivered`` (ses, sendgrid), once per delivery.
- SES Bounce ``Permanent``, SendGrid ``bounce`` of type ``bounce``: ``bounced`` (permanent), and the
  address is suppressed (hard_bounce) through the same path as a synchronous 550.
- SES Bounce ``Transient`` or ``Undetermined``: ``bounced`` (transient, undetermined) only: the address may
  work again.
- SendGrid ``bounce`` of type ``blocked``: ``bounced`` (blocked) only: a block is the receiving server's
  verdict on the sender, not on the address.
- SendGrid ``dropped``: ``bounced`` (dropped); the address is suppressed when SendGrid dropped the message
  for a bounced or invalid address (hard_bounce) or an earlier spam report (complaint).
- SES Complaint (except feedback type ``not-spam``), SendGrid ``spamreport``: ``complained`` (ses,
  sendgrid), and the address is suppressed (complaint).
- anything else (SendGrid's opens, clicks, deferrals; SES's other event types): ignored and counted.
  Clarion tracks opens and clicks itself.

Finding the delivery: Clarion's Message-ID is ``<delivery id>.<20 hex>@<domain>`` and is stored in
``deliveries.message_id``. SES reports it as ``mail.commonHeaders.messageId`` (and in ``mail.headers``
when "include original headers" is on), SendGrid as ``smtp-id``. When no delivery has that Message-ID
yet (the notification overtook the worker's checkpoint), ``X-Clarion-Delivery`` (SES headers) or a
``clarion_delivery`` custom argument (SendGrid) names the delivery, used only when it is the delivery
part of the Message-ID and the Message-ID's 20 hex digits are that delivery's keyed hash. Events for
messages Clarion did not send change nothing and are counted as unknown (answered 200, so the ESP does
not retry them for days).

Replays: the same notification twice records once. A delivery has at most one ``delivered``, one
``complained``, and one ``bounced`` per kind of bounce (a transient bounce, then a permanent one, is
recorded twice); an event already recorded changes nothing, not even the suppression list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from ..config import Settings
from ..domain.consent import SuppressionReason
from ..domain.errors import FieldError
from ..domain.profiles import normalize_email
from ..messages.compose import idempotency_key
from ..store.schema_scores import engagements
from ..tracking import engagements as recorded
from .consent import ConsentService

_OURS = re.compile(r"(\d{1,18})\.([0-9a-f]{20})@")  # Clarion's Message-ID: delivery id, keyed hash prefix
MAX_NOTE = 500  # characters of the ESP's words kept in the suppression's note
SES_BOUNCES = {"Permanent": "permanent", "Transient": "transient", "Undetermined": "undetermined"}
# SendGrid's ``reason`` for a drop, by the suppression it reflects (Event Webhook reference, "dropped").
SENDGRID_DROPS = {"Bounced Address": SuppressionReason.HARD_BOUNCE, "Invalid": SuppressionReason.HARD_BOUNCE,
                  "Spam Reporting Address": SuppressionReason.COMPLAINT}


@dataclass(frozen=True)
class EspEvent:
    """One ESP event, read: what it means for Clarion and how to find its delivery."""

    source: str  # ses, sendgrid
    action: str | None  # delivered, bounced, complained; None: an event Clarion does not act on
    reason: str | None = None  # the engagement's reason (see the module's table)
    suppress: SuppressionReason | None = None
    recipients: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()  # without angle brackets, most trusted first
    delivery_hint: str | None = None  # X-Clarion-Delivery, or SendGrid's clarion_delivery custom argument
    at: datetime | None = None
    note: str = ""  # what the ESP said, kept with a suppression


@dataclass
class Tally:
    """What a webhook request did, answered to the ESP and logged."""

    recorded: int = 0
    replayed: int = 0
    unknown: int = 0  # events for messages Clarion did not send (or whose contact was erased)
    ignored: int = 0  # events Clarion does not act on


class EspEventService:
    def __init__(self, settings: Settings, consent: ConsentService) -> None:
        self.settings = settings
        self.consent = consent

    def apply(self, conn: Connection, events: Iterable[EspEvent], now: datetime) -> Tally:
        tally = Tally()
        for event in events:
            outcome = self._one(conn, event, now)
            setattr(tally, outcome, getattr(tally, outcome) + 1)
        return tally

    def _one(self, conn: Connection, event: EspEvent, now: datetime) -> str:
        if event.action is None:
            return "ignored"
        touch = self._touch(conn, event)
        if touch is None or touch.channel != "email" or touch.contact_id is None:
            return "unknown"
        if _seen(conn, touch.delivery_id, event):
            return "replayed"
        if event.suppress is not None:
            for address in event.recipients:
                self._suppress(conn, address, event)
        at = min(event.at, now) if event.at is not None else now  # an ESP's clock ahead of ours: now
        recorded.record(conn, touch, event.action, at, reason=event.reason)
        return "recorded"

    def _touch(self, conn: Connection, event: EspEvent) -> recorded.Touch | None:
        for message_id in event.message_ids:
            touch = recorded.touch_by_message_id(conn, message_id)
            if touch is not None:
                return touch
        return self._by_header(conn, event)

    def _by_header(self, conn: Connection, event: EspEvent) -> recorded.Touch | None:
        """The delivery X-Clarion-Delivery names, when the Message-ID agrees and its keyed hash proves it."""
        hint = event.delivery_hint
        if not hint:
            return None
        for message_id in event.message_ids:
            found = _OURS.match(message_id)
            if found is None or found.group(1) != hint:
                continue
            touch = recorded.touch_of(conn, int(hint))
            if touch is None or touch.contact_id is None:
                return None
            key = idempotency_key(self.settings.link_secret, touch.campaign_id, touch.step, touch.contact_id,
                                  touch.channel)
            return touch if key[:20] == found.group(2) else None
        return None

    def _suppress(self, conn: Connection, address: str, event: EspEvent) -> None:
        try:
            normalized = normalize_email(address)
        except FieldError:  # not an address we could have sent to: nothing to suppress
            return
        assert event.suppress is not None
        self.consent.suppress(conn, "email", normalized, event.suppress, note=event.note[:MAX_NOTE])


def _seen(conn: Connection, delivery_id: int, event: EspEvent) -> bool:
    if event.action != "bounced":
        return recorded.has_any(conn, delivery_id, event.action or "")
    return conn.execute(select(engagements.c.id).where(
        engagements.c.delivery_id == delivery_id, engagements.c.action == "bounced",
        engagements.c.reason == event.reason).limit(1)).first() is not None


# -- Amazon SES ------------------------------------------------------------------------------------------

def ses_event(message: Any) -> EspEvent:
    """An SES feedback notification (``notificationType``) or event-publishing record (``eventType``),
    https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html."""
    message = _dict(message)
    kind = message.get("notificationType") or message.get("eventType")
    mail = _dict(message.get("mail"))
    found = {"message_ids": _ses_message_ids(mail), "delivery_hint": _header(mail, "X-Clarion-Delivery")}
    if kind == "Bounce":
        bounce = _dict(message.get("bounce"))
        kind_of = SES_BOUNCES.get(str(bounce.get("bounceType")), "undetermined")
        said = [_str(r.get("diagnosticCode")) for r in _dicts(bounce.get("bouncedRecipients"))]
        return EspEvent("ses", "bounced", kind_of, SuppressionReason.HARD_BOUNCE if kind_of == "permanent" else None,
                        _addresses(bounce.get("bouncedRecipients")), at=_iso(bounce.get("timestamp")),
                        note=f"ses bounce {bounce.get('bounceType')}/{bounce.get('bounceSubType')}: "
                             + "; ".join(s for s in said if s), **found)
    if kind == "Complaint":
        complaint = _dict(message.get("complaint"))
        feedback = _str(complaint.get("complaintFeedbackType")) or "unspecified"
        if feedback == "not-spam":  # the person marked the message as not spam: no complaint
            return EspEvent("ses", None)
        return EspEvent("ses", "complained", "ses", SuppressionReason.COMPLAINT,
                        _addresses(complaint.get("complainedRecipients")), at=_iso(complaint.get("timestamp")),
                        note=f"ses complaint: {feedback}", **found)
    if kind == "Delivery":
        delivery = _dict(message.get("delivery"))
        return EspEvent("ses", "delivered", "ses", at=_iso(delivery.get("timestamp")), **found)
    return EspEvent("ses", None)


def _ses_message_ids(mail: dict) -> tuple[str, ...]:
    common = _dict(mail.get("commonHeaders"))
    candidates = (_str(common.get("messageId")), _header(mail, "Message-ID"))
    return tuple(dict.fromkeys(_bare(c) for c in candidates if c))


def _header(mail: dict, name: str) -> str | None:
    for header in _dicts(mail.get("headers")):
        if _str(header.get("name")).lower() == name.lower():
            return _str(header.get("value")).strip() or None
    return None


def _addresses(recipients: Any) -> tuple[str, ...]:
    return tuple(_str(r.get("emailAddress")) for r in _dicts(recipients) if r.get("emailAddress"))


# -- SendGrid -----------------------------------------------------------------------------------------

def sendgrid_event(item: Any) -> EspEvent:
    """One event of a SendGrid Event Webhook batch
    (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event)."""
    item = _dict(item)
    kind = item.get("event")
    hint = item.get("clarion_delivery")
    found = {"message_ids": (_bare(_str(item.get("smtp-id"))),) if item.get("smtp-id") else (),
             "delivery_hint": str(hint) if isinstance(hint, (str, int)) else None,
             "recipients": (_str(item.get("email")),) if item.get("email") else (),
             "at": _unix(item.get("timestamp"))}
    said = " ".join(_str(item.get(k)) for k in ("status", "reason") if item.get(k))
    if kind == "delivered":
        return EspEvent("sendgrid", "delivered", "sendgrid", **found)
    if kind == "bounce":
        blocked = item.get("type") == "blocked"  # events from before "type" existed are bounces
        return EspEvent("sendgrid", "bounced", "blocked" if blocked else "permanent",
                        None if blocked else SuppressionReason.HARD_BOUNCE,
                        note=f"sendgrid bounce: {said}", **found)
    if kind == "dropped":
        suppress = next((r for text, r in SENDGRID_DROPS.items() if _str(item.get("reason")).startswith(text)), None)
        return EspEvent("sendgrid", "bounced", "dropped", suppress, note=f"sendgrid dropped: {said}", **found)
    if kind == "spamreport":
        return EspEvent("sendgrid", "complained", "sendgrid", SuppressionReason.COMPLAINT,
                        note="sendgrid spamreport", **found)
    return EspEvent("sendgrid", None)


# -- reading untrusted shapes -------------------------------------------------------------------------

def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _bare(message_id: str) -> str:
    return message_id.strip().removeprefix("<").removesuffix(">").strip()


def _iso(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(_str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _unix(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
