"""The canonical text of a segment rule, the inverse of ``segments.rule_text.parse_rule``.

Canonical means: keywords in lower case, one space around operators, defaults left out (``>= 1 times``, no
window), strings as JSON (non-ASCII kept as is), floats by ``repr`` so they read back exactly, and a nested
group always in parentheses, so the parsed tree has the same shape as the printed one.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from clarion.domain.rules import (
    All,
    AnyOf,
    Bucket,
    Compare,
    DaysAgo,
    Engaged,
    EventMetric,
    EventTime,
    InSegment,
    Near,
    Not,
    Performed,
    Reachable,
    Rule,
)

from .rule_lexer import quote_name

COMPARISON_SYMBOLS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def format_rule(rule: Rule) -> str:
    """The canonical text of ``rule``: ``parse_rule(format_rule(rule)) == rule``."""
    if isinstance(rule, All | AnyOf):
        joiner = " and " if isinstance(rule, All) else " or "
        return joiner.join(_operand(item) for item in rule.items)
    if isinstance(rule, Not):
        return "not " + _operand(rule.item)
    return _CONDITIONS[type(rule)](rule)


def _operand(rule: Rule) -> str:
    text = format_rule(rule)
    return f"({text})" if isinstance(rule, All | AnyOf) else text


def _compare(compare: Compare) -> str:
    return f"{_field(compare.field)} {_operation(compare.op, compare.value)}"


def _operation(op: str, value: object) -> str:
    """The operator and its value(s), as after a field: ``in ("a", "b")``, ``within 30 days``."""
    words = op.replace("_", " ")
    if op in COMPARISON_SYMBOLS:
        return f"{COMPARISON_SYMBOLS[op]} {_value(value)}"
    if op in ("in", "not_in"):
        return f"{words} ({', '.join(_value(item) for item in value)})"  # type: ignore[union-attr]
    if op in ("exists", "not_exists"):
        return words
    if op == "between":
        low, high = value  # type: ignore[misc]
        return f"between {_value(low)} and {_value(high)}"
    if op in ("within", "not_within", "in_next"):
        return f"{words} {value} days"
    return f"{words} {_value(value)}"  # contains, starts with, before, after


def _value(value: object) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, DaysAgo):
        return f"{value.days} days ago"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _field(field: str) -> str:
    names = field.split(".")
    if not all(names):  # an empty part (".a", "a..b") cannot be written part by part: quote the whole
        return quote_name(field)
    return ".".join(quote_name(name) for name in names)


def _count(count_op: str, count: int) -> str:
    return "" if (count_op, count) == ("gte", 1) else f" {COMPARISON_SYMBOLS[count_op]} {count} times"


def _window(within_days: int | None) -> str:
    return "" if within_days is None else f" within {within_days} days"


def _arguments(first: str, where: tuple[Compare, ...]) -> str:
    return ", ".join([first, *(_compare(item) for item in where)])


def _performed(rule: Performed) -> str:
    arguments = _arguments(_string(rule.event), rule.where)
    return f"performed({arguments}){_count(rule.count_op, rule.count)}{_window(rule.within_days)}"


def _event_time(rule: EventTime) -> str:
    return f"{rule.which}_performed({_string(rule.event)}) {_operation(rule.op, rule.value)}"


def _metric(rule: EventMetric) -> str:
    arguments = _arguments(f"{_string(rule.event)}, {_field(rule.property)}", rule.where)
    return f"{rule.aggregate}({arguments}) {_operation(rule.op, rule.value)}{_window(rule.within_days)}"


def _near(rule: Near) -> str:
    return f"near({_value(rule.latitude)}, {_value(rule.longitude)}, {_value(rule.km)} km)"


def _engaged(rule: Engaged) -> str:
    campaign = "" if rule.campaign is None else f"campaign = {rule.campaign}"
    return f"{rule.action}({campaign}){_count(rule.count_op, rule.count)}{_window(rule.within_days)}"


def _reachable(rule: Reachable) -> str:
    topic = "" if rule.topic is None else f", topic = {_string(rule.topic)}"
    return f"reachable({_string(rule.channel)}{topic})"


_CONDITIONS: dict[type, Callable] = {
    Compare: _compare,
    Performed: _performed,
    EventTime: _event_time,
    EventMetric: _metric,
    Near: _near,
    Engaged: _engaged,
    Reachable: _reachable,
    InSegment: lambda rule: f"in_segment({_string(rule.segment)})",
    Bucket: lambda rule: f"bucket({_string(rule.salt)}) {_operation(rule.op, rule.value)}",
}
