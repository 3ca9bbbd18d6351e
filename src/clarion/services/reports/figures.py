"""A campaign's response figures, from the send ledger and the engagement rows.

Definitions (docs/reports.md):

- ``sent``: deliveries in state ``sent``. Every rate below is "per message sent".
- unique opens and clicks: deliveries with at least one such engagement; totals: every engagement row, so a
  second click on the same link counts in the total and once in the unique count.
- human and machine engagement are counted apart (``engagements.machine``, tracking.classify); the rates
  use human engagement only.
- CTR = unique human clicks / sent; CTOR = unique human clicks / unique human opens.
- conversions: ``converted`` rows (each goal event is credited once, by the attribution pass); the
  conversion rate counts converting deliveries / sent, so it is a proportion like the others.
- bounces: deliveries with a ``bounced`` engagement (an ESP's asynchronous bounce) or failed in the ledger
  with ``bad_address`` (a synchronous 550), each delivery once.
- ``delivered``: deliveries with a provider's ``delivered`` receipt. Only some channels have receipts; for
  the others, and where none was ever recorded (receipts not configured), it is None, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, case, func, select, union

from ...store.schema_delivery import deliveries
from ...store.schema_scores import engagements

# Channels whose providers can tell Clarion a message arrived: Twilio status callbacks (SMS), WhatsApp
# statuses, and ESP event webhooks (SES, SendGrid) for email sent through their relays.
RECEIPT_CHANNELS = frozenset({"email", "sms", "whatsapp"})
# What a report reads from the engagement rows ("received" is one row per sent message: the ledger says it).
RESPONSE_ACTIONS = ("delivered", "opened", "clicked", "converted", "bounced", "complained", "unsubscribed")
ENGAGED = ("opened", "clicked", "converted")  # what the breakdowns count


@dataclass
class Counts:
    """Unique (distinct deliveries) and total (rows) of one action, human or machine."""

    unique: int = 0
    total: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"unique": self.unique, "total": self.total}


@dataclass
class Engagement:
    """The engagement rows of a campaign, per (action, machine)."""

    counts: dict[tuple[str, bool], Counts] = field(default_factory=dict)
    revenue: float = 0.0

    def of(self, action: str, machine: bool = False) -> Counts:
        return self.counts.get((action, machine), Counts())

    def either(self, action: str) -> int:
        """Messages with ``action``, whoever did it (receipts, complaints and unsubscribes are never machine)."""
        return self.of(action).unique + self.of(action, True).unique


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def ledger_counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    """Deliveries per state; ``sent_contacts``: sent to a contact not erased since; ``bad_address``: failed
    because the address does not exist."""
    d = deliveries.c
    counts, sent_contacts = {}, 0
    for status, count, with_contact in conn.execute(select(d.status, func.count(), func.count(d.contact_id))
                                                    .where(d.campaign_id == campaign_id).group_by(d.status)):
        counts[status] = count
        sent_contacts = with_contact if status == "sent" else sent_contacts
    counts["sent_contacts"] = sent_contacts
    counts["bad_address"] = conn.execute(select(func.count()).where(
        d.campaign_id == campaign_id, d.status == "failed", d.reason == "bad_address")).scalar_one()
    return counts


def engagement_counts(conn: Connection, campaign_id: int) -> Engagement:
    e = engagements.c
    query = (select(e.action, e.machine, func.count(), func.count(e.delivery_id.distinct()),
                    func.coalesce(func.sum(e.revenue), 0.0))
             .where(e.campaign_id == campaign_id, e.action.in_(RESPONSE_ACTIONS)).group_by(e.action, e.machine))
    result = Engagement()
    for action, machine, total, unique, revenue in conn.execute(query):
        result.counts[(action, bool(machine))] = Counts(unique, total)
        if action == "converted":
            result.revenue += float(revenue)
    return result


def bounces(conn: Connection, campaign_id: int) -> int:
    """Deliveries that bounced, asynchronously (engagement) or synchronously (ledger), each once."""
    e, d = engagements.c, deliveries.c
    bounced = union(
        select(e.delivery_id.label("id")).where(e.campaign_id == campaign_id, e.action == "bounced",
                                                e.delivery_id.is_not(None)),
        select(d.id.label("id")).where(d.campaign_id == campaign_id, d.status == "failed", d.reason == "bad_address"),
    ).subquery("bounced")
    return conn.execute(select(func.count()).select_from(bounced)).scalar_one()


def delivered(channels: set[str], receipts: int) -> tuple[int | None, str | None]:
    """The delivered count, or None with the reason it is unknown."""
    if not channels & RECEIPT_CHANNELS:
        return None, f"{'/'.join(sorted(channels)) or 'this channel'} has no delivery receipts"
    if receipts == 0:
        return None, "no delivery receipt was recorded (are the provider's receipts or webhooks configured?)"
    return receipts, None


def summary(ledger: dict[str, int], engaged: Engagement, bounced: int, channels: set[str]) -> dict[str, Any]:
    """The headline figures of a campaign (see the module's docstring for each definition)."""
    sent = ledger.get("sent", 0)
    opens, clicks = engaged.of("opened"), engaged.of("clicked")
    converted = engaged.of("converted")
    delivered_count, delivered_note = delivered(channels, engaged.either("delivered"))
    return {
        "sent": sent, "delivered": delivered_count, "delivered_note": delivered_note,
        "human": {"opens": opens.as_dict(), "clicks": clicks.as_dict()},
        "machine": {"opens": engaged.of("opened", True).as_dict(), "clicks": engaged.of("clicked", True).as_dict()},
        "ctr": ratio(clicks.unique, sent), "ctor": ratio(clicks.unique, opens.unique),
        "conversions": converted.total, "converting_messages": converted.unique,
        "conversion_rate": ratio(converted.unique, sent),
        "revenue": round(engaged.revenue, 2), "revenue_per_message": ratio(engaged.revenue, sent),
        "unsubscribes": engaged.either("unsubscribed"), "complaints": engaged.either("complained"),
        "bounces": bounced,
    }


def per_delivery(campaign_id: int, *, machine: bool = False):
    """One row per engaged message of the campaign, a subquery for the breakdowns: 0/1 flags for a human open,
    click and conversion, its conversions and their revenue, and (``machine``) 0/1 flags for machine opens and
    clicks."""
    e = engagements.c

    def flag(action: str, is_machine: bool | None = False):
        condition = e.action == action if is_machine is None else and_(e.action == action, e.machine.is_(is_machine))
        return func.max(case((condition, 1), else_=0))

    columns = [e.delivery_id, flag("opened").label("opened"), flag("clicked").label("clicked"),
               flag("converted", None).label("converted"),
               func.sum(case((e.action == "converted", 1), else_=0)).label("conversions"),
               func.coalesce(func.sum(case((e.action == "converted", e.revenue), else_=None)), 0.0).label("revenue")]
    if machine:
        columns += [flag("opened", True).label("machine_opened"), flag("clicked", True).label("machine_clicked")]
    # (rows without a delivery group as one NULL row, which joins no message)
    return (select(*columns).where(e.campaign_id == campaign_id, e.action.in_(ENGAGED))
            .group_by(e.delivery_id).subquery("engaged"))
