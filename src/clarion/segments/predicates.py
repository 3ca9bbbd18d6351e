"""Field comparisons as SQL predicates that are always TRUE or FALSE, never NULL.

A positive comparison (eq, in, contains, before, within ...) is ``value IS NOT NULL AND test``, so a missing
value fails it; ne, not in, not exists and not within are ``NOT`` of eq, in, exists and within, so they hold
for a missing value. Bounds are computed here, in Python, and bound as parameters of the field's type.

Times (see ``Clock``): "today" is the date of ``now`` in the workspace's default zone. A date given for a
datetime field means that whole day in the default zone (``after "2026-01-31"`` starts on 1 February at
00:00 there); a datetime without an offset is in the default zone too; ``N days ago`` is the instant
``now - N x 24 h`` for datetime fields and the date ``today - N`` for date fields. ``within N days`` is
``now - N days <= value <= now`` (``today - N <= value <= today`` for dates); later values are not "within".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import BigInteger, Float, Text, and_, func, literal, not_
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from ..domain.rules import DaysAgo, RuleError, Value
from ..store.schema import contacts
from ..store.sql import escape_like
from .fields import BOOLEAN, DATE, DATETIME, INTEGER, NUMBER, TEXT, Field
from .sql_portable import fold_case, fold_text, in_json_list, in_json_numbers, json_bind, month_day

NEGATIONS = {"ne": "eq", "not_in": "in", "not_exists": "exists", "not_within": "within"}


@dataclass(frozen=True)
class Clock:
    """The moment a rule is evaluated and the workspace's default zone.

    ``scope``, when given, is a SELECT of the only contact ids that matter (an incremental refresh's
    candidates): behaviour subqueries add it to their WHERE so the store reads just those contacts'
    events through the (contact_id, ...) index instead of every matching event.
    """

    now: datetime
    zone: ZoneInfo
    scope: Select | None = None

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    def day_start(self, day: date) -> datetime:
        return datetime.combine(day, time(), self.zone)


@dataclass(frozen=True)
class Moment:
    """A rule's time value as an interval: a day is [start, next day start); an instant is [t, t]."""

    low: object
    high: object
    high_inclusive: bool


def compare(field: Field, op: str, value: Value, clock: Clock) -> ColumnElement:
    """``field op value``, never NULL (the null rules are in the module docstring)."""
    if op in NEGATIONS:
        return not_(compare(field, NEGATIONS[op], value, clock))
    if field.name == "utc_offset":
        return _utc_offset(op, value, clock)
    expression = field.expression
    if op == "exists":
        return expression if field.presence else expression.is_not(None)
    test = _TESTS[field.type](field, op, value, clock)
    return and_(expression.is_not(None), test)


def _text(field: Field, op: str, value: Value, clock: Clock) -> ColumnElement:
    folded = fold_case(field.expression)
    if op == "in":
        return in_json_list(folded, json_bind(fold_text(_string(field, item)) for item in value))
    text = fold_text(_string(field, value))
    if op == "eq":
        return folded == literal(text)
    pattern = escape_like(text) + "%"
    return folded.like(pattern if op == "starts_with" else "%" + pattern, escape="\\")


def _string(field: Field, value: object) -> str:
    if not isinstance(value, str):
        raise RuleError(f"{field.name} is text; compare it with text in double quotes", field.name)
    return value


def _number(field: Field, op: str, value: Value, clock: Clock) -> ColumnElement:
    expression = field.expression
    if op == "in":
        return in_json_numbers(expression, json_bind(_numeric(field, item) for item in value))
    if op == "between":
        low, high = (_number_bind(field, item) for item in value)
        return and_(expression >= low, expression <= high)
    return _ORDER[op](expression, _number_bind(field, value))


def _numeric(field: Field, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(f"{field.name} is a number; compare it with a number", field.name)
    return value


def _number_bind(field: Field, value: object) -> ColumnElement:
    """Bound as the value's own type: an integer column's type would make PostgreSQL round 3.5 to 4."""
    number = _numeric(field, value)
    return literal(number, Float() if isinstance(number, float) else BigInteger())


def _boolean(field: Field, op: str, value: Value, clock: Clock) -> ColumnElement:
    if not isinstance(value, bool):
        raise RuleError(f"{field.name} is true or false; compare it with true or false", field.name)
    return field.expression == literal(value)


_ORDER = {
    "eq": lambda x, v: x == v, "gt": lambda x, v: x > v, "gte": lambda x, v: x >= v,
    "lt": lambda x, v: x < v, "lte": lambda x, v: x <= v,
}


# -- dates and times -----------------------------------------------------------------------------------
def _temporal(field: Field, op: str, value: Value, clock: Clock) -> ColumnElement:
    expression = field.expression
    if op == "within":
        low, high = (clock.today - timedelta(days=value), clock.today) if field.type == DATE \
            else (clock.now - timedelta(days=value), clock.now)
        return and_(expression >= _bind(field, low), expression <= _bind(field, high))
    if op == "in_next":
        return in_json_list(_month_day(field), json_bind(sorted(anniversary_days(clock.today, value))))
    if op == "between":
        first, last = (moment(field, item, clock) for item in value)
        return and_(expression >= _bind(field, first.low), _up_to(field, last))
    at = moment(field, value, clock)
    if op == "eq":
        return and_(expression >= _bind(field, at.low), _up_to(field, at))
    if op in ("gt", "after"):
        return expression > _bind(field, at.high) if at.high_inclusive else expression >= _bind(field, at.high)
    if op == "gte":
        return expression >= _bind(field, at.low)
    if op in ("lt", "before"):
        return expression < _bind(field, at.low)
    return _up_to(field, at)  # lte


def _up_to(field: Field, at: Moment) -> ColumnElement:
    bound = _bind(field, at.high)
    return field.expression <= bound if at.high_inclusive else field.expression < bound


def _bind(field: Field, value: date | datetime) -> ColumnElement:
    """A bound value of the field's own type (ISO text for custom dates), so each store formats it."""
    if field.iso_text:
        return literal(value.isoformat())
    return literal(value, field.expression.type)


def moment(field: Field, value: object, clock: Clock) -> Moment:
    """An ISO date/datetime text or DaysAgo as an interval in the field's type (module docstring)."""
    if isinstance(value, DaysAgo):
        if field.type == DATE:
            return _day(clock.today - timedelta(days=value.days))
        instant = clock.now - timedelta(days=value.days)
        return Moment(instant, instant, True)
    if not isinstance(value, str):
        raise RuleError(f"{field.name} is a {field.type}; compare it with a date (\"2026-01-31\"), a time or "
                        "N days ago", field.name)
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if field.type == DATE:
                return _day(day)
            return Moment(clock.day_start(day), clock.day_start(day + timedelta(days=1)), False)
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise RuleError(f"{value!r} is not an ISO date (2026-01-31) or time (2026-01-31T10:00:00Z)",
                        field.name) from None
    instant = instant.replace(tzinfo=clock.zone) if instant.tzinfo is None else instant
    if field.type == DATE:
        return _day(instant.astimezone(clock.zone).date())
    return Moment(instant.astimezone(UTC), instant.astimezone(UTC), True)


def _day(day: date) -> Moment:
    return Moment(day, day + timedelta(days=1), False)


def anniversary_days(today: date, days: int) -> set[str]:
    """'MMDD' of every day from today to today + days; 29 February counts on 28 February in other years."""
    window = set()
    for offset in range(min(days, 366) + 1):
        day = today + timedelta(days=offset)
        window.add(day.strftime("%m%d"))
        if (day.month, day.day) == (2, 28) and not _is_leap(day.year):
            window.add("0229")
    return window


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _month_day(field: Field) -> ColumnElement:
    if field.iso_text:  # 'YYYY-MM-DD'
        return func.substr(field.expression, 6, 2, type_=Text()) + func.substr(field.expression, 9, 2, type_=Text())
    return month_day(field.expression)


# -- utc_offset -----------------------------------------------------------------------------------------
def _utc_offset(op: str, value: Value, clock: Clock) -> ColumnElement:
    """The zones whose offset now satisfies the comparison; a contact without a zone has the default one."""
    zones = sorted(zone for zone in _known_zones() if _offset_matches(utc_offset_hours(zone, clock.now), op, value))
    zone_of_contact = func.coalesce(contacts.c.timezone, clock.zone.key)
    return in_json_list(zone_of_contact, json_bind(zones))


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    """The IANA zones this Python can load (the system's tzdata may list one it cannot, like 'localtime')."""
    zones = set()
    for name in available_timezones():
        try:
            ZoneInfo(name)
        except (ValueError, OSError):
            continue
        zones.add(name)
    return frozenset(zones)


def utc_offset_hours(zone: str, now: datetime) -> float:
    offset = now.astimezone(ZoneInfo(zone)).utcoffset()
    return offset.total_seconds() / 3600 if offset is not None else 0.0


def _offset_matches(offset: float, op: str, value: Value) -> bool:
    field = Field("utc_offset", NUMBER, None)
    if op == "in":
        return offset in {_numeric(field, item) for item in value}
    if op == "between":
        low, high = (_numeric(field, item) for item in value)
        return low <= offset <= high
    return _ORDER[op](offset, _numeric(field, value))


_TESTS = {TEXT: _text, NUMBER: _number, INTEGER: _number, BOOLEAN: _boolean, DATE: _temporal, DATETIME: _temporal}
