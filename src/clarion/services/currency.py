"""The workspace currency and the user's exchange rates: ``workspace_settings`` key ``currency``.

Revenue is reported in one currency, the workspace's. An event in another currency is converted with
the rate the user gave for it (``{"currency": "USD", "rates": {"EUR": 1.08}}``: 1 EUR = 1.08 USD).
Rates are never fetched from the network: a self-hosted install may have none, and a report must not
change because a rate service did. An amount in a currency without a rate has no converted value; the
caller keeps the fact (attribution writes ``no_rate:EUR`` as the conversion's reason).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import Connection

from ..store.workspace import read_document, write_document
from .clock import utcnow
from .delivery_defaults import parse_model

SETTINGS_KEY = "currency"
DEFAULT_CURRENCY = "USD"
MAX_RATES = 300  # ISO 4217 lists about 180 active codes; room for funds and metals, not for abuse
_CODE = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Converted:
    """An amount in the workspace currency; ``missing_rate``: the currency it could not be converted from."""

    amount: float | None
    missing_rate: str | None = None


def currency_code(raw: Any) -> str:
    """An ISO 4217 code, upper-cased ("eur" -> "EUR"); ValueError for anything else."""
    code = raw.strip().upper() if isinstance(raw, str) else raw
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError(f"{raw!r} is not an ISO 4217 currency code (three letters, like EUR)")
    return code


class CurrencySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = DEFAULT_CURRENCY
    # Units of the workspace currency per unit of the named currency.
    rates: dict[str, float] = Field(default_factory=dict, max_length=MAX_RATES)

    @field_validator("currency", mode="before")
    @classmethod
    def _code(cls, value: Any) -> str:
        return currency_code(value)

    @field_validator("rates", mode="before")
    @classmethod
    def _rates(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic names the type error
        rates = {currency_code(code): _rate(code, rate) for code, rate in value.items()}
        own = info.data.get("currency")
        if own in rates:
            raise ValueError(f"{own} is the workspace currency: its rate is 1 by definition; leave it out")
        return rates

    def convert(self, amount: float | None, currency: str | None) -> Converted:
        """``amount`` of ``currency`` (None: the workspace currency) in the workspace currency."""
        if amount is None:
            return Converted(None)
        code = (currency or self.currency).strip().upper()
        if code == self.currency:
            return Converted(amount)
        rate = self.rates.get(code)
        if rate is None:
            return Converted(None, code)
        return Converted(amount * rate)


def _rate(code: Any, rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float | str):
        raise ValueError(f"rate of {code}: {rate!r} is not a number")
    try:
        value = float(rate)
    except (ValueError, OverflowError):
        raise ValueError(f"rate of {code}: {rate!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"rate of {code}: must be a positive finite number, not {rate!r}")
    return value


def get_currency(conn: Connection) -> CurrencySettings:
    document = read_document(conn, SETTINGS_KEY)
    return CurrencySettings() if document is None else CurrencySettings.model_validate(document)


def set_currency(conn: Connection, document: Any) -> CurrencySettings:
    """Replace the workspace currency and its rates; FieldError naming the first wrong value."""
    settings = parse_model(CurrencySettings, document)
    write_document(conn, SETTINGS_KEY, settings.model_dump(mode="json"), utcnow())
    return settings
