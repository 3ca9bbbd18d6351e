"""Fit BG/NBD and Gamma-Gamma on the customers' purchase histories and store per-contact predictions.

Purchases are the ``Order Completed`` events up to the reference time, one per contact and UTC day
(same-day orders are one purchase worth their sum, as in the models' papers and lifetimes). Time is
counted in periods of ``period_days`` (7: weeks, the paper's unit). Stored per contact:
probability alive (churn probability is its complement), expected purchases in the next
``horizon_days``, expected order value (Gamma-Gamma; the population mean for one-time buyers) and
lifetime value: expected discounted revenue over ``clv_horizon_days`` at ``annual_discount_rate``.
The fitted parameters go to ``model_fits`` with the settings that produced them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from time import perf_counter
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select, update

from ..domain.errors import ClarionError
from ..domain.events import ORDER_COMPLETED
from ..scoring import bgnbd, gamma_gamma
from ..scoring.summary import PurchaseSummary, summarize
from ..store.schema import contact_aggregates, contacts, events
from ..store.schema_scores import contact_scores, model_fits
from ..store.sql import insert_for, tune_for_analytics
from ..store.types import utc_day
from .clock import utcnow

MIN_CUSTOMERS = 20  # fewer purchase histories than this cannot pin down four BG/NBD parameters
MIN_REPEAT_CUSTOMERS = 10  # Gamma-Gamma needs repeat buyers' average spend
WRITE_CHUNK = 10_000  # contact rows per upsert statement


class NotEnoughData(ClarionError):
    """Too few purchase histories to fit the models."""


@dataclass(frozen=True)
class PredictionSettings:
    period_days: float = 7.0
    horizon_days: int = 90
    clv_horizon_days: int = 365
    annual_discount_rate: float = 0.10
    as_of: datetime | None = None  # the end of observation; default now


@dataclass
class PredictionResult:
    customers: int
    bgnbd: dict[str, Any]
    gamma_gamma: dict[str, Any] | None
    settings: dict[str, Any]
    fit_seconds: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_summary(conn: Connection, as_of: datetime, period_days: float) -> PurchaseSummary:
    """Each customer's frequency, recency, age and average repeat spend, from the order events."""
    day = utc_day(events.c.occurred_at)
    tune_for_analytics(conn)
    rows = conn.execute(
        select(events.c.contact_id, day, func.coalesce(func.sum(events.c.revenue), 0.0))
        .where(events.c.name == ORDER_COMPLETED, events.c.occurred_at <= as_of)
        .group_by(events.c.contact_id, day))
    purchases = ((contact_id, date.fromisoformat(text), float(value)) for contact_id, text, value in rows)
    return summarize(purchases, observation_end=as_of.date(), period_days=period_days)


def fit(summary: PurchaseSummary) -> tuple[bgnbd.BgNbdParams, gamma_gamma.GammaGammaParams | None]:
    if len(summary) < MIN_CUSTOMERS:
        raise NotEnoughData(f"{len(summary)} customers with orders; the models need at least {MIN_CUSTOMERS}")
    params = bgnbd.fit_bgnbd(summary.frequency, summary.recency, summary.T)
    # Repeat buyers with a positive average (CDNOW has some $0 orders; the Gamma-Gamma density needs > 0)
    paying = (summary.frequency > 0) & (summary.monetary_value > 0)
    spend = None
    if paying.sum() >= MIN_REPEAT_CUSTOMERS:
        spend = gamma_gamma.fit_gamma_gamma(summary.frequency[paying], summary.monetary_value[paying])
    return params, spend


def predict_and_store(conn: Connection, settings: PredictionSettings | None = None) -> PredictionResult:
    """Fit both models on every customer's history, store the fits and each customer's predictions."""
    settings = settings or PredictionSettings()
    started = perf_counter()
    as_of = settings.as_of or utcnow()
    summary = load_summary(conn, as_of, settings.period_days)
    fit_started = perf_counter()
    params, spend = fit(summary)
    fit_seconds = perf_counter() - fit_started
    columns = _predictions(summary, params, spend, settings)
    now = utcnow()
    _write_scores(conn, summary.keys, columns, now)
    recorded = {**asdict(settings), "as_of": as_of.isoformat()}
    conn.execute(model_fits.insert(), [
        {"model": "bgnbd", "params": _params(params, only_model=True), "customers": params.customers,
         "log_likelihood": params.log_likelihood, "settings": recorded, "fitted_at": now},
        *([{"model": "gamma_gamma", "params": _params(spend, only_model=True), "customers": spend.customers,
            "log_likelihood": spend.log_likelihood, "settings": recorded, "fitted_at": now}] if spend else [])])
    return PredictionResult(len(summary), _params(params), _params(spend) if spend else None, recorded,
                            round(fit_seconds, 3), round(perf_counter() - started, 3))


def _predictions(summary: PurchaseSummary, params: bgnbd.BgNbdParams,
                 spend: gamma_gamma.GammaGammaParams | None, settings: PredictionSettings) -> dict[str, np.ndarray]:
    f, r, t = summary.frequency, summary.recency, summary.T
    horizon = settings.horizon_days / settings.period_days
    result = {"p_alive": bgnbd.probability_alive(params, f, r, t),
              "expected_purchases": bgnbd.expected_purchases(params, horizon, f, r, t)}
    if spend is None:
        return result
    periods = int(round(settings.clv_horizon_days / settings.period_days))
    per_period_discount = (1 + settings.annual_discount_rate) ** (settings.period_days / 365.25) - 1
    # Repeat buyers whose orders were all free count as one-time buyers for spend: the population mean.
    spend_frequency = np.where(summary.monetary_value > 0, f, 0)
    result["expected_order_value"] = gamma_gamma.expected_average_value(spend, spend_frequency,
                                                                        summary.monetary_value)
    result["lifetime_value"] = result["expected_order_value"] * gamma_gamma.discounted_purchases(
        params, f, r, t, periods=periods, discount_rate=per_period_discount)
    return result


PREDICTION_COLUMNS = ("p_alive", "expected_purchases", "expected_order_value", "lifetime_value", "predicted_at")


def _write_scores(conn: Connection, keys: np.ndarray, columns: dict[str, np.ndarray], at: datetime) -> None:
    """This fit's predictions replace every earlier one: contacts outside it (or a Gamma-Gamma that could
    not be fitted this time) keep no stale values."""
    s = contact_scores
    conn.execute(update(s).where(s.c.predicted_at.is_not(None)).values(dict.fromkeys(PREDICTION_COLUMNS)))
    names = list(columns)
    rows = [{"contact_id": int(key), **{name: float(columns[name][i]) for name in names}, "predicted_at": at}
            for i, key in enumerate(keys)]
    for start in range(0, len(rows), WRITE_CHUNK):
        statement = insert_for(conn, contact_scores)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["contact_id"],
            set_={name: statement.excluded[name] for name in [*names, "predicted_at"]}),
            rows[start:start + WRITE_CHUNK])


def _params(params: Any, only_model: bool = False) -> dict[str, Any]:
    """The fit as a dict, rounded to 6 decimals; ``only_model``: without the log-likelihood and size."""
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in params.as_dict().items()
            if not only_model or key not in ("log_likelihood", "customers")}


def latest_fits(conn: Connection) -> dict[str, dict[str, Any]]:
    """The most recent fit of each model."""
    found: dict[str, dict[str, Any]] = {}
    for row in conn.execute(select(model_fits).order_by(model_fits.c.fitted_at.desc(), model_fits.c.id.desc())):
        found.setdefault(row.model, dict(row._mapping))
    return found


def top_customers(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    """The contacts with the highest predicted lifetime value."""
    s, a = contact_scores, contact_aggregates
    rows = conn.execute(
        select(contacts.c.id, contacts.c.external_id, contacts.c.email, a.c.order_count, a.c.revenue_total,
               s.c.p_alive, s.c.expected_purchases, s.c.expected_order_value, s.c.lifetime_value)
        .join(s, s.c.contact_id == contacts.c.id).join(a, a.c.contact_id == contacts.c.id, isouter=True)
        .where(s.c.lifetime_value.is_not(None))
        .order_by(s.c.lifetime_value.desc(), contacts.c.id).limit(limit))
    return [dict(row._mapping) for row in rows]

