"""Filters that format numbers, money, dates and times in the recipient's locale and time zone (Babel).

``{{ order.total | money("EUR") }}`` prints ``1.234,50 €`` for a ``de`` contact and ``€1,234.50`` for
an ``en-US`` one; ``{{ now | datetime("short") }}`` prints the time on the recipient's clock.

The locale and zone come from the message being rendered (:mod:`.limits` keeps them per message).
Every filter is marked ``pass_context`` although it does not need the context: Jinja folds filters
over constants at compile time, and a compiled template is shared by every recipient, so
``{{ 1234.5 | number }}`` must be formatted when rendered, never once for everyone.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from jinja2 import pass_context
from jinja2.runtime import Context, Undefined

from .limits import current_state, refuse

FALLBACK_LOCALE = "en"
# Characters of a CLDR date pattern ("EEEE d 'de' MMMM 'de' y" is 23). Babel parses one in Python and keeps
# the last 1,024 parsed, so a long pattern per recipient would cost time and memory.
MAX_PATTERN = 200


@lru_cache(maxsize=1024)
def babel_locale(tag: str | None, default: str = FALLBACK_LOCALE) -> Locale:
    """The Babel locale for a BCP 47 tag (``pt-BR``, ``pt_BR``); ``default`` when it is missing or unknown."""
    for candidate in (tag, default, FALLBACK_LOCALE):
        if not candidate:
            continue
        try:
            locale = Locale.parse(str(candidate).strip().replace("_", "-"), sep="-")
        except (ValueError, TypeError, UnknownLocaleError):
            continue
        _ = locale.number_symbols  # loads the locale's data now, outside any message's time budget
        return locale
    raise AssertionError("the fallback locale is always available")  # pragma: no cover


def _locale() -> Locale:
    state = current_state()
    return state.locale if state is not None else babel_locale(None)


def _zone() -> tzinfo:
    state = current_state()
    return state.zone if state is not None else UTC


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(babel_numbers.list_currencies())


def _number(value: Any) -> Decimal | int | float:
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is not a number")
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, str):
        return Decimal(value.strip())  # exact: "19.99" stays 19.99, not 19.989999...
    raise TypeError(f"{value!r} is not a number")


@pass_context
def money(context: Context, amount: Any, currency: str) -> Any:
    """``{{ 1234.5 | money("BRL") }}`` → ``R$ 1.234,50`` for pt-BR: the currency's own decimals."""
    if isinstance(amount, Undefined):
        return amount
    code = str(currency).strip().upper()
    if code not in _currencies():
        raise ValueError(f"unknown currency {currency!r} (expected an ISO 4217 code such as 'EUR')")
    return babel_numbers.format_currency(_number(amount), code, locale=_locale())


@pass_context
def number(context: Context, value: Any, decimals: int | None = None) -> Any:
    """Grouped in the locale's way; with ``decimals``, exactly that many fraction digits."""
    if isinstance(value, Undefined):
        return value
    locale = _locale()
    if decimals is None:
        return babel_numbers.format_decimal(_number(value), locale=locale)
    return _with_fraction_digits(locale.decimal_formats[None], int(decimals)).apply(_number(value), locale)


@pass_context
def percent(context: Context, value: Any, decimals: int = 0) -> Any:
    """``{{ 0.256 | percent }}`` → ``26%`` (``26 %`` in French); ``value`` is a fraction."""
    if isinstance(value, Undefined):
        return value
    locale = _locale()
    return _with_fraction_digits(locale.percent_formats[None], int(decimals)).apply(_number(value), locale)


def _with_fraction_digits(pattern: babel_numbers.NumberPattern, decimals: int) -> babel_numbers.NumberPattern:
    if not 0 <= decimals <= 20:  # beyond 20 digits a float prints noise
        raise ValueError(f"decimals must be between 0 and 20, not {decimals}")
    fixed = copy.copy(pattern)
    fixed.frac_prec = (decimals, decimals)
    return fixed


@pass_context
def format_date(context: Context, value: Any, format: str = "medium") -> Any:
    """A date (or the date, on the recipient's clock, of a time). ``format``: short, medium, long, full or a
    CLDR pattern such as ``"d MMMM"``."""
    if isinstance(value, Undefined):
        return value
    moment = _moment(value)
    day = moment.astimezone(_zone()).date() if isinstance(moment, datetime) else moment
    return babel_dates.format_date(day, format=_pattern(format), locale=_locale())


@pass_context
def format_datetime(context: Context, value: Any, format: str = "medium") -> Any:
    """A moment on the recipient's clock (naive times are UTC, as everything Clarion stores)."""
    if isinstance(value, Undefined):
        return value
    moment = _as_datetime(_moment(value))
    return babel_dates.format_datetime(moment, format=_pattern(format), tzinfo=_zone(), locale=_locale())


@pass_context
def format_time(context: Context, value: Any, format: str = "short") -> Any:
    """The time of day on the recipient's clock."""
    if isinstance(value, Undefined):
        return value
    moment = _moment(value)
    if isinstance(moment, time):
        return babel_dates.format_time(moment, format=_pattern(format), locale=_locale())
    return babel_dates.format_time(_as_datetime(moment), format=_pattern(format), tzinfo=_zone(), locale=_locale())


def _pattern(format: Any) -> Any:
    if isinstance(format, str) and len(format) > MAX_PATTERN:
        raise refuse(f"a date pattern is at most {MAX_PATTERN} characters, not {len(format):,}")
    return format


def _moment(value: Any) -> date | datetime | time:
    """Dates, times and ISO 8601 strings (custom dates are stored as ``2026-03-01``)."""
    if isinstance(value, (date, time)):  # datetime is a date
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    raise TypeError(f"{value!r} is not a date or time")


def _as_datetime(moment: date | datetime | time) -> datetime:
    if isinstance(moment, datetime):
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if isinstance(moment, date):  # midnight on the recipient's calendar
        return datetime.combine(moment, time(), tzinfo=_zone())
    raise TypeError(f"{moment!r} is a time of day without a date")


# ``{{ url | notrack }}``: this link is left as it is by link tracking (messages.link_tracking removes the mark).
NOTRACK_MARK = "clarion-notrack:"


def notrack(url: Any) -> str:
    return f"{NOTRACK_MARK}{url}"


LOCALE_FILTERS = {
    "notrack": notrack,
    "money": money,
    "number": number,
    "percent": percent,
    "date": format_date,
    "datetime": format_datetime,
    "time": format_time,
}
