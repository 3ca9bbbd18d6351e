"""``clarion reports campaign|messages``: what a campaign's messages got back, and which messages work best."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from .output import JSON_OPTION, app_of, console, emit, key_values, table

# The service (services.reports) is imported inside the commands: `clarion --help` does not pay for it.
reports_app = typer.Typer(no_args_is_help=True, help="Response reports: opens, clicks, conversions, revenue, lift.")
BREAKDOWNS = "channel, template, locale, segment, hour, weekday, rfm"
MACHINE_OPTION = typer.Option(False, "--machine", help="Show machine opens and clicks (proxies, scanners) too.")


def _refreshed(ctx: typer.Context, read: Callable[[Any, Any], Any]) -> Any:
    """The attribution pass first (late conversions are credited), then the report in a read transaction."""
    from ..services.reports import ReportService

    clarion = app_of(ctx)
    service = ReportService(clarion.settings)
    with clarion.store.write() as conn:
        service.attribute(conn)
    with clarion.store.read() as conn:
        return read(service, conn)


def _split(values: list[str]) -> list[str]:
    """``--by hour --by rfm`` and ``--by hour,rfm`` alike."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _counts(figures: dict[str, int]) -> str:
    return f"{figures['unique']:,} unique, {figures['total']:,} total"


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    delivered = report["delivered"]
    return {
        "sent": f"{report['sent']:,}",
        "delivered": f"{delivered:,}" if delivered is not None else f"unknown: {report['delivered_note']}",
        "human opens": _counts(report["human"]["opens"]), "human clicks": _counts(report["human"]["clicks"]),
        "machine opens": _counts(report["machine"]["opens"]), "machine clicks": _counts(report["machine"]["clicks"]),
        "CTR": _percent(report["ctr"]), "CTOR": _percent(report["ctor"]),
        "conversions": f"{report['conversions']:,}", "conversion rate": _percent(report["conversion_rate"]),
        "revenue": _money(report["revenue"]), "revenue per message": _money(report["revenue_per_message"]),
        "unsubscribes": f"{report['unsubscribes']:,}", "complaints": f"{report['complaints']:,}",
        "bounces": f"{report['bounces']:,}",
    }


def _lift(lift: dict[str, Any]) -> dict[str, Any]:
    shown = {"goal": lift["goal"] + (f" where {lift['where']}" if lift["where"] else ""),
             "window": f"{lift['window_days']:g} days after the send (or the holdout's skip)"}
    if lift["absolute"] is None:
        return {**shown, "lift": f"none: {lift['reason']}"}
    low, high = lift["ci95"]
    for group in ("treated", "holdout"):
        figures = lift[group]
        shown[group] = f"{figures['converters']:,} of {figures['contacts']:,} ({_percent(figures['rate'])})"
    points = f"{lift['absolute'] * 100:+.2f} points (95% CI {low * 100:+.2f} to {high * 100:+.2f})"
    shown.update({"absolute lift": points,
                  "relative lift": _percent(lift["relative"]) if lift["relative"] is not None else lift["reason"],
                  "incremental revenue": f"{_money(lift['incremental_revenue'])} {lift['currency']}",
                  "interval": lift["method"]})
    if lift["missing_rates"]:
        shown["left out"] = f"revenue in {', '.join(lift['missing_rates'])}: no exchange rate (clarion currency)"
    return shown


def _breakdown(name: str, rows: list[dict[str, Any]], machine: bool) -> Any:
    columns = ["key", "sent", "opens", "clicks", "CTR", "CTOR", "conversions", "conv. rate", "revenue"]
    columns += ["machine opens", "machine clicks"] if machine else []
    return table(f"By {name}", columns, ([
        "(none)" if r["key"] is None else r["key"], f"{r['sent']:,}", f"{r['opens']:,}", f"{r['clicks']:,}",
        _percent(r["ctr"]), _percent(r["ctor"]), f"{r['conversions']:,}", _percent(r["conversion_rate"]),
        _money(r["revenue"]), *([f"{r['machine_opens']:,}", f"{r['machine_clicks']:,}"] if machine else [])]
        for r in rows))


def _show_campaign(report: dict[str, Any], machine: bool) -> None:
    campaign = report["campaign"]
    console.print(key_values(f"Campaign {campaign['name']} ({campaign['channel']}, {campaign['status']})",
                             _headline(report)))
    console.print(key_values("Lift against the global holdout", _lift(report["lift"])))
    for name, rows in report["breakdowns"].items():
        console.print(_breakdown(name, rows, machine))


@reports_app.command("campaign")
def reports_campaign(ctx: typer.Context, name: str = typer.Argument(..., help="The campaign's name or id."),
                     by: list[str] = typer.Option([], "--by", help=f"Break the figures down by {BREAKDOWNS} "
                                                                 "(repeat, or separate with commas)."),
                     machine: bool = MACHINE_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Sent, delivered, human and machine opens and clicks, CTR, CTOR, conversions, revenue, lift."""
    wanted = _split(by)
    report = _refreshed(ctx, lambda service, conn: service.campaign(conn, name, by=wanted, machine=machine))
    emit(report, as_json, lambda: _show_campaign(report, machine))


@reports_app.command("messages")
def reports_messages(ctx: typer.Context,
                     metric: str = typer.Option("click", "--metric", help="click, open or conversion."),
                     by: str = typer.Option("template", "--by", help="template or campaign."),
                     min_sent: int = typer.Option(30, "--min-sent", min=1, max=1_000_000_000,
                                                  help="Rows resting on fewer messages are listed last, unranked."),
                     machine: bool = MACHINE_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Which messages get the most response: ranked by the Wilson 95% lower bound of the rate, not the raw rate."""
    rows = _refreshed(ctx, lambda service, conn: service.messages(conn, metric=metric, by=by, min_sent=min_sent,
                                                                   machine=machine))
    emit(rows, as_json, lambda: console.print(table(
        f"Messages by {metric} rate (Wilson 95% lower bound)", (by, "n (sent)", metric + "s", "rate", "95% interval",
                                                               "ranked"),
        ([r[by], f"{r['n']:,}", f"{r['successes']:,}", _percent(r["rate"]),
          f"{_percent(r['lower'])} to {_percent(r['upper'])}" if r["lower"] is not None else "",
          "yes" if r["ranked"] else f"no: under {min_sent:,} sent"] for r in rows))))
