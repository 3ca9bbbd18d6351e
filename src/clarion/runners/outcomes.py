"""What a batch's results do to the ledger: the checkpoint.

=================  =================================================================================
channel outcome    the delivery becomes
=================  =================================================================================
sent               ``sent`` (an engagement ``received`` is recorded for segments, and the message's tracked
                   links are stored for the redirect: messages.link_tracking)
retry              ``deferred`` until now + backoff (full jitter, at least the provider's Retry-After);
                   ``failed``/``max_attempts`` once the campaign's attempts are used up
bad_address        ``failed``/``bad_address``; the address goes on the suppression list (hard_bounce)
failed             ``failed``/``rejected``; the address is kept (a 5.7.x policy refusal is the sender's)
config_error       back to ``queued`` without using an attempt; the campaign pauses with the reason
(any)              push tokens the provider declared gone are invalidated (a contact's other devices may
                   have got the message); an in-app message is stored in the inbox with its ``sent`` row
render error       ``failed``/``render_error``: the template failed for this contact
render timeout     like retry: the time cap depends on the moment (a collection, a loaded machine)
=================  =================================================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, update

from ..channels.base import DeliveryResult, Outcome
from ..channels.whatsapp import WHATSAPP_STOPPED_MARKETING
from ..config import Settings
from ..content.errors import RenderError, RenderTimeout
from ..delivery import ledger
from ..domain.consent import Channel, ConsentStatus, SuppressionReason
from ..domain.sending_time import retry_delay
from ..services import devices, inbox
from ..services.consent import ConsentService
from ..store.schema_delivery import campaigns, tracked_links
from ..store.schema_scores import engagements

TWILIO_OPTED_OUT = "21610"  # Twilio: "Attempt to send to unsubscribed recipient"
INBOX_KEEPS = timedelta(days=90)  # an unread in-app message is dropped after this long


@dataclass
class SendOutcome:
    item: Any  # dispatch.Leased
    message: Any  # the channel message (OutboundEmail ...), None when it could not be built
    result: DeliveryResult | None
    error: RenderError | None = None

    @property
    def message_id(self) -> str | None:
        return getattr(self.message, "message_id", None)


class Checkpoint:
    def __init__(self, settings: Settings, worker_id: str, rng: random.Random) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.rng = rng
        self.consent = ConsentService(settings.hash_salt)

    def apply(self, conn: Connection, campaign: Any, outcomes: list[SendOutcome], now: datetime) -> dict[str, int]:
        changes, entries, received, released, stored, links = [], [], [], [], [], []
        summary: dict[str, int] = {}
        for outcome in outcomes:
            row = outcome.item.row
            kind, change, entry = self._one(conn, campaign, outcome, now)
            summary[kind] = summary.get(kind, 0) + 1
            entries.append(entry)
            if kind == "config_error":
                released.append(row.id)
            else:
                changes.append(change)
            for gone in outcome.result.gone if outcome.result is not None else ():
                devices.invalidate(conn, gone.kind, gone.token, gone.since)
            if kind == "sent" and campaign.channel == "inapp":
                stored.append((row.id, outcome.message))
            if kind == "sent":
                received.append({"contact_id": row.contact_id, "campaign_id": campaign.id, "delivery_id": row.id,
                                 "step": row.step, "channel": campaign.channel, "action": "received",
                                 "occurred_at": now})
                links.extend({"delivery_id": row.id, "position": link.position, "url": link.url, "name": link.name}
                             for link in outcome.item.links)
        ledger.settle(conn, changes)
        ledger.release(conn, released, now)
        ledger.write_log(conn, entries, now, self.worker_id)
        inbox.deliver(conn, stored, campaign_id=campaign.id, now=now, keep_for=INBOX_KEEPS)
        if received:
            conn.execute(engagements.insert(), received)
        if links:  # a delivery is checkpointed as sent once: its links are new
            conn.execute(tracked_links.insert(), links)
        return summary

    def _one(self, conn: Connection, campaign: Any, outcome: SendOutcome, now: datetime):
        row = outcome.item.row
        if isinstance(outcome.error, RenderTimeout):  # the moment's fault (GC, load), not the template's
            result = DeliveryResult(Outcome.RETRY, code="render_timeout", detail=str(outcome.error))
            entry = ledger.LogEntry(row.id, campaign.id, row.attempts + 1, "retry", "render_timeout",
                                    "render_timeout", None, str(outcome.error))
            return "retry", self._retry(campaign, row, result, now, None), entry
        if outcome.error is not None:
            detail = str(outcome.error)
            return ("failed", ledger.change(row, "failed", reason="render_error", detail=detail, finished_at=now),
                    ledger.LogEntry(row.id, campaign.id, row.attempts + 1, "failed", "render_error", detail=detail))
        result = outcome.result
        assert result is not None
        entry = ledger.LogEntry(row.id, campaign.id, row.attempts + 1, result.outcome.value, None, result.code,
                                result.provider_id, result.detail)
        message_id = outcome.message_id
        if result.outcome is Outcome.SENT:
            return "sent", ledger.change(row, "sent", sent_at=now, finished_at=now, provider_id=result.provider_id,
                                         message_id=message_id), entry
        if result.outcome is Outcome.RETRY:
            return "retry", self._retry(campaign, row, result, now, message_id), entry
        if result.outcome is Outcome.BAD_ADDRESS:
            self._suppress(conn, campaign.channel, outcome.item, result)
            return "bad_address", ledger.change(row, "failed", reason="bad_address", detail=_said(result),
                                                finished_at=now, message_id=message_id), entry
        if result.outcome is Outcome.FAILED:
            return "failed", ledger.change(row, "failed", reason="rejected", detail=_said(result), finished_at=now,
                                           message_id=message_id), entry
        return "config_error", None, entry

    def _retry(self, campaign: Any, row: Any, result: DeliveryResult, now: datetime, message_id: str | None):
        attempts = row.attempts + 1
        if attempts >= campaign.settings.max_attempts:
            return ledger.change(row, "failed", reason="max_attempts", detail=_said(result), finished_at=now,
                                 message_id=message_id)
        delay = retry_delay(attempts - 1, base=self.settings.retry_base_seconds, cap=self.settings.retry_cap_seconds,
                            rng=self.rng, retry_after=result.retry_after)
        return ledger.change(row, "deferred", reason="retry", detail=_said(result),
                             due_at=now + timedelta(seconds=delay), message_id=message_id)

    def _suppress(self, conn: Connection, channel: str, item: Any, result: DeliveryResult) -> None:
        if channel == "sms" and result.code == TWILIO_OPTED_OUT:
            # The number replied STOP to the carrier: that is the person's opt-out, not a dead address.
            self.consent.record(conn, item.row.contact_id, Channel.SMS, ConsentStatus.OPTED_OUT,
                                source="sms_keyword", proof={"keyword": f"STOP (provider code {result.code})"})
            return
        if channel == "whatsapp":
            if result.code == WHATSAPP_STOPPED_MARKETING:  # the person blocked our marketing in WhatsApp
                self.consent.record(conn, item.row.contact_id, Channel.WHATSAPP, ConsentStatus.OPTED_OUT,
                                    source="whatsapp_provider",
                                    proof={"keyword": f"stopped marketing (provider code {result.code})"})
            return  # a number not on WhatsApp may still take texts and calls: the phone is not suppressed
        # Push channels have no address to suppress: their gone tokens are invalidated in ``apply``.
        kind = "email" if channel == "email" else "phone" if channel in ("sms", "voice") else None
        if kind is not None:
            self.consent.suppress(conn, kind, item.address, SuppressionReason.HARD_BOUNCE, note=_said(result)[:500])

    def auto_pause(self, conn: Connection, campaign: Any, now: datetime) -> None:
        options = campaign.settings
        seen, rate = ledger.recent_error_rate(conn, campaign.id, options.error_window)
        # Judged only on a full window, so three bounces among the first five sends do not stop a campaign.
        if seen >= options.error_window and rate > options.error_rate_pause:
            reason = (f"auto-paused: {rate:.0%} of the last {seen} attempts failed "
                      f"(threshold {options.error_rate_pause:.0%})")
            conn.execute(update(campaigns).where(campaigns.c.id == campaign.id, campaigns.c.status == "running")
                         .values(status="paused", status_reason=reason, updated_at=now))


def _said(result: DeliveryResult) -> str:
    return " ".join(part for part in (result.code, result.detail) if part)
