"""Lift against the global holdout: did the campaign make people do its goal more than they would have anyway?

The holdout (``delivery.policies``: a stable share of contacts that never gets marketing messages) is skipped
with reason ``holdout`` when its delivery comes up, so each campaign has its own untreated group, picked by
the same random bucket as the treated one. For both groups the same question is asked of the raw events
(not of the attributed conversions, which only the treated group can have): did the contact do the goal
event (``CampaignSettings.goal``: its name and property filter) within ``goal.click_days`` (the longest
attribution window) after the moment the delivery was decided? That is ``sent_at`` for a sent message and
``finished_at`` (the skip) for a held-out one.

- rate = contacts with at least one goal event in their window / contacts in the group;
- absolute lift = treated rate − holdout rate, with a 95% interval by Newcombe's hybrid score method
  (method 10 of Newcombe 1998, built on the two Wilson intervals: see :mod:`.intervals`), which keeps its
  coverage for rates of a few percent and small holdouts, where the normal approximation does not;
- relative lift = absolute lift / holdout rate (None when the holdout rate is 0);
- incremental revenue = (treated revenue per contact − holdout revenue per contact) × messages sent, the
  revenue summed over every goal event in the window (``events.revenue``), converted to the workspace
  currency with the user's rates (services.currency); an amount in a currency without a rate is left out
  and its currency listed in ``missing_rates``.

Deliveries whose contact was erased (``contact_id`` NULL) are left out of both groups: their events are gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select

from ...domain.campaigns import ConversionGoal
from ...segments.sql_portable import json_boolean, json_number, json_text, key_bind
from ...store.schema import events
from ...store.schema_delivery import deliveries
from ...store.types import days_since
from ..currency import CurrencySettings, get_currency
from .intervals import difference, wilson

METHOD = "Newcombe hybrid score interval (Wilson), 95%"


@dataclass(frozen=True)
class Group:
    contacts: int
    converters: int
    revenue: float  # in the workspace currency
    missing_rates: tuple[str, ...] = ()  # currencies of goal events whose revenue had no rate (left out)

    @property
    def rate(self) -> float | None:
        return self.converters / self.contacts if self.contacts else None

    def as_dict(self) -> dict[str, Any]:
        bounds = wilson(self.converters, self.contacts)
        return {"contacts": self.contacts, "converters": self.converters, "rate": self.rate,
                "rate_ci95": [bounds.lower, bounds.upper] if bounds else None, "revenue": round(self.revenue, 2),
                "revenue_per_contact": self.revenue / self.contacts if self.contacts else None}


def goal_filter(goal: ConversionGoal) -> list:
    """``events`` conditions for the goal: its name and each property equal to its value, type and all."""
    conditions = [events.c.name == goal.event]
    for key, value in goal.where.items():
        if isinstance(value, bool):  # before int: True is an int to Python, not to JSON
            conditions.append(json_boolean(events.c.properties, key_bind(key)) == value)
        elif isinstance(value, int | float):
            conditions.append(json_number(events.c.properties, key_bind(key)) == float(value))
        else:
            conditions.append(json_text(events.c.properties, key_bind(key)) == value)
    return conditions


def _holdout_size(conn: Connection, campaign_id: int) -> int:
    d = deliveries.c
    return conn.execute(select(func.count()).where(d.campaign_id == campaign_id, d.status == "skipped",
                                                   d.reason == "holdout", d.contact_id.is_not(None))).scalar_one()


def _group(conn: Connection, campaign_id: int, goal: ConversionGoal, contacts: int, held_out: bool,
           span: tuple[datetime | None, datetime | None], currency: CurrencySettings) -> Group:
    """The group's contacts with a goal event in their window, and the revenue of those events in the
    workspace currency."""
    if not contacts:
        return Group(0, 0, 0.0)
    d = deliveries.c
    at = d.finished_at if held_out else d.sent_at
    members = [d.campaign_id == campaign_id, d.contact_id.is_not(None)]
    members += [d.status == "skipped", d.reason == "holdout"] if held_out else [d.status == "sent"]
    since, until = span
    bounds = [events.c.occurred_at >= since] if since else []
    bounds += [events.c.occurred_at <= until] if until else []
    goal_events = select(events.c.contact_id, events.c.occurred_at, events.c.revenue, events.c.currency).where(
        *goal_filter(goal), *bounds).subquery("goal_events")
    window = and_(goal_events.c.contact_id == d.contact_id, goal_events.c.occurred_at >= at,
                  days_since(at, goal_events.c.occurred_at) <= goal.click_days)
    # One row per (message, goal event in its window): a few per converting contact, summed here so that each
    # amount is converted from its own currency.
    found = conn.execute(select(d.id, goal_events.c.revenue, goal_events.c.currency)
                         .select_from(deliveries.join(goal_events, window)).where(*members)).all()
    revenue, missing = 0.0, set()
    for _id, amount, code in found:
        converted = currency.convert(amount, code)
        revenue += converted.amount or 0.0
        missing.update([converted.missing_rate] if converted.missing_rate else [])
    return Group(contacts, len({row[0] for row in found}), revenue, tuple(sorted(missing)))


def lift(conn: Connection, campaign: Any, goal: ConversionGoal, sent: int, sent_contacts: int) -> dict[str, Any]:
    """The lift report of a campaign row (see the module's docstring): ``sent`` messages, ``sent_contacts`` of
    them to contacts not erased since."""
    # Goal events can only count from the campaign's start until its end plus the window: bounds for the scan.
    span = (campaign.started_at or campaign.created_at,
            campaign.finished_at + timedelta(days=goal.click_days) if campaign.finished_at else None)
    currency = get_currency(conn)
    holdout = _group(conn, campaign.id, goal, _holdout_size(conn, campaign.id), True, span, currency)
    base = {"goal": goal.event, "where": goal.where, "window_days": goal.click_days, "method": METHOD}
    if not holdout.contacts:
        return {**base, "absolute": None, "relative": None, "ci95": None, "incremental_revenue": None,
                "reason": "no holdout: no delivery of this campaign was skipped for the global holdout "
                          "(set holdout_percent in the workspace delivery settings)"}
    treated = _group(conn, campaign.id, goal, sent_contacts, False, span, currency)
    return {**base, **_compare(treated, holdout, sent), "currency": currency.currency,
            "missing_rates": sorted(set(treated.missing_rates) | set(holdout.missing_rates)),
            "treated": treated.as_dict(), "holdout": holdout.as_dict()}


def _compare(treated: Group, holdout: Group, sent: int) -> dict[str, Any]:
    if not treated.contacts:
        return {"absolute": None, "relative": None, "ci95": None, "incremental_revenue": None,
                "reason": "nothing was sent yet"}
    absolute = treated.rate - holdout.rate
    bounds = difference(treated.converters, treated.contacts, holdout.converters, holdout.contacts)
    per_contact = treated.revenue / treated.contacts - holdout.revenue / holdout.contacts
    return {"absolute": absolute, "relative": absolute / holdout.rate if holdout.rate else None,
            "ci95": [bounds.lower, bounds.upper], "incremental_revenue": round(per_contact * sent, 2),
            "reason": None if holdout.rate else "relative lift needs holdout conversions (none yet)"}
