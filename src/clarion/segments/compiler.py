"""Segment rules compiled to ONE SQLAlchemy Core SELECT of contact ids, with the same members on both stores.

``compile_rule(rule, context)`` gives ``SELECT contacts.id FROM contacts [LEFT JOIN contact_aggregates]
[LEFT JOIN contact_scores] WHERE contacts.merged_into IS NULL AND <predicate>``: merged profiles are never
members. Every value reaches SQL as a bound parameter and every field name comes from the allow-list in
``segments.fields``; an unknown field, an operator that does not fit the field's type, or a value outside a
field's closed set (``rfm.segment = "champion"``, see ``segments.vocabulary``) is a RuleError.

Null rules. Every condition compiles to a predicate that is TRUE or FALSE, never NULL, so ``not`` is the
exact complement and ``and``/``or`` are plain two-valued logic. A missing value (NULL column, absent JSON
key, a JSON value of another type than the rule's value, no aggregates or scores row) fails every
comparison except ``!=``, ``not in``, ``not exists`` and ``not within``, which are the negations of ``=``,
``in``, ``exists`` and ``within`` and so hold for it.

Text. Comparisons of text (=, !=, in, not in, contains, starts with) ignore the case of ASCII letters, the
same on both stores (SQLite's ``lower()`` folds only ASCII, so PostgreSQL is made to fold exactly those:
``"É"`` and ``"é"`` differ on both). ``contains`` and ``starts with`` match their text literally: ``%``, ``_``
and ``\\`` are escaped. Event names, channels, topics and segment names match exactly.

Time zones. ``now`` is the aware moment of evaluation; "today" and dates written in a rule are read in
``default_timezone`` (the workspace zone): ``after "2026-01-31"`` starts at 1 February 00:00 there,
``birthday in next 7 days`` counts from today there (the contact's own zone is not used), and a contact
without a time zone has that zone for ``utc_offset``. See ``segments.predicates`` for the date rules,
``segments.behaviour``, ``segments.reachable``, ``segments.spatial`` and ``segments.buckets`` for the other
conditions.

Segments. ``in_segment("name")`` inlines the named segment's rule (``context.resolve_segment``); a cycle
(a -> b -> a) is refused, naming it, and so are nesting deeper than ``MAX_SEGMENT_DEPTH`` and rules that
expand to more than ``MAX_EXPANDED_CONDITIONS`` conditions (which also keeps the statement far below
SQLite's 32,766 bound parameters: lists are bound as one JSON array each).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, and_, func, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

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
    RuleError,
)
from ..store.schema import contact_aggregates, contacts
from ..store.schema_scores import contact_scores
from . import behaviour
from .buckets import bucket
from .fields import AGGREGATES, SCORES, resolve_field
from .predicates import Clock, compare
from .reachable import reachable
from .spatial import near
from .vocabulary import canonical_value

MAX_SEGMENT_DEPTH = 8  # in_segment inside in_segment ...
MAX_EXPANDED_CONDITIONS = 1_000  # conditions after inlining every in_segment


@dataclass(frozen=True)
class CompileContext:
    """What a rule is evaluated against.

    ``resolve_segment`` returns another segment's rule by name and raises RuleError for an unknown one;
    ``segment_name`` is the segment being compiled, if any, so a rule that refers back to it is a cycle;
    ``bucket_salt_prefix`` is put before every bucket salt (a workspace can keep its splits its own).
    """

    now: datetime
    default_timezone: str = "UTC"
    resolve_segment: Callable[[str], Rule] | None = None
    segment_name: str | None = None
    bucket_salt_prefix: str = ""
    scope: Select | None = None  # only these contact ids matter (see predicates.Clock)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("CompileContext.now must be an aware datetime")
        try:
            ZoneInfo(self.default_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.default_timezone!r}") from None

    @property
    def clock(self) -> Clock:
        return Clock(self.now, ZoneInfo(self.default_timezone), self.scope)


def compile_rule(rule: Rule, context: CompileContext) -> Select:
    """The SELECT of the ids of the contacts matching ``rule`` (unordered)."""
    compiler = RuleCompiler(context)
    with dates_in_range():
        return compiler.statement(compiler.predicate(rule))


@contextmanager
def dates_in_range() -> Iterator[None]:
    """A date at the ends of the calendar overflows while bounds are computed (9999-12-31 plus a day, or a
    zone shift before year 1): the rule's fault, so a RuleError rather than a crash."""
    try:
        yield
    except OverflowError:
        raise RuleError("a date too close to year 1 or 9999 to compare (after time zone shifts)") from None


def count_members(conn: Connection, rule: Rule, context: CompileContext) -> int:
    query = compile_rule(rule, context).subquery()
    return conn.execute(select(func.count()).select_from(query)).scalar_one()


def members(conn: Connection, rule: Rule, context: CompileContext, limit: int | None = None) -> list[int]:
    """The ids of the matching contacts, ascending; the first ``limit`` of them if given."""
    query = compile_rule(rule, context).order_by(contacts.c.id)
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).scalars())


class RuleCompiler:
    """Compiles one rule tree; remembers the joins its fields need and the segments being inlined."""

    def __init__(self, context: CompileContext) -> None:
        self.context = context
        self.clock = context.clock
        self.joins: set[str] = set()
        self._segments: list[str] = [context.segment_name] if context.segment_name else []
        self._conditions = 0

    def statement(self, predicate: ColumnElement) -> Select:
        return select(contacts.c.id).select_from(self.source()).where(contacts.c.merged_into.is_(None), predicate)

    def source(self):
        """contacts with the LEFT JOINs the compiled fields need."""
        source = contacts
        if AGGREGATES in self.joins:
            source = source.outerjoin(contact_aggregates, contact_aggregates.c.contact_id == contacts.c.id)
        if SCORES in self.joins:
            source = source.outerjoin(contact_scores, contact_scores.c.contact_id == contacts.c.id)
        return source

    def predicate(self, rule: Rule) -> ColumnElement:
        if isinstance(rule, All):
            return and_(*(self.predicate(item) for item in rule.items))
        if isinstance(rule, AnyOf):
            return or_(*(self.predicate(item) for item in rule.items))
        if isinstance(rule, Not):
            return not_(self.predicate(rule.item))
        self._conditions += 1
        if self._conditions > MAX_EXPANDED_CONDITIONS:
            raise RuleError(f"the rule expands to more than {MAX_EXPANDED_CONDITIONS:,} conditions "
                            "(counting those of the segments it refers to)")
        return self._condition(rule)

    def _condition(self, rule: Rule) -> ColumnElement:
        clock = self.clock
        if isinstance(rule, Compare):
            return self._compare(rule)
        if isinstance(rule, Performed):
            return behaviour.performed(rule, clock)
        if isinstance(rule, EventTime):
            return behaviour.event_time(rule, clock)
        if isinstance(rule, EventMetric):
            return behaviour.event_metric(rule, clock)
        if isinstance(rule, Engaged):
            return behaviour.engaged(rule, clock)
        if isinstance(rule, Near):
            return near(rule)
        if isinstance(rule, Reachable):
            return reachable(rule)
        if isinstance(rule, InSegment):
            return self._in_segment(rule)
        if isinstance(rule, Bucket):
            return bucket(rule, self.context.bucket_salt_prefix)
        raise RuleError(f"not a rule: {type(rule).__name__}")

    def _compare(self, rule: Compare) -> ColumnElement:
        field = resolve_field(rule.field, rule.op, rule.value)
        if field.join:
            self.joins.add(field.join)
        return compare(field, rule.op, canonical_value(field.name, rule.op, rule.value), self.clock)

    def _in_segment(self, rule: InSegment) -> ColumnElement:
        with self.entering(rule.segment) as nested:
            return self.predicate(nested)

    @contextmanager
    def entering(self, name: str) -> Iterator[Rule]:
        """The rule of segment ``name``, checked for cycles and depth; ``name`` is open until the block ends."""
        if name in self._segments:
            cycle = " -> ".join([*self._segments[self._segments.index(name):], name])
            raise RuleError(f"segments refer to each other in a cycle: {cycle}", "segment")
        depth = len(self._segments) - (1 if self.context.segment_name else 0)
        if depth >= MAX_SEGMENT_DEPTH:
            raise RuleError(f"in_segment nested more than {MAX_SEGMENT_DEPTH} segments deep", "segment")
        if self.context.resolve_segment is None:
            raise RuleError(f"in_segment({name!r}): segments cannot be looked up here", "segment")
        nested = self.context.resolve_segment(name)
        self._segments.append(name)
        try:
            yield nested
        finally:
            self._segments.pop()
