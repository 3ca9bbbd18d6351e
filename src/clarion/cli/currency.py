"""``clarion currency show|set``: the workspace currency and the exchange rates revenue is converted with.

Rates are the user's own (``--rate EUR=1.08``: 1 EUR is 1.08 of the workspace currency); Clarion never
fetches one. ``set`` replaces the whole table, so a rate left out is removed.
"""

from __future__ import annotations

import typer

from ..domain.errors import FieldError
from .output import JSON_OPTION, app_of, console, emit, table

currency_app = typer.Typer(no_args_is_help=True, help="The workspace currency and exchange rates for revenue.")


@currency_app.command("show")
def show(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The workspace currency and the rates other currencies are converted with."""
    from ..services.currency import get_currency

    with app_of(ctx).store.read() as conn:
        data = get_currency(conn).model_dump(mode="json")
    emit(data, as_json, lambda: _print(data))


@currency_app.command("set")
def set_currency(ctx: typer.Context,
                 currency: str = typer.Argument(..., help="The workspace currency (ISO 4217, like USD)."),
                 rates: list[str] = typer.Option(
                     [], "--rate", help="CODE=RATE: 1 CODE is RATE of the workspace currency (repeat it)."),
                 as_json: bool = JSON_OPTION) -> None:
    """Set the workspace currency and replace the rate table (events in other currencies count without revenue)."""
    from ..services import currency as currency_service

    document = {"currency": currency, "rates": parse_rates(rates)}
    with app_of(ctx).store.write() as conn:
        data = currency_service.set_currency(conn, document).model_dump(mode="json")
    emit(data, as_json, lambda: _print(data))


def parse_rates(items: list[str]) -> dict[str, str]:
    """``["EUR=1.08", ...]`` as a mapping; the values are checked by the service."""
    rates: dict[str, str] = {}
    for item in items:
        code, equals, rate = item.partition("=")
        if not equals or not code.strip() or not rate.strip():
            raise FieldError("--rate", f"{item!r} is not CODE=RATE (like EUR=1.08)")
        if code.strip().upper() in rates:
            raise FieldError("--rate", f"{code.strip().upper()} is given twice")
        rates[code.strip().upper()] = rate.strip()
    return rates


def _print(data: dict) -> None:
    own = data["currency"]
    console.print(f"Workspace currency: {own}", highlight=False)
    if not data["rates"]:
        console.print(f"No exchange rates: conversions in currencies other than {own} count without revenue.",
                      highlight=False)
        return
    console.print(table("Exchange rates", ("currency", f"1 unit in {own}"),
                        ([code, f"{rate:g}"] for code, rate in sorted(data["rates"].items()))))
