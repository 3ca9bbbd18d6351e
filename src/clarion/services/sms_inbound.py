"""What Twilio tells Clarion: inbound texts (STOP and START keywords), delivery receipts, call statuses.

An inbound STOP (or UNSUBSCRIBE, CANCEL, END, QUIT ...) records an SMS opt-out in the consent ledger for
the contact with that number; START (or UNSTOP, YES) records an opt-in again. The keyword is the proof.
A receipt is logged on the delivery it names; "undelivered" or "failed" with a code saying the number
cannot get texts (unknown, unreachable, a landline) suppresses the number, like a hard bounce. A call's
status is logged the same way; a "failed" call whose ErrorCode says the number is invalid suppresses it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from ..channels.sms_twilio import keyword_action
from ..channels.voice_twilio import BAD_ADDRESS_CODES as INVALID_CALL_NUMBER_CODES
from ..delivery import ledger
from ..domain.consent import Channel, ConsentStatus, SuppressionReason
from ..store.schema import identities
from ..tracking.engagements import touch_from_row
from .clock import utcnow
from .consent import ConsentService
from .response import ResponseService

# Twilio delivery errors that mean the number cannot receive texts (https://www.twilio.com/docs/api/errors):
# 30003 unreachable handset, 30005 unknown destination, 30006 landline or unreachable carrier.
DEAD_NUMBER_CODES = frozenset({"30003", "30005", "30006"})


def inbound_text(conn: Connection, consent: ConsentService, sender: str, body: str) -> dict[str, Any]:
    action = keyword_action(body)
    contact_id = conn.execute(select(identities.c.contact_id).where(
        identities.c.kind == "phone", identities.c.value == sender)).scalar()
    if action is None or contact_id is None:
        return {"action": None, "contact_id": contact_id}
    status = ConsentStatus.OPTED_OUT if action == "opt_out" else ConsentStatus.OPTED_IN
    consent.record(conn, contact_id, Channel.SMS, status, source="sms_keyword",
                   proof={"keyword": body.strip()[:40]})
    return {"action": action, "contact_id": contact_id}


def delivery_receipt(conn: Connection, consent: ConsentService, message_id: str, params: dict[str, str]) -> bool:
    """Logs a receipt on the delivery named by Clarion's ``message_id``; False when it names none."""
    row = ledger.by_message_id(conn, message_id)
    if row is None:
        return False
    status = params.get("MessageStatus", "")[:16]
    code = params.get("ErrorCode") or None
    ledger.write_log(conn, [ledger.LogEntry(row.id, row.campaign_id, row.attempts, status or "receipt", None, code,
                                            params.get("MessageSid"), "delivery receipt")], utcnow(), "twilio")
    if status in ("undelivered", "failed") and code in DEAD_NUMBER_CODES and params.get("To"):
        consent.suppress(conn, "phone", params["To"], SuppressionReason.HARD_BOUNCE, note=f"Twilio {code}")
    # Twilio's "delivered" (and "read", for WhatsApp through Twilio) become engagements for the reports.
    ResponseService.receipt(conn, touch_from_row(row), status, utcnow())
    return True


def call_status(conn: Connection, consent: ConsentService, message_id: str, params: dict[str, str]) -> bool:
    """Logs a call's status (initiated, ringing, in-progress, completed, busy, no-answer, failed, canceled)
    on the delivery named by ``message_id``; False when it names none."""
    row = ledger.by_message_id(conn, message_id)
    if row is None:
        return False
    status = params.get("CallStatus", "")[:16]
    code = params.get("ErrorCode") or None
    said = [f"{name} {params[name]}" for name in ("CallDuration", "AnsweredBy") if params.get(name)]
    detail = "call status" + (f" ({', '.join(said)})" if said else "")
    ledger.write_log(conn, [ledger.LogEntry(row.id, row.campaign_id, row.attempts, status or "call_status", None,
                                            code, params.get("CallSid"), detail[:300])], utcnow(), "twilio")
    if status == "failed" and code in INVALID_CALL_NUMBER_CODES and params.get("To"):
        consent.suppress(conn, "phone", params["To"], SuppressionReason.HARD_BOUNCE, note=f"Twilio {code}")
    return True

