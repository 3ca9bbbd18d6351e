"""Which messages get the most response: campaigns or templates ranked by what their rate surely is at least.

A raw rate ranks a template sent to 12 people with 3 clicks (25%) above one sent to 40,000 with 8% clicks,
though the first could as well be a 9% template that got lucky. Rows are ranked by the lower bound of the
Wilson 95% interval of their rate instead: the rate we can be confident a message reaches, which is close
to the rate itself for large sends and far below it for small ones (3/12: 8.9%; 3,200/40,000: 7.7%).

At 95% that alone still puts 3 of 12 first: its lower bound (8.9%) is above the big one's (7.7%). A rate
measured on a dozen people says little about the next thousand, so rows resting on fewer than
``min_sent`` messages (30 by default: the usual floor for a proportion's interval to mean much) are not
ranked: they follow the ranked rows, marked ``ranked: false``, still with their figures. Every row says how
many messages it rests on (``n``).

Unit: messages sent (deliveries in state ``sent``); a success is a message with at least one human open,
human click, or conversion (``machine=True`` counts machine opens and clicks too, to see how much they add).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, func, select

from ...domain.errors import FieldError
from ...store.schema_delivery import campaigns, deliveries, templates
from ...store.schema_scores import engagements
from .intervals import wilson

Metric = Literal["click", "open", "conversion"]
By = Literal["template", "campaign"]
ACTIONS = {"click": "clicked", "open": "opened", "conversion": "converted"}
MIN_SENT = 30


@dataclass(frozen=True)
class Measured:
    key: str
    n: int
    successes: int
    campaigns: int = 1


def rank(rows: Iterable[Measured], min_sent: int = MIN_SENT) -> list[dict[str, Any]]:
    """Rows as dicts ordered by the Wilson 95% lower bound of their rate, those under ``min_sent`` last."""
    result = []
    for row in rows:
        bounds = wilson(row.successes, row.n)
        result.append({"key": row.key, "campaigns": row.campaigns, "n": row.n, "successes": row.successes,
                       "rate": row.successes / row.n if row.n else None,
                       "lower": bounds.lower if bounds else None, "upper": bounds.upper if bounds else None,
                       "ranked": row.n >= min_sent and row.n > 0})
    result.sort(key=lambda r: (not r["ranked"], -(r["lower"] or 0.0), -r["n"], r["key"]))
    return result


def _measured(conn: Connection, metric: Metric, machine: bool) -> dict[int, tuple[int, int]]:
    """Per campaign id: (messages sent, messages with the metric's action)."""
    d, e = deliveries.c, engagements.c
    sent = dict(conn.execute(
        select(d.campaign_id, func.count()).where(d.status == "sent").group_by(d.campaign_id)).all())
    who = [] if machine or metric == "conversion" else [e.machine.is_(False)]
    hits = dict(conn.execute(
        select(e.campaign_id, func.count(e.delivery_id.distinct()))
        .where(e.action == ACTIONS[metric], e.campaign_id.is_not(None), *who).group_by(e.campaign_id)).all())
    return {campaign_id: (count, hits.get(campaign_id, 0)) for campaign_id, count in sent.items()}


def messages_ranking(conn: Connection, *, metric: Metric = "click", by: By = "template", min_sent: int = MIN_SENT,
                     machine: bool = False) -> list[dict[str, Any]]:
    """Campaigns or templates by the Wilson lower bound of their open, click or conversion rate."""
    if metric not in ACTIONS:
        raise FieldError("metric", f"one of {', '.join(ACTIONS)}")
    if by not in ("template", "campaign"):
        raise FieldError("by", "template or campaign")
    measured = _measured(conn, metric, machine)
    names = conn.execute(select(campaigns.c.id, campaigns.c.name, templates.c.name)
                         .join(templates, templates.c.id == campaigns.c.template_id)).all()
    groups: dict[str, Measured] = {}
    for campaign_id, campaign_name, template_name in names:
        if campaign_id not in measured:  # nothing sent yet
            continue
        n, successes = measured[campaign_id]
        key = template_name if by == "template" else campaign_name
        found = groups.get(key)
        groups[key] = Measured(key, n, successes) if found is None else Measured(
            key, found.n + n, found.successes + successes, found.campaigns + 1)
    rows = rank(groups.values(), min_sent)
    return [{("template" if by == "template" else "campaign"): row.pop("key"), "metric": metric, **row}
            for row in rows]
