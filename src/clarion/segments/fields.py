"""The allow-list of fields a segment rule may compare: each field's type and the SQL producing its value.

A rule names a field as text; only names found here reach SQL, and then only as the expressions written
here (a custom attribute's key is a bound parameter, never part of the SQL text). Every expression yields
the value or NULL when the contact has none; the operator rules for NULL are in ``segments.compiler``.

Types and their operators:

========  ====================================================================================
text      = != in, not in, contains, starts with, exists, not exists (case-insensitive, ASCII)
number    = != > >= < <= in, not in, between, exists, not exists (integer: the same)
boolean   = != exists, not exists
date      = != > >= < <= before, after, between, within, not within, in next, exists, not exists
datetime  the date operators except in next
========  ====================================================================================

Sources: profile columns (``contacts``); per-contact aggregates (``contact_aggregates``, LEFT JOIN: a
contact without aggregates has counts and revenue 0 and no times); scores (``contact_scores``, LEFT JOIN:
NULL until scored); ``attributes.<name>`` (custom JSON attributes, typed by the rule's value: a number
compares only values stored as JSON numbers, text only strings, true/false only booleans; a value of
another JSON type counts as missing); ``custom_dates.<name>`` (ISO dates stored as JSON text);
``utc_offset`` (hours east of UTC now in the contact's time zone, compiled to a list of zones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import String, cast, func, literal
from sqlalchemy.sql.elements import ColumnElement

from ..domain.rules import (
    COMPARISONS,
    DATE_OPS,
    DaysAgo,
    RuleError,
    Value,
)
from ..store.schema import contact_aggregates, contacts
from ..store.schema_scores import contact_scores
from .sql_portable import json_boolean, json_number, json_present, json_text, key_bind
from .suggest import nearest

TEXT, NUMBER, INTEGER, BOOLEAN, DATE, DATETIME = "text", "number", "integer", "boolean", "date", "datetime"

_PRESENCE = ("exists", "not_exists")
_ORDERED = COMPARISONS + ("between",)
OPERATORS: dict[str, tuple[str, ...]] = {
    TEXT: ("eq", "ne", "in", "not_in", "contains", "starts_with") + _PRESENCE,
    NUMBER: _ORDERED + ("in", "not_in") + _PRESENCE,
    INTEGER: _ORDERED + ("in", "not_in") + _PRESENCE,
    BOOLEAN: ("eq", "ne") + _PRESENCE,
    DATE: _ORDERED + DATE_OPS + ("within", "not_within", "in_next") + _PRESENCE,
    DATETIME: _ORDERED + DATE_OPS + ("within", "not_within") + _PRESENCE,
}
UTC_OFFSET_OPERATORS = _ORDERED + ("in", "not_in")

# Which LEFT JOIN a field needs besides contacts.
AGGREGATES, SCORES = "aggregates", "scores"


@dataclass(frozen=True)
class Field:
    """A comparable field. ``expression`` is None only for the computed ``utc_offset``."""

    name: str
    type: str
    expression: ColumnElement | None
    join: str | None = None
    # Set for JSON-backed fields: the document column and key, so explanations can show the raw value.
    json_doc: ColumnElement | None = None
    json_key: str | None = None
    # The value is ISO date text (custom dates), compared as text; else a DATE or timestamp column.
    iso_text: bool = False
    # Only exists / not exists, and ``expression`` is already that never-NULL test (a JSON key, any type).
    presence: bool = False
    operators: tuple[str, ...] = ()

    def allowed(self) -> tuple[str, ...]:
        return self.operators or OPERATORS[self.type]

    def check_op(self, op: str) -> None:
        if op not in self.allowed():
            allowed = ", ".join(self.allowed())
            raise RuleError(f"'{op}' does not apply to {self.name} ({self.type}); it takes: {allowed}", self.name)


def _column(name: str, type_: str, column_name: str | None = None) -> Field:
    return Field(name, type_, contacts.c[column_name or name])


_a, _s = contact_aggregates.c, contact_scores.c
_ORDERS_COUNT = Field("orders.count", INTEGER, func.coalesce(_a.order_count, 0), AGGREGATES)
_ORDERS_REVENUE = Field("orders.revenue", NUMBER, func.coalesce(_a.revenue_total, 0.0), AGGREGATES)
_ORDERS_AVG = Field("orders.avg_value", NUMBER, _a.avg_order_value, AGGREGATES)
_ORDERS_FIRST = Field("orders.first_at", DATETIME, _a.first_order_at, AGGREGATES)
_ORDERS_LAST = Field("orders.last_at", DATETIME, _a.last_order_at, AGGREGATES)
_EVENTS_COUNT = Field("events.count", INTEGER, func.coalesce(_a.event_count, 0), AGGREGATES)
_EVENTS_FIRST = Field("events.first_at", DATETIME, _a.first_seen_at, AGGREGATES)
_EVENTS_LAST = Field("events.last_at", DATETIME, _a.last_seen_at, AGGREGATES)

_FIELDS: tuple[Field, ...] = (
    *(_column(name, TEXT) for name in ("external_id", "email", "phone", "first_name", "last_name", "locale",
                                       "timezone", "country", "region", "city")),
    _column("latitude", NUMBER),
    _column("longitude", NUMBER),
    _column("birthday", DATE),
    _column("anniversary", DATE),
    _column("created_at", DATETIME),
    _column("updated_at", DATETIME),
    _ORDERS_COUNT, _ORDERS_REVENUE, _ORDERS_AVG, _ORDERS_FIRST, _ORDERS_LAST,
    _EVENTS_COUNT, _EVENTS_FIRST, _EVENTS_LAST,
    Field("rfm.r", INTEGER, _s.rfm_r, SCORES),
    Field("rfm.f", INTEGER, _s.rfm_f, SCORES),
    Field("rfm.m", INTEGER, _s.rfm_m, SCORES),
    Field("rfm.segment", TEXT, _s.rfm_segment, SCORES),
    # 'RFM' digits such as '545'; NULL unless all three scores are known (|| with a NULL is NULL).
    Field("rfm.cell", TEXT, cast(_s.rfm_r, String) + cast(_s.rfm_f, String) + cast(_s.rfm_m, String), SCORES),
    Field("lead.score", NUMBER, _s.lead_score, SCORES),
    Field("churn.probability", NUMBER, literal(1.0) - _s.p_alive, SCORES),
    Field("predicted.p_alive", NUMBER, _s.p_alive, SCORES),
    Field("predicted.purchases", NUMBER, _s.expected_purchases, SCORES),
    Field("predicted.order_value", NUMBER, _s.expected_order_value, SCORES),
    Field("predicted.lifetime_value", NUMBER, _s.lifetime_value, SCORES),
    Field("utc_offset", NUMBER, None, operators=UTC_OFFSET_OPERATORS),
)
_ALIASES = {
    "order_count": _ORDERS_COUNT, "revenue_total": _ORDERS_REVENUE, "avg_order_value": _ORDERS_AVG,
    "first_order_at": _ORDERS_FIRST, "last_order_at": _ORDERS_LAST,
    "first_seen_at": _EVENTS_FIRST, "last_seen_at": _EVENTS_LAST,
}
FIELDS: dict[str, Field] = {field.name: field for field in _FIELDS} | _ALIASES
JSON_PREFIXES = ("attributes.", "custom_dates.")


def resolve_field(name: str, op: str, value: Value) -> Field:
    """The field a rule names, checked against the operator; RuleError for an unknown name or a misfit op."""
    if name in FIELDS:
        field = FIELDS[name]
    elif name.startswith("attributes.") and len(name) > len("attributes."):
        field = json_field(contacts.c.attributes, name, name[len("attributes."):], value)
    elif name.startswith("custom_dates.") and len(name) > len("custom_dates."):
        key = name[len("custom_dates."):]
        field = Field(name, DATE, json_text(contacts.c.custom_dates, key_bind(key)),
                      json_doc=contacts.c.custom_dates, json_key=key, iso_text=True)
    else:
        raise RuleError(unknown_field(name), name)
    field.check_op(op)
    return field


def unknown_field(name: str) -> str:
    """The error for a name that is no field: the three nearest fields, and where custom data is."""
    close = list(dict.fromkeys(FIELDS[match].name for match in nearest(name, FIELDS, n=6)))[:3]  # aliases once
    hint = f"did you mean {', '.join(close)}?" if close else "the fields are listed in docs/segments.md"
    return f"unknown field {name!r}; {hint} (custom data: attributes.<name>, custom_dates.<name>)"


def json_field(doc: ColumnElement, name: str, key: str, value: Value) -> Field:
    """A key of a JSON document typed by the rule's value (see the module docstring)."""
    value_type = json_value_type(name, value)
    accessor: dict[str, Callable] = {TEXT: json_text, NUMBER: json_number, BOOLEAN: json_boolean}
    if value_type is None:  # exists / not exists: any JSON value but null
        return Field(name, TEXT, json_present(doc, key_bind(key)), json_doc=doc, json_key=key, presence=True,
                     operators=_PRESENCE)
    return Field(name, value_type, accessor[value_type](doc, key_bind(key)), json_doc=doc, json_key=key)


def json_value_type(name: str, value: Value) -> str | None:
    """text, number or boolean from the rule's value (all items of a list alike); None without a value."""
    if value is None:
        return None
    types = {_scalar_type(name, item) for item in (value if isinstance(value, tuple) else (value,))}
    if len(types) > 1:
        raise RuleError(f"the values compared with {name} mix types ({', '.join(sorted(types))})", name)
    return types.pop()


def _scalar_type(name: str, item: object) -> str:
    if isinstance(item, bool):
        return BOOLEAN
    if isinstance(item, int | float):
        return NUMBER
    if isinstance(item, str):
        return TEXT
    assert isinstance(item, DaysAgo)
    raise RuleError(f"{name} is a custom attribute; 'N days ago' applies to dates (use custom_dates.<name>)",
                    name)
