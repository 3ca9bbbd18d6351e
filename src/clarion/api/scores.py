"""The native REST API for scores (admin keys): RFM, lead scores and the BG/NBD + Gamma-Gamma predictions.

The same semantics as ``clarion rfm`` and ``clarion predictions``: a reference date (``as_of``) means the
end of that day, UTC. Recomputes change many contacts at once: refresh segments using scores afterwards.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from ..domain.errors import FieldError
from ..domain.rules import MAX_DAYS
from ..scoring.bgnbd import FitError
from ..services import predictions as prediction_service
from ..services import rfm as rfm_service
from ..services.clock import end_of_day
from ..services.lead_scores import LeadScoreService, LeadScoring
from ..services.segments import SegmentService
from .auth import ClarionDep, require_admin
from .errors import ApiError

rfm_router = APIRouter(prefix="/api/rfm", tags=["Scores"], dependencies=[Depends(require_admin)])
predictions_router = APIRouter(prefix="/api/predictions", tags=["Scores"], dependencies=[Depends(require_admin)])
leads_router = APIRouter(prefix="/api/leads", tags=["Scores"], dependencies=[Depends(require_admin)])

MAX_LIST = 10_000
ListLimit = Annotated[int, Query(ge=1, le=MAX_LIST, description=f"How many, 1..{MAX_LIST}")]
Days = Annotated[int, Field(ge=1, le=MAX_DAYS)]
AS_OF_DOC = "Reference date (YYYY-MM-DD): orders up to the end of that day, UTC; default now"


class RfmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_days: Days | None = Field(None, description="Orders in the last N days only; default all time")
    as_of: date | None = Field(None, description=AS_OF_DOC)


class FitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: date | None = Field(None, description=AS_OF_DOC)
    horizon_days: Days = Field(90, description="Expected purchases in the next N days")
    clv_days: Days = Field(365, description="Lifetime value over the next N days")


def as_of_moment(day: date | None, window_days: int | None = None) -> datetime | None:
    """The last moment of ``day`` in UTC; refused when the window before it would start before year 1."""
    if day is None:
        return None
    moment = end_of_day(day)
    try:
        moment - timedelta(days=window_days or 0)
    except OverflowError:
        raise FieldError("as_of", f"a window of {window_days} days before {day} starts before year 1") from None
    return moment


@rfm_router.post("/compute", summary="Score every customer 1..5 on recency, frequency and monetary value")
def rfm_compute(clarion: ClarionDep, body: RfmBody | None = None) -> dict[str, Any]:
    body = body or RfmBody()
    as_of = as_of_moment(body.as_of, body.window_days)
    with clarion.store.write() as conn:
        return rfm_service.compute(conn, window_days=body.window_days, as_of=as_of).as_dict()


@rfm_router.get("/summary", summary="Contacts per named RFM segment, with their average orders and revenue")
def rfm_summary(clarion: ClarionDep) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"items": rfm_service.summary(conn)}


@rfm_router.get("/transitions", summary="The latest moves between RFM segments, newest first")
def rfm_transitions(clarion: ClarionDep, limit: ListLimit = 100) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"limit": limit, "items": rfm_service.transitions(conn, limit=limit)}


@predictions_router.post("/fit", summary="Fit BG/NBD and Gamma-Gamma and store each customer's predictions",
                         responses={422: {"description": "An invalid field, too few customers, or data the "
                                                        "models cannot be fitted to"}})
def predictions_fit(clarion: ClarionDep, body: FitBody | None = None) -> dict[str, Any]:
    body = body or FitBody()
    settings = prediction_service.PredictionSettings(horizon_days=body.horizon_days, clv_horizon_days=body.clv_days,
                                                     as_of=as_of_moment(body.as_of))
    try:
        with clarion.store.write() as conn:
            return prediction_service.predict_and_store(conn, settings).as_dict()
    except prediction_service.NotEnoughData as exc:
        raise ApiError(422, "not_enough_data", str(exc)) from None
    except FitError as exc:  # the data, not the server: too few or too uniform customers for a finite optimum
        raise ApiError(422, "fit_failed", str(exc)) from None


@predictions_router.get("/models", summary="The latest fitted parameters of each model")
def predictions_models(clarion: ClarionDep) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"items": list(prediction_service.latest_fits(conn).values())}


@predictions_router.get("/top", summary="The contacts with the highest predicted lifetime value")
def predictions_top(clarion: ClarionDep, limit: ListLimit = 10) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"limit": limit, "items": prediction_service.top_customers(conn, limit=limit)}


@leads_router.get("/config", summary="The lead scoring rules")
def leads_config(clarion: ClarionDep) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return LeadScoreService.config(conn).model_dump(mode="json", exclude_none=True)


@leads_router.put("/config", summary="Replace the lead scoring rules (checked before anything is stored)")
def leads_set_config(clarion: ClarionDep, body: LeadScoring) -> dict[str, Any]:
    with clarion.store.write() as conn:
        context = SegmentService(clarion.settings).context(conn)
        config = LeadScoreService.set_config(conn, body.model_dump(mode="json", exclude_none=True), context)
    return config.model_dump(mode="json", exclude_none=True)


@leads_router.post("/score", summary="Compute every contact's lead score from the rules")
def leads_score(clarion: ClarionDep) -> dict[str, Any]:
    with clarion.store.write() as conn:
        return LeadScoreService().compute(conn, SegmentService(clarion.settings).context(conn)).as_dict()


@leads_router.get("/top", summary="The contacts with the highest lead scores")
def leads_top(clarion: ClarionDep, limit: ListLimit = 10) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"limit": limit, "items": LeadScoreService.top(conn, limit=limit)}
