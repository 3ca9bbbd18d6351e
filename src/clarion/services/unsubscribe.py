"""Unsubscribing through a signed link: the opt-out is recorded in the consent ledger with its proof."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from ..domain.consent import ALL_TOPICS, Channel, ConsentStatus
from ..store.schema import contacts, topics
from ..store.schema_delivery import deliveries
from ..tracking.engagements import has_any, record, touch_from_row
from ..tracking.links import UnsubscribeTarget
from .clock import utcnow
from .consent import ConsentService


def unsubscribe(conn: Connection, consent: ConsentService, target: UnsubscribeTarget,
                proof: dict[str, Any]) -> dict[str, Any]:
    """Opts the contact out of the link's topic (or of the whole channel when the campaign had no topic).

    A contact erased since the mail went out has nothing left to unsubscribe: the answer is the same, so
    the page tells no stranger whether an address is known.
    """
    if conn.execute(select(contacts.c.id).where(contacts.c.id == target.contact_id)).first() is None:
        return {"status": "opted_out", "channel": target.channel, "topic": target.topic}
    topic = target.topic or ALL_TOPICS
    if topic != ALL_TOPICS and conn.execute(select(topics.c.id).where(topics.c.key == topic)).first() is None:
        topic = ALL_TOPICS  # the topic was deleted since: the safe reading is "no more of this channel"
    result = consent.record(conn, target.contact_id, Channel(target.channel), ConsentStatus.OPTED_OUT, topic=topic,
                            source="unsubscribe_link", proof={**proof, "campaign_id": target.campaign_id})
    _count_for_campaign(conn, target)
    return result


def _count_for_campaign(conn: Connection, target: UnsubscribeTarget) -> None:
    """An ``unsubscribed`` engagement on the campaign's latest delivery to the contact, once: for the reports."""
    if target.campaign_id is None:
        return
    row = conn.execute(select(deliveries).where(
        deliveries.c.campaign_id == target.campaign_id, deliveries.c.contact_id == target.contact_id,
        deliveries.c.channel == target.channel, deliveries.c.status == "sent")
        .order_by(deliveries.c.id.desc()).limit(1)).first()
    if row is not None and not has_any(conn, row.id, "unsubscribed"):
        record(conn, touch_from_row(row), "unsubscribed", utcnow(), reason="unsubscribe_link")
