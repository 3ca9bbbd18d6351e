"""Response reports: a campaign's figures, lift and breakdowns, and the ranking of "which messages work".

Read by ``clarion reports``, ``GET /api/reports/...`` and the demo. Everything counts human engagement;
machine opens and clicks (privacy proxies, link scanners: tracking.classify) are always reported beside
them, and ``machine=True`` adds them to the breakdowns and the ranking's figures too.

Before reading, :meth:`ReportService.attribute` runs the attribution pass, so conversions recorded late (an
order imported a day after it happened) are credited and the report changes with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from ...config import Settings
from ...domain.campaigns import CampaignSettings
from ...domain.errors import FieldError, NotFound
from ...domain.ids import is_id_text
from ...store.schema_delivery import campaigns, templates
from ...store.schema_scores import segments
from ...store.sql import tune_for_analytics
from ..attribution import AttributionService
from .breakdowns import DIMENSIONS, by_dimensions, totals_row
from .figures import bounces, engagement_counts, ledger_counts, summary
from .lift import lift
from .ranking import MIN_SENT, By, Metric, messages_ranking

__all__ = ["DIMENSIONS", "MIN_SENT", "ReportService", "campaign_report", "messages_ranking"]


def campaign_row(conn: Connection, name_or_id: str | int) -> Any:
    """The campaign by name or id (digits), with its template and segment names."""
    by_id = isinstance(name_or_id, int) or is_id_text(str(name_or_id))
    key = campaigns.c.id == int(name_or_id) if by_id else campaigns.c.name == name_or_id
    row = conn.execute(select(campaigns, templates.c.name.label("template_name"), segments.c.name.label("segment_name"))
                       .join(templates, templates.c.id == campaigns.c.template_id)
                       .outerjoin(segments, segments.c.id == campaigns.c.segment_id).where(key)).first()
    if row is None:
        raise NotFound("campaign", name_or_id)
    return row


def campaign_report(conn: Connection, campaign: str | int, *, machine: bool = False, by: Sequence[str] = (),
                    default_timezone: str = "UTC") -> dict[str, Any]:
    """A campaign's figures (figures.py), its lift against the global holdout (lift.py), and a breakdown per
    name in ``by`` (breakdowns.DIMENSIONS). ``default_timezone``: for recipients without a zone (hour, weekday)."""
    unknown = [name for name in by if name not in DIMENSIONS]
    if unknown:
        raise FieldError("by", f"unknown breakdown {unknown[0]!r}; one of {', '.join(DIMENSIONS)}")
    tune_for_analytics(conn)
    row = campaign_row(conn, campaign)
    ledger = ledger_counts(conn, row.id)
    engaged = engagement_counts(conn, row.id)
    figures = summary(ledger, engaged, bounces(conn, row.id), {row.channel})
    goal = CampaignSettings.model_validate(row.settings or {}).goal
    report = {"campaign": {"id": row.id, "name": row.name, "channel": row.channel, "status": row.status,
                           "template": row.template_name, "segment": row.segment_name,
                           "started_at": row.started_at, "finished_at": row.finished_at},
              **figures, "lift": lift(conn, row, goal, figures["sent"], ledger["sent_contacts"])}
    totals = totals_row(figures, (engaged.of("opened", True).unique, engaged.of("clicked", True).unique))
    names = {"channel": row.channel, "template": row.template_name, "segment": row.segment_name}
    report["breakdowns"] = by_dimensions(conn, row, by, default_zone=default_timezone, totals=totals, names=names,
                                      machine=machine)
    return report


class ReportService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def attribute(self, conn: Connection) -> dict[str, Any]:
        """The attribution pass (in a write transaction): goal events that arrived since the last pass are
        credited to their last touch, so the report counts them."""
        return AttributionService(self.settings).run(conn)

    def campaign(self, conn: Connection, name: str | int, *, by: Sequence[str] = (),
                 machine: bool = False) -> dict[str, Any]:
        return campaign_report(conn, name, machine=machine, by=by, default_timezone=self.settings.default_timezone)

    def messages(self, conn: Connection, *, metric: Metric = "click", by: By = "template", min_sent: int = MIN_SENT,
                 machine: bool = False) -> list[dict[str, Any]]:
        return messages_ranking(conn, metric=metric, by=by, min_sent=min_sent, machine=machine)
