"""``rfm compute|summary|transitions``, ``predictions fit|show|top`` and ``leads config|show|score|top``."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import typer

from ..domain.errors import FieldError
from .output import JSON_OPTION, app_of, console, emit, key_values, table
from .params import DAYS_RANGE

rfm_app = typer.Typer(no_args_is_help=True, help="RFM scores and named segments.")
predictions_app = typer.Typer(no_args_is_help=True, help="BG/NBD + Gamma-Gamma: churn and lifetime value.")
leads_app = typer.Typer(no_args_is_help=True, help="Lead scores: points per event and per attribute rule.")

LEADS_FILE = typer.Argument(..., help="The lead scoring rules (JSON).")
AS_OF = typer.Option(None, "--as-of", help="Reference date (YYYY-MM-DD, end of that day UTC); default now.")


def _end_of_day(text: str | None) -> datetime | None:
    from ..services.clock import end_of_day

    if text is None:
        return None
    try:
        return end_of_day(date.fromisoformat(text))
    except ValueError:
        raise FieldError("--as-of", f"{text!r} is not a date (YYYY-MM-DD)") from None


@rfm_app.command("compute")
def rfm_compute(ctx: typer.Context,
                window_days: int | None = typer.Option(None, "--window-days", **DAYS_RANGE,
                                                       help="Orders in the last N days only (default: all)."),
                as_of: str | None = AS_OF, as_json: bool = JSON_OPTION) -> None:
    """Score every customer 1..5 on recency, frequency and monetary value, and name their segment."""
    from ..services import rfm as rfm_service

    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        result = rfm_service.compute(conn, window_days=window_days, as_of=_end_of_day(as_of))
    emit(result.as_dict(), as_json, lambda: console.print(key_values("RFM computed", result.as_dict())))


@rfm_app.command("summary")
def rfm_summary(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Contacts per named RFM segment, with their average orders and revenue."""
    from ..services import rfm as rfm_service

    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        rows = rfm_service.summary(conn)
    emit(rows, as_json, lambda: console.print(table(
        "RFM segments", ("segment", "contacts", "avg orders", "avg revenue"),
        ([r["label"], f"{r['contacts']:,}", r["avg_orders"], r["avg_revenue"]] for r in rows))))


@rfm_app.command("transitions")
def rfm_transitions(ctx: typer.Context, limit: int = typer.Option(20, "--limit", min=1, max=10_000),
                    as_json: bool = JSON_OPTION) -> None:
    """The latest moves between RFM segments ("from loyal to at_risk")."""
    from ..services import rfm as rfm_service

    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        rows = rfm_service.transitions(conn, limit=limit)
    emit(rows, as_json, lambda: console.print(table(
        "RFM transitions", ("contact", "from", "to", "at"),
        ([r["contact_id"], r["from_segment"], r["to_segment"] or "(no orders in window)", r["at"]] for r in rows))))


def _predictions():
    """The predictions service, imported when used: it loads SciPy (~0.5 s), which no other command needs."""
    from ..services import predictions

    return predictions


@predictions_app.command("fit")
def predictions_fit(ctx: typer.Context, as_of: str | None = AS_OF,
                    horizon_days: int = typer.Option(90, "--horizon-days", **DAYS_RANGE,
                                                     help="Expected purchases in N days."),
                    clv_days: int = typer.Option(365, "--clv-days", **DAYS_RANGE,
                                                 help="Lifetime value horizon in days."),
                    as_json: bool = JSON_OPTION) -> None:
    """Fit BG/NBD and Gamma-Gamma on every customer's orders and store each customer's predictions."""
    prediction_service = _predictions()
    clarion = app_of(ctx)
    settings = prediction_service.PredictionSettings(horizon_days=horizon_days, clv_horizon_days=clv_days,
                                                     as_of=_end_of_day(as_of))
    with clarion.store.write() as conn:
        result = prediction_service.predict_and_store(conn, settings)
    emit(result.as_dict(), as_json, lambda: console.print(key_values("Models fitted", result.as_dict())))


@predictions_app.command("show")
def predictions_show(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The latest fitted parameters of each model."""
    prediction_service = _predictions()
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        fits = prediction_service.latest_fits(conn)
    emit(fits, as_json, lambda: console.print(table(
        "Fitted models", ("model", "parameters", "customers", "log-likelihood", "fitted at"),
        ([m, f["params"], f["customers"], f["log_likelihood"], f["fitted_at"]] for m, f in fits.items()))))


@predictions_app.command("top")
def predictions_top(ctx: typer.Context, limit: int = typer.Option(10, "--limit", min=1, max=10_000),
                    as_json: bool = JSON_OPTION) -> None:
    """The contacts with the highest predicted lifetime value."""
    prediction_service = _predictions()
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        rows = prediction_service.top_customers(conn, limit=limit)
    emit(rows, as_json, lambda: console.print(table(
        "Highest predicted lifetime value", ("contact", "external id", "orders", "revenue", "P(alive)",
                                             "expected orders", "order value", "lifetime value"),
        ([r["id"], r["external_id"], r["order_count"], _money(r["revenue_total"]), f"{r['p_alive']:.3f}",
          f"{r['expected_purchases']:.2f}", _money(r["expected_order_value"]), _money(r["lifetime_value"])]
         for r in rows))))


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


@leads_app.command("config")
def leads_config(ctx: typer.Context, file: Path = LEADS_FILE, as_json: bool = JSON_OPTION) -> None:
    """Replace the lead scoring rules with those of a JSON file (checked before anything is stored)."""
    from ..services.lead_scores import LeadScoreService
    from ..services.segments import SegmentService

    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FieldError(str(file), f"not JSON: {exc}") from None
    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        config = LeadScoreService.set_config(conn, document, SegmentService(clarion.settings).context(conn))
    data = config.model_dump(mode="json", exclude_none=True)
    emit(data, as_json, lambda: console.print(f"Stored {len(config.rules)} lead scoring rules."))


@leads_app.command("show")
def leads_show(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The lead scoring rules."""
    from ..services.lead_scores import LeadScoreService

    with app_of(ctx).store.read() as conn:
        config = LeadScoreService.config(conn)
    data = config.model_dump(mode="json", exclude_none=True)
    emit(data, as_json, lambda: console.print(table(
        f"Lead scoring (half-life: {config.half_life_days or 'none'} days)", ("name", "points", "when"),
        ([r.name, r.points, r.rule or f"{r.event} {r.where or ''}".strip()] for r in config.rules))))


@leads_app.command("score")
def leads_score(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Compute every contact's lead score from the rules."""
    from ..services.lead_scores import LeadScoreService
    from ..services.segments import SegmentService

    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        result = LeadScoreService().compute(conn, SegmentService(clarion.settings).context(conn))
    emit(result.as_dict(), as_json, lambda: console.print(key_values("Lead scores", result.as_dict())))


@leads_app.command("top")
def leads_top(ctx: typer.Context, limit: int = typer.Option(10, "--limit", min=1, max=10_000),
              as_json: bool = JSON_OPTION) -> None:
    """The contacts with the highest lead scores."""
    from ..services.lead_scores import LeadScoreService

    with app_of(ctx).store.read() as conn:
        rows = LeadScoreService.top(conn, limit=limit)
    emit(rows, as_json, lambda: console.print(table(
        "Top leads", ("contact", "score", "scored at"),
        ([r["contact_id"], f"{r['lead_score']:.2f}", r["lead_at"]] for r in rows))))
