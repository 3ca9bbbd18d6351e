"""What Meta's WhatsApp webhook tells Clarion: messages contacts send us, and the statuses of ours.

Payload (``field`` "messages"): https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components

    {"object": "whatsapp_business_account", "entry": [{"id": "<WABA id>", "changes": [{"field": "messages",
      "value": {"messaging_product": "whatsapp", "metadata": {...}, "contacts": [...],
                "messages": [{"from": "15551234567", "id": "wamid...", "timestamp": "1763900000",
                              "type": "text", "text": {"body": "STOP"}}],
                "statuses": [{"id": "wamid...", "status": "failed", "timestamp": "...", "recipient_id": "...",
                              "biz_opaque_callback_data": "<Clarion's message id>", "errors": [{"code": 131050}]}]}}]}]}

Each inbound message finds (or creates) the contact with that phone and records the event
``WHATSAPP_MESSAGE_RECEIVED`` with the wamid as its message id (a replayed webhook inserts nothing and
changes nothing) at the message's own time: the latest one opens the 24-hour window in which free-form
text may be sent (``delivery.facts._last_inbound``). A text that is exactly STOP (or UNSUBSCRIBE, CANCEL ...,
Twilio's default keywords, which people also type on WhatsApp) records a WhatsApp opt-out; START an opt-in.

Each status is logged on the delivery it names (by ``biz_opaque_callback_data``, else by the wamid kept as
the delivery's provider id); a failed status with 131050 (the person stopped marketing messages from us)
records the WhatsApp opt-out. WhatsApp never suppresses the phone: SMS and voice share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from ..channels.sms_twilio import keyword_action
from ..channels.whatsapp import WHATSAPP_STOPPED_MARKETING
from ..delivery import ledger
from ..domain.consent import Channel, ConsentStatus
from ..domain.errors import ClarionError
from ..domain.events import WHATSAPP_MESSAGE_RECEIVED, EventInput
from ..store.schema_delivery import deliveries
from ..tracking.engagements import touch_from_row
from .clock import utcnow
from .consent import ConsentService
from .contacts import ContactService
from .events import EventService
from .identity import Identifiers
from .response import ResponseService

KEYWORD_SOURCE = "whatsapp_keyword"  # the consent ledger's source for a STOP/START text
PROVIDER_SOURCE = "whatsapp_provider"  # ... and for Meta's 131050 (the checkpoint records a sync 131050 so too)
WA_ID = re.compile(r"[1-9]\d{1,14}")  # a wa_id: the E.164 number's digits, without "+" (at most 15)
MAX_ID = 200  # characters: events.message_id and the ledger's provider ids are wider than any wamid


@dataclass
class WebhookSummary:
    """What one webhook delivery changed, answered to Meta (which only needs a 200) and useful in tests."""

    messages: int = 0  # new inbound messages recorded
    replays: int = 0  # inbound messages already recorded (Meta re-sends until it gets a 200)
    opt_outs: int = 0
    opt_ins: int = 0
    statuses: int = 0  # statuses logged on a delivery
    unmatched: int = 0  # statuses naming no delivery of ours (another system's messages, or purged rows)
    ignored: int = 0  # items too malformed to use


class WhatsAppInbound:
    def __init__(self, contacts: ContactService, events: EventService, consent: ConsentService) -> None:
        self.contacts = contacts
        self.events = events
        self.consent = consent

    def process(self, conn: Connection, payload: Mapping[str, Any]) -> WebhookSummary:
        summary = WebhookSummary()
        if payload.get("object") != "whatsapp_business_account":
            return summary
        for value in _message_values(payload):
            for message in _objects(value.get("messages")):
                self.inbound_message(conn, message, summary)
            for status in _objects(value.get("statuses")):
                self.status(conn, status, summary)
        return summary

    def inbound_message(self, conn: Connection, message: Mapping[str, Any], summary: WebhookSummary) -> None:
        sender, wamid = str(message.get("from") or ""), str(message.get("id") or "")
        if not WA_ID.fullmatch(sender) or not wamid or len(wamid) > MAX_ID:
            summary.ignored += 1
            return
        contact_id = self._contact(conn, "+" + sender)
        if contact_id is None:
            summary.ignored += 1
            return
        now = utcnow()
        at = min(_unix_time(message.get("timestamp")) or now, now)  # never in the future: the window ends on time
        kind = str(message.get("type") or "")[:32]
        event = EventInput(name=WHATSAPP_MESSAGE_RECEIVED, message_id=wamid, occurred_at=at, received_at=now,
                           properties={"type": kind}, contact_id=contact_id)
        if self.events.ingest(conn, [event]).inserted == 0:
            summary.replays += 1
            return
        summary.messages += 1
        said = _said(message)
        action = keyword_action(said) if said else None
        if action is not None:
            status = ConsentStatus.OPTED_OUT if action == "opt_out" else ConsentStatus.OPTED_IN
            self.consent.record(conn, contact_id, Channel.WHATSAPP, status, source=KEYWORD_SOURCE, occurred_at=at,
                                proof={"keyword": said.strip()[:40]})
            if action == "opt_out":
                summary.opt_outs += 1
            else:
                summary.opt_ins += 1

    def status(self, conn: Connection, status: Mapping[str, Any], summary: WebhookSummary) -> None:
        wamid = str(status.get("id") or "")[:MAX_ID]
        row = _delivery(conn, wamid, str(status.get("biz_opaque_callback_data") or ""))
        if row is None:
            summary.unmatched += 1
            return
        state = str(status.get("status") or "receipt")[:16]
        error = next(_objects(status.get("errors")), {})
        code = str(error["code"]) if error.get("code") is not None else None
        detail = " ".join(str(part) for part in ("status webhook", error.get("title"), _details(error)) if part)
        ledger.write_log(conn, [ledger.LogEntry(row.id, row.campaign_id, row.attempts, state, None, code,
                                                wamid or None, detail)], utcnow(), "whatsapp")
        summary.statuses += 1
        if state in ("delivered", "read"):  # engagements for the reports; "read" is the message's open
            at = min(_unix_time(status.get("timestamp")) or utcnow(), utcnow())
            ResponseService.receipt(conn, touch_from_row(row), state, at)
        if state == "failed" and code == WHATSAPP_STOPPED_MARKETING and row.contact_id is not None:
            at = min(_unix_time(status.get("timestamp")) or utcnow(), utcnow())
            self.consent.record(conn, row.contact_id, Channel.WHATSAPP, ConsentStatus.OPTED_OUT,
                                source=PROVIDER_SOURCE,
                                occurred_at=at, proof={"keyword": f"stopped marketing (provider code {code})"})
            summary.opt_outs += 1

    def _contact(self, conn: Connection, phone: str) -> int | None:
        """The contact with this phone, created when unknown (someone wrote to us first); None when erased."""
        try:
            return self.contacts.resolve(conn, Identifiers(phone=phone))
        except ClarionError:  # Erased: a person who asked to be forgotten is not brought back by a message
            return None


def _delivery(conn: Connection, wamid: str, callback_data: str) -> Any:
    """The delivery a status names: by Clarion's message id echoed back (the primary key), else by wamid."""
    row = ledger.by_message_id(conn, callback_data)
    if row is not None:
        return row
    if not wamid:
        return None
    return conn.execute(select(deliveries).where(deliveries.c.provider_id == wamid)
                        .order_by(deliveries.c.id.desc()).limit(1)).first()


def _message_values(payload: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for entry in _objects(payload.get("entry")):
        for change in _objects(entry.get("changes")):
            value = change.get("value")
            if change.get("field") == "messages" and isinstance(value, Mapping):
                yield value


def _objects(items: Any) -> Iterator[Mapping[str, Any]]:
    """The JSON objects of a list (anything else, skipped): a signed payload is Meta's, but not always whole."""
    if isinstance(items, list):
        yield from (item for item in items if isinstance(item, Mapping))


def _said(message: Mapping[str, Any]) -> str:
    """What a person typed or tapped: a text's body, or a quick-reply button's text."""
    for kind, key in (("text", "body"), ("button", "text")):
        part = message.get(kind)
        if message.get("type") == kind and isinstance(part, Mapping) and isinstance(part.get(key), str):
            return part[key]
    return ""


def _details(error: Mapping[str, Any]) -> str:
    data = error.get("error_data")
    return str(data.get("details") or "") if isinstance(data, Mapping) else str(error.get("message") or "")


def _unix_time(raw: Any) -> datetime | None:
    """Meta's timestamps: Unix seconds, as a string."""
    try:
        return datetime.fromtimestamp(int(str(raw)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
