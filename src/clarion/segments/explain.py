"""Why a contact is, or is not, in a segment: the rule's tree with, at each node, whether it holds.

Each condition is decided by running its own compiled predicate (``segments.compiler``) restricted to the
contact, so the explanation cannot disagree with membership; groups combine their children (two-valued, as
the compiled predicates never yield NULL). Each condition also shows the values that decided it: the
field's value for a comparison (the raw JSON value for custom attributes and dates), the count, time or
aggregate for behaviour, the address, suppression and consent states for ``reachable``, the distance for
``near``, the bucket for ``bucket``; ``in_segment`` explains the other segment's rule beneath it.

A merged profile is never a member: its explanation is the root alone, not holding, with ``merged_into``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ..domain.errors import NotFound
from ..domain.rules import (
    All,
    AnyOf,
    Bucket,
    Compare,
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
from ..store.schema import contact_event_stats, contacts, events
from ..store.schema_scores import engagements
from . import behaviour
from .buckets import bucket_of
from .compiler import CompileContext, RuleCompiler, dates_in_range
from .fields import resolve_field
from .predicates import utc_offset_hours
from .reachable import reachability_facts
from .rule_format import format_rule
from .spatial import distance_km


@dataclass
class Explanation:
    """One node of the rule: its canonical text, whether it holds, the deciding values, its children."""

    rule: str
    holds: bool
    values: dict[str, Any] = field(default_factory=dict)
    children: list[Explanation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "holds": self.holds,
                "values": {key: _json_value(value) for key, value in self.values.items()},
                "children": [child.to_dict() for child in self.children]}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return value


def explain(conn: Connection, rule: Rule, context: CompileContext, contact_id: int) -> Explanation:
    """The explanation of ``rule`` for one contact; NotFound if there is no such contact."""
    row = conn.execute(select(contacts.c.merged_into).where(contacts.c.id == contact_id)).first()
    if row is None:
        raise NotFound("contact", contact_id)
    if row.merged_into is not None:
        return Explanation(format_rule(rule), False, {"merged_into": row.merged_into})
    with dates_in_range():
        return _Explainer(conn, context, contact_id).node(rule)


class _Explainer:
    def __init__(self, conn: Connection, context: CompileContext, contact_id: int) -> None:
        self.conn = conn
        self.context = context
        self.contact_id = contact_id
        self.segments = RuleCompiler(context)  # follows in_segment, with its cycle and depth checks

    def node(self, rule: Rule) -> Explanation:
        text = format_rule(rule)
        if isinstance(rule, All | AnyOf):
            children = [self.node(item) for item in rule.items]
            combine = all if isinstance(rule, All) else any
            return Explanation(text, combine(child.holds for child in children), children=children)
        if isinstance(rule, Not):
            child = self.node(rule.item)
            return Explanation(text, not child.holds, children=[child])
        if isinstance(rule, InSegment):
            with self.segments.entering(rule.segment) as nested:
                child = self.node(nested)
            return Explanation(text, child.holds, {"segment": rule.segment}, [child])
        return Explanation(text, self._holds(rule), self._values(rule))

    def _holds(self, rule: Rule) -> bool:
        compiler = RuleCompiler(self.context)
        query = compiler.statement(compiler.predicate(rule)).where(contacts.c.id == self.contact_id)
        return self.conn.execute(query).first() is not None

    def _values(self, rule: Rule) -> dict[str, Any]:
        clock = self.context.clock
        if isinstance(rule, Compare):
            return {"value": self._field_value(rule)}
        if isinstance(rule, Performed):
            return {"count": self._event_count(rule)}
        if isinstance(rule, EventTime):
            column = contact_event_stats.c.first_at if rule.which == "first" else contact_event_stats.c.last_at
            return {f"{rule.which}_at": self._scalar(select(column).where(
                contact_event_stats.c.contact_id == self.contact_id, contact_event_stats.c.name == rule.event))}
        if isinstance(rule, EventMetric):
            return {rule.aggregate: self._scalar(behaviour.metric_value(rule, clock, self.contact_id))}
        if isinstance(rule, Engaged):
            return {"count": self._scalar(select(func.count()).select_from(engagements).where(
                engagements.c.contact_id == self.contact_id, *behaviour.engagement_conditions(rule, clock)))}
        if isinstance(rule, Near):
            return self._distance(rule)
        if isinstance(rule, Reachable):
            return reachability_facts(self.conn, rule, self.contact_id)
        assert isinstance(rule, Bucket)
        return {"bucket": bucket_of(self.contact_id, self.context.bucket_salt_prefix + rule.salt)}

    def _scalar(self, query) -> Any:
        return self.conn.execute(query).scalar()

    def _field_value(self, rule: Compare) -> Any:
        target = resolve_field(rule.field, rule.op, rule.value)
        if target.name == "utc_offset":
            zone = self._scalar(select(contacts.c.timezone).where(contacts.c.id == self.contact_id))
            zone = zone or self.context.default_timezone
            return {"timezone": zone, "utc_offset": utc_offset_hours(zone, self.context.now)}
        if target.json_doc is not None:  # the raw JSON value, whatever its type
            document = self._scalar(select(target.json_doc).where(contacts.c.id == self.contact_id)) or {}
            return document.get(target.json_key)
        compiler = RuleCompiler(self.context)
        if target.join:
            compiler.joins.add(target.join)
        return self._scalar(select(target.expression).select_from(compiler.source())
                            .where(contacts.c.id == self.contact_id))

    def _event_count(self, rule: Performed) -> int:
        if rule.where or rule.within_days:
            return self._scalar(select(func.count()).select_from(events).where(
                events.c.contact_id == self.contact_id, *behaviour.event_conditions(rule, self.context.clock)))
        count = self._scalar(select(contact_event_stats.c.count).where(
            contact_event_stats.c.contact_id == self.contact_id, contact_event_stats.c.name == rule.event))
        return count or 0

    def _distance(self, rule: Near) -> dict[str, Any]:
        row = self.conn.execute(select(contacts.c.latitude, contacts.c.longitude)
                                .where(contacts.c.id == self.contact_id)).one()
        if row.latitude is None or row.longitude is None:
            return {"latitude": row.latitude, "longitude": row.longitude, "distance_km": None}
        distance = distance_km(row.latitude, row.longitude, rule.latitude, rule.longitude)
        return {"latitude": row.latitude, "longitude": row.longitude, "distance_km": round(distance, 3)}
