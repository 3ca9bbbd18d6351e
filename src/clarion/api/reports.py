"""The REST API for response reports (admin keys), the same as ``clarion reports``.

Each request runs the attribution pass first (so conversions recorded late are credited), then reads the
report in its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from ..services.reports import MIN_SENT, ReportService
from .auth import ClarionDep, require_admin

router = APIRouter(prefix="/api/reports", tags=["Reports"], dependencies=[Depends(require_admin)])

Dimension = Literal["channel", "template", "locale", "segment", "hour", "weekday", "rfm"]
MIN_SENT_DOC = "Rows resting on fewer messages sent are listed last, unranked"
Machine = Annotated[bool, Query(description="Machine opens and clicks (proxies, scanners) in breakdowns and counts")]


def _refreshed(clarion: Any, read: Callable[[ReportService, Any], Any]) -> Any:
    service = ReportService(clarion.settings)
    with clarion.store.write() as conn:
        service.attribute(conn)
    with clarion.store.read() as conn:
        return read(service, conn)


@router.get("/campaigns/{name}", summary="A campaign's sends, opens, clicks, conversions, revenue and lift")
def campaign_report(clarion: ClarionDep,
                    name: Annotated[str, Path(min_length=1, max_length=1000, description="The name or id")],
                    by: Annotated[list[Dimension] | None, Query(max_length=7, description="Breakdowns to add")] = None,
                    machine: Machine = False) -> dict[str, Any]:
    return _refreshed(clarion, lambda service, conn: service.campaign(conn, name, by=by or (), machine=machine))


@router.get("/messages", summary="Which messages get the most response: ranked by the Wilson 95% lower bound")
def messages_ranking(clarion: ClarionDep, metric: Literal["click", "open", "conversion"] = "click",
                     by: Literal["template", "campaign"] = "template",
                     min_sent: Annotated[int, Query(ge=1, le=1_000_000_000, description=MIN_SENT_DOC)] = MIN_SENT,
                     machine: Machine = False) -> dict[str, Any]:
    items = _refreshed(clarion, lambda service, conn: service.messages(conn, metric=metric, by=by, min_sent=min_sent,
                                                                       machine=machine))
    return {"metric": metric, "by": by, "min_sent": min_sent, "items": items}
