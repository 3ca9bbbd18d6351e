"""Behaviour conditions: performed, first/last performed, event metrics and engagement with our messages.

Each compiles to ``contacts.id IN (uncorrelated subquery)`` or its ``NOT IN``, so the predicate is never
NULL (``events.contact_id`` and ``engagements.contact_id`` are NOT NULL) and the subquery runs once.

- ``performed(event, where...) op N times within D days``: counts the contact's events named ``event``
  (exact, case-sensitive name) that match every property filter, in the window ``now - D days .. now``.
  Counts that include zero (``= 0``, ``<= N``, ``< N``) are the complement of a HAVING over the contacts
  that have events. Without filters or window the per-contact counts of ``contact_event_stats`` are read.
- Property filters are field comparisons on a top-level key of ``events.properties`` (a dotted name is
  one key), typed by the rule's value like custom attributes; ``revenue`` of "Order Completed" reads the
  ``events.revenue`` column, which the ingestion fills from revenue, total or the products.
- ``first_performed``/``last_performed``: ``contact_event_stats.first_at``/``last_at``; a contact who
  never performed the event matches neither before, after nor within, and so does match ``not within``.
- ``sum/avg/min/max(event, property) op value``: over the contact's matching events whose property is a
  number; only contacts with at least one such event can match (``sum(...) < 10`` leaves out those who never
  ordered: write ``not sum(...) >= 10`` to include them).
- ``received/opened/clicked/converted(campaign = C) op N times within D days`` count ``engagements``
  exactly like ``performed``: human engagement only (tracking.classify); machine opens and clicks (mail
  privacy proxies, link scanners) never make a contact "engaged".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Float, and_, func, literal, not_, select, true
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from ..domain.events import ORDER_COMPLETED
from ..domain.rules import Compare, Engaged, EventMetric, EventTime, Performed
from ..store.schema import contact_event_stats, contacts, events
from ..store.schema_scores import engagements
from .fields import DATETIME, NUMBER, Field, json_field
from .predicates import Clock, compare
from .sql_portable import json_number, key_bind

_COUNT_TESTS: dict[str, Callable] = {
    "eq": lambda count, n: count == n, "gt": lambda count, n: count > n, "gte": lambda count, n: count >= n,
}
_METRICS = {"sum": func.sum, "avg": func.avg, "min": func.min, "max": func.max}
_METRIC_TESTS: dict[str, Callable] = {
    "eq": lambda x, v: x == v, "ne": lambda x, v: x != v, "gt": lambda x, v: x > v,
    "gte": lambda x, v: x >= v, "lt": lambda x, v: x < v, "lte": lambda x, v: x <= v,
}

# "Who has count >= N" for a count test: (test, N) -> subquery of contact ids.
HavingCount = Callable[[str, int], Select]


def performed(node: Performed, clock: Clock) -> ColumnElement:
    if node.where or node.within_days:
        conditions = event_conditions(node, clock)
        return count_condition(lambda test, n: _having(events.c.contact_id, conditions, test, n, clock),
                               node.count_op, node.count)
    stats = contact_event_stats.c

    def having(test: str, n: int) -> Select:
        return _scoped(select(stats.contact_id).where(stats.name == node.event, _COUNT_TESTS[test](stats.count, n)),
                       stats.contact_id, clock)
    return count_condition(having, node.count_op, node.count)


def event_conditions(node: Performed | EventMetric, clock: Clock) -> list[ColumnElement]:
    """The WHERE terms selecting the events a performed() or metric counts (the contact filter apart)."""
    conditions = [events.c.name == node.event]
    if node.within_days:
        conditions.append(_window(events.c.occurred_at, node.within_days, clock))
    conditions.extend(compare(property_field(node.event, item), item.op, item.value, clock) for item in node.where)
    return conditions


def property_field(event: str, item: Compare) -> Field:
    """An event property typed by the rule's value; Order Completed's revenue is the events.revenue column."""
    if event == ORDER_COMPLETED and item.field == "revenue" and (item.value is None or _is_number(item.value)):
        field = Field("revenue", NUMBER, events.c.revenue)
    else:
        field = json_field(events.c.properties, item.field, item.field, item.value)
    field.check_op(item.op)
    return field


def _is_number(value: object) -> bool:
    items = value if isinstance(value, tuple) else (value,)
    return all(isinstance(item, int | float) and not isinstance(item, bool) for item in items)


def count_condition(having: HavingCount, count_op: str, count: int) -> ColumnElement:
    """``count_op count`` times, given who has ``count >= N`` / ``> N`` / ``= N`` among contacts with rows."""
    member = contacts.c.id
    if count_op == "gte":
        return true() if count == 0 else member.in_(having("gte", count))
    if count_op == "gt":
        return member.in_(having("gt", count))
    if count_op == "eq":
        return member.not_in(having("gte", 1)) if count == 0 else member.in_(having("eq", count))
    if count_op == "lte":
        return member.not_in(having("gt", count))
    return member.not_in(having("gte", count))  # lt, count >= 1 (the model refuses < 0)


def _having(contact_id: ColumnElement, conditions: list[ColumnElement], test: str, n: int, clock: Clock) -> Select:
    query = _scoped(select(contact_id).where(*conditions), contact_id, clock)
    if (test, n) in (("gte", 1), ("gt", 0)):  # at least one row: no need to count
        return query
    return query.group_by(contact_id).having(_COUNT_TESTS[test](func.count(), n))


def _scoped(query: Select, contact_id: ColumnElement, clock: Clock) -> Select:
    """The query restricted to the clock's scope of contacts, if any."""
    return query if clock.scope is None else query.where(contact_id.in_(clock.scope))


def _window(column: ColumnElement, days: int, clock: Clock) -> ColumnElement:
    """In the last ``days`` days up to now."""
    return and_(column >= literal(clock.now - timedelta(days=days), column.type),
                column <= literal(clock.now, column.type))


def event_time(node: EventTime, clock: Clock) -> ColumnElement:
    if node.op == "not_within":
        return not_(event_time(EventTime(node.event, node.which, "within", node.value), clock))
    stats = contact_event_stats.c
    field = event_time_field(node)
    return contacts.c.id.in_(_scoped(select(stats.contact_id).where(
        stats.name == node.event, compare(field, node.op, node.value, clock)), stats.contact_id, clock))


def event_time_field(node: EventTime) -> Field:
    column = contact_event_stats.c.first_at if node.which == "first" else contact_event_stats.c.last_at
    return Field(f"{node.which}_performed({node.event!r})", DATETIME, column)


def event_metric(node: EventMetric, clock: Clock) -> ColumnElement:
    rows = metric_rows(node, clock)
    aggregate = _METRICS[node.aggregate](rows.c.metric)
    if node.op == "between":
        low, high = (_float(v) for v in node.value)
        test = and_(aggregate >= low, aggregate <= high)
    else:
        test = _METRIC_TESTS[node.op](aggregate, _float(node.value))
    return contacts.c.id.in_(select(rows.c.contact_id).where(rows.c.metric.is_not(None))
                             .group_by(rows.c.contact_id).having(test))


def metric_rows(node: EventMetric, clock: Clock, contact_id: int | None = None):
    """A subquery of (contact_id, metric): the numeric property of each matching event."""
    if node.event == ORDER_COMPLETED and node.property == "revenue":
        value = events.c.revenue
    else:
        value = json_number(events.c.properties, key_bind(node.property))
    conditions = event_conditions(node, clock)
    if contact_id is not None:
        conditions.append(events.c.contact_id == contact_id)
    query = select(events.c.contact_id, value.label("metric")).where(*conditions)
    return _scoped(query, events.c.contact_id, clock).subquery("metric_rows")


def metric_value(node: EventMetric, clock: Clock, contact_id: int) -> Select:
    """The aggregate for one contact (NULL without matching events), for explanations."""
    rows = metric_rows(node, clock, contact_id)
    return select(_METRICS[node.aggregate](rows.c.metric)).where(rows.c.metric.is_not(None))


def _float(value: object) -> ColumnElement:
    return literal(float(value), Float())


def engaged(node: Engaged, clock: Clock) -> ColumnElement:
    conditions = engagement_conditions(node, clock)
    return count_condition(lambda test, n: _having(engagements.c.contact_id, conditions, test, n, clock),
                           node.count_op, node.count)


def engagement_conditions(node: Engaged, clock: Clock) -> list[ColumnElement]:
    conditions = [engagements.c.action == node.action, engagements.c.machine.is_(False)]
    if node.campaign is not None:
        conditions.append(engagements.c.campaign_id == node.campaign)
    if node.within_days:
        conditions.append(_window(engagements.c.occurred_at, node.within_days, clock))
    return conditions

