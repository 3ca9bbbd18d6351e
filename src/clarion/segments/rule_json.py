"""Segment rules as JSON, the form the API accepts and the database stores.

``{"all": [{"field": "country", "op": "in", "value": ["US", "CA"]}, {"performed": "Order Completed"}]}``

Reading is strict: each object has exactly one kind key (``all``, ``field``, ``performed`` ...), no unknown
keys, no ``null`` (an optional key is left out instead) and values of the right type. Every error is a
:class:`RuleError` whose ``path`` points at the offending part (``all[2].value``). Nesting is checked on the
way down, so a hostile, very deep document is refused after ``MAX_DEPTH`` levels, not by a stack overflow.
A group of one rule is accepted (rule builders produce them) and read as that rule; writing gives the
canonical form, which has none and leaves defaults out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clarion.domain.rules import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_LIST,
    PROPERTY_OPS,
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
    RuleError,
    check_size,
)

_COUNTED = ("count", "within_days")
KINDS: dict[str, tuple[str, ...]] = {  # the keys an object of each kind may have, its kind key first
    "all": ("all",),
    "any": ("any",),
    "not": ("not",),
    "field": ("field", "op", "value"),
    "performed": ("performed", "where", *_COUNTED),
    "first_performed": ("first_performed", "op", "value"),
    "last_performed": ("last_performed", "op", "value"),
    "metric": ("metric", "event", "property", "op", "value", "where", "within_days"),
    "near": ("near",),
    "engaged": ("engaged", "campaign", *_COUNTED),
    "reachable": ("reachable", "topic"),
    "in_segment": ("in_segment",),
    "bucket": ("bucket", "op", "value"),
}

# Where a node's own shape error (its path names a dataclass field) is in the JSON, when the key differs.
_COUNT_KEYS = {"count operator": "count.op", "count": "count.value"}
_ERROR_KEYS: dict[str, dict[str, str]] = {
    "performed": {"event": "performed", **_COUNT_KEYS},
    "first_performed": {"event": "first_performed"},
    "last_performed": {"event": "last_performed"},
    "metric": {"aggregate": "metric"},
    "near": {"latitude": "near.latitude", "longitude": "near.longitude", "km": "near.km"},
    "engaged": {"action": "engaged", **_COUNT_KEYS},
    "reachable": {"channel": "reachable"},
    "in_segment": {"segment": "in_segment"},
    "bucket": {"salt": "bucket"},
}


def rule_from_json(data: Any) -> Rule:
    """The rule in ``data`` (parsed JSON); raises :class:`RuleError` with the path of the first problem."""
    return check_size(_Reader().rule(data, "", 1))


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The canonical JSON of ``rule``: ``rule_from_json(rule_to_json(rule)) == rule``."""
    if isinstance(rule, All | AnyOf):
        return {"all" if isinstance(rule, All) else "any": [rule_to_json(item) for item in rule.items]}
    if isinstance(rule, Not):
        return {"not": rule_to_json(rule.item)}
    return _WRITERS[type(rule)](rule)


# -- reading -----------------------------------------------------------------------------------
def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Reader:
    def __init__(self) -> None:
        self.conditions = 0  # counted on the way, so a huge group is refused early

    def rule(self, data: Any, path: str, depth: int) -> Rule:
        if depth > MAX_DEPTH:
            raise RuleError(f"nested more than {MAX_DEPTH} levels deep", path)
        kind = _kind(data, path)
        if kind in ("all", "any"):
            return self.group(kind, data[kind], _at(path, kind), depth)
        if kind == "not":
            return Not(self.rule(data["not"], _at(path, "not"), depth + 1))
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise RuleError(f"more than {MAX_CONDITIONS} conditions", path)
        node, arguments = _READERS[kind](data, path)
        return _build(node, arguments, path, _ERROR_KEYS.get(kind, {}))

    def group(self, kind: str, items: Any, path: str, depth: int) -> Rule:
        if not isinstance(items, list):
            raise RuleError("a list of rules", path)
        if not items:
            raise RuleError(f"'{kind}' needs at least one rule (an empty group would match everyone)", path)
        rules = tuple(self.rule(item, f"{path}[{index}]", depth + 1) for index, item in enumerate(items))
        if len(rules) == 1:
            return rules[0]
        return All(rules) if kind == "all" else AnyOf(rules)


def _kind(data: Any, path: str) -> str:
    if not isinstance(data, dict):
        raise RuleError('a rule is an object, like {"field": "country", "op": "eq", "value": "US"}', path)
    kinds = [key for key in data if key in KINDS]
    if not kinds:
        raise RuleError(f"a rule object has one of the keys: {', '.join(KINDS)}", path)
    if len(kinds) > 1:
        raise RuleError(f"one rule per object: found both '{kinds[0]}' and '{kinds[1]}'", path)
    return _check_keys(data, KINDS[kinds[0]], path, f"a '{kinds[0]}' rule")


def _check_keys(data: dict, allowed: tuple[str, ...], path: str, what: str) -> str:
    """The first allowed key, after refusing unknown keys and nulls."""
    for key, value in data.items():
        if key not in allowed:
            raise RuleError(f"unknown key in {what}; it has: {', '.join(allowed)}", _at(path, str(key)))
        if value is None:
            raise RuleError("null is not a value; leave the key out", _at(path, key))
    return allowed[0]


def _required(data: dict, key: str, path: str) -> Any:
    if key not in data:
        raise RuleError(f"missing '{key}'", _at(path, key))
    return data[key]


def _build(node: Callable, arguments: dict[str, Any], path: str, keys: dict[str, str]) -> Rule:
    """``node(**arguments)``, its shape errors located by their JSON path."""
    try:
        return node(**arguments)
    except RuleError as error:
        name = error.path.split("[")[0]  # "where[1]" is the JSON's "where[1]" too
        located = keys.get(name, name) + error.path[len(name):]
        raise RuleError(error.reason, _at(path, located) if located else path) from None


def _value(data: dict, key: str, path: str, required: bool = True) -> Any:
    if key not in data and not required:
        return None
    raw, path = _required(data, key, path), _at(path, key)
    if not isinstance(raw, list):
        return _scalar(raw, path)
    if len(raw) > MAX_LIST:
        raise RuleError(f"a list holds at most {MAX_LIST:,} values", path)
    return tuple(_scalar(item, f"{path}[{index}]") for index, item in enumerate(raw))


def _scalar(raw: Any, path: str) -> Any:
    if isinstance(raw, list):
        raise RuleError("a list does not hold lists", path)
    if raw is None:
        raise RuleError("null is not a value", path)
    if not isinstance(raw, dict):
        return raw  # the node checks it is text, a number or true/false
    if set(raw) != {"days_ago"}:
        raise RuleError('an object as a value is a relative date, {"days_ago": 30}', path)
    return _build(DaysAgo, {"days": raw["days_ago"]}, path, {"days ago": "days_ago"})


def _compare(data: Any, path: str) -> Compare:
    if not isinstance(data, dict) or "field" not in data:
        raise RuleError('a property condition, like {"field": "amount", "op": "gt", "value": 10}', path)
    _check_keys(data, KINDS["field"], path, "a property condition")
    compare = _build(Compare, _read_compare(data, path)[1], path, {})
    if compare.op not in PROPERTY_OPS:  # checked here too, so the path ends at the operator
        raise RuleError(f"property conditions use: {', '.join(PROPERTY_OPS)}", _at(path, "op"))
    return compare


def _where(data: dict, path: str) -> tuple[Compare, ...]:
    items, path = data.get("where", []), _at(path, "where")
    if not isinstance(items, list):
        raise RuleError("a list of property conditions", path)
    if len(items) > MAX_CONDITIONS:
        raise RuleError(f"at most {MAX_CONDITIONS} property conditions", path)
    return tuple(_compare(item, f"{path}[{index}]") for index, item in enumerate(items))


def _counted(data: dict, path: str) -> dict[str, Any]:
    """``count_op``, ``count`` and ``within_days`` from ``"count": {"op": ..., "value": ...}`` and ``within_days``."""
    arguments = {"within_days": data.get("within_days")}
    if "count" in data:
        count, path = data["count"], _at(path, "count")
        if not isinstance(count, dict):
            raise RuleError('a count is an object, like {"op": "gte", "value": 2}', path)
        _check_keys(count, ("op", "value"), path, "a count")
        arguments.update(count_op=_required(count, "op", path), count=_required(count, "value", path))
    return arguments


Reading = tuple[Callable[..., Rule], dict[str, Any]]


def _read_compare(data: dict, path: str) -> Reading:
    return Compare, {"field": data["field"], "op": _required(data, "op", path),
                     "value": _value(data, "value", path, required=False)}


def _read_performed(data: dict, path: str) -> Reading:
    return Performed, {"event": data["performed"], "where": _where(data, path), **_counted(data, path)}


def _read_event_time(data: dict, path: str) -> Reading:
    which = "first" if "first_performed" in data else "last"
    return EventTime, {"event": data[f"{which}_performed"], "which": which, "op": _required(data, "op", path),
                       "value": _value(data, "value", path)}


def _read_metric(data: dict, path: str) -> Reading:
    return EventMetric, {
        "aggregate": data["metric"], "event": _required(data, "event", path),
        "property": _required(data, "property", path), "op": _required(data, "op", path),
        "value": _value(data, "value", path), "within_days": data.get("within_days"), "where": _where(data, path),
    }


def _read_near(data: dict, path: str) -> Reading:
    point, path = data["near"], _at(path, "near")
    if not isinstance(point, dict):
        raise RuleError('a point and a distance, like {"latitude": 40.7, "longitude": -74.0, "km": 25}', path)
    _check_keys(point, ("latitude", "longitude", "km"), path, "'near'")
    return Near, {key: _required(point, key, path) for key in ("latitude", "longitude", "km")}


def _read_engaged(data: dict, path: str) -> Reading:
    return Engaged, {"action": data["engaged"], "campaign": data.get("campaign"), **_counted(data, path)}


_READERS: dict[str, Callable[[dict, str], Reading]] = {
    "field": _read_compare,
    "performed": _read_performed,
    "first_performed": _read_event_time,
    "last_performed": _read_event_time,
    "metric": _read_metric,
    "near": _read_near,
    "engaged": _read_engaged,
    "reachable": lambda data, path: (Reachable, {"channel": data["reachable"], "topic": data.get("topic")}),
    "in_segment": lambda data, path: (InSegment, {"segment": data["in_segment"]}),
    "bucket": lambda data, path: (Bucket, {"salt": data["bucket"], "op": _required(data, "op", path),
                                           "value": _value(data, "value", path)}),
}


# -- writing -----------------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, DaysAgo):
        return {"days_ago": value.days}
    return value


def _write_compare(rule: Compare) -> dict[str, Any]:
    data = {"field": rule.field, "op": rule.op}
    return data if rule.value is None else {**data, "value": _json_value(rule.value)}


def _write_options(rule: Performed | Engaged | EventMetric) -> dict[str, Any]:
    """The optional keys that differ from their defaults."""
    data: dict[str, Any] = {}
    if getattr(rule, "where", ()):
        data["where"] = [_write_compare(item) for item in rule.where]  # type: ignore[union-attr]
    if isinstance(rule, Performed | Engaged) and (rule.count_op, rule.count) != ("gte", 1):
        data["count"] = {"op": rule.count_op, "value": rule.count}
    if rule.within_days is not None:
        data["within_days"] = rule.within_days
    return data


def _write_engaged(rule: Engaged) -> dict[str, Any]:
    campaign = {} if rule.campaign is None else {"campaign": rule.campaign}
    return {"engaged": rule.action, **campaign, **_write_options(rule)}


def _write_metric(rule: EventMetric) -> dict[str, Any]:
    return {"metric": rule.aggregate, "event": rule.event, "property": rule.property, "op": rule.op,
            "value": _json_value(rule.value), **_write_options(rule)}


_WRITERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    Compare: _write_compare,
    Performed: lambda rule: {"performed": rule.event, **_write_options(rule)},
    EventTime: lambda rule: {f"{rule.which}_performed": rule.event, "op": rule.op, "value": _json_value(rule.value)},
    EventMetric: _write_metric,
    Near: lambda rule: {"near": {"latitude": rule.latitude, "longitude": rule.longitude, "km": rule.km}},
    Engaged: _write_engaged,
    Reachable: lambda rule: {"reachable": rule.channel, **({} if rule.topic is None else {"topic": rule.topic})},
    InSegment: lambda rule: {"in_segment": rule.segment},
    Bucket: lambda rule: {"bucket": rule.salt, "op": rule.op, "value": _json_value(rule.value)},
}
