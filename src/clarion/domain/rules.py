"""The segment rule model: a tree of conditions, pure data with no I/O.

A rule is a tree of :class:`All`, :class:`AnyOf` and :class:`Not` over conditions. It is stored as
JSON (``segments.rule_json``) and written by people in a text form (``segments.rule_text``); both
round-trip to these objects. The nodes check their own shape when built (an operator that takes
a list gets a list, days are positive, groups are not empty), so a tree that exists is well formed.
Whether a field exists and has the right type is the compiler's business (``segments.compiler``),
which knows the schema.

Values stay JSON scalars (a date is its ISO text) until the compiler coerces them to the field's
type; :class:`DaysAgo` is a date relative to the moment the segment is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ClarionError

MAX_DEPTH = 16  # nested groups: deeper trees are refused (they are never written by people)
MAX_CONDITIONS = 200  # conditions in one rule
MAX_LIST = 1_000  # values in one ``in`` list
MAX_STRING = 1_000  # characters in one string value
MAX_DAYS = 36_500  # 100 years, the longest window or look-ahead
MAX_COUNT = 1_000_000  # the largest "performed N times"
MAX_NUMBER = 2**63  # |value| below this: both stores compare it with a 64-bit integer column without overflow

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte")
LIST_OPS = ("in", "not_in")
TEXT_OPS = ("contains", "starts_with")
PRESENCE_OPS = ("exists", "not_exists")
DATE_OPS = ("before", "after")  # value: an ISO date or datetime text, or DaysAgo
WINDOW_OPS = ("within", "not_within")  # value: days; "within the last N days"
ANNIVERSARY_OPS = ("in_next",)  # value: days; the date's month and day fall in the next N days
RANGE_OPS = ("between",)  # value: (low, high), both included
FIELD_OPS = COMPARISONS + LIST_OPS + TEXT_OPS + PRESENCE_OPS + DATE_OPS + WINDOW_OPS + ANNIVERSARY_OPS + RANGE_OPS
PROPERTY_OPS = COMPARISONS + LIST_OPS + TEXT_OPS + PRESENCE_OPS + RANGE_OPS
COUNT_OPS = ("eq", "gte", "lte", "gt", "lt")
EVENT_TIME_OPS = DATE_OPS + WINDOW_OPS
METRIC_AGGREGATES = ("sum", "avg", "min", "max")
METRIC_OPS = COMPARISONS + RANGE_OPS
ENGAGEMENTS = ("received", "opened", "clicked", "converted")
BUCKETS = 100  # a contact's bucket is 0..99


class RuleError(ClarionError, ValueError):
    """A rule is invalid; ``path`` points at the part (``all[2].value``), ``reason`` says why."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


class RuleSyntaxError(RuleError):
    """The text form does not parse: where (1-based line and column) and what was expected."""

    def __init__(self, reason: str, line: int, column: int) -> None:
        ClarionError.__init__(self, f"line {line}, column {column}: {reason}")
        self.reason = reason
        self.path = ""
        self.line = line
        self.column = column


@dataclass(frozen=True)
class DaysAgo:
    """A date relative to evaluation time: ``30 days ago``."""

    days: int

    def __post_init__(self) -> None:
        _days(self.days, "days ago")


Scalar = str | int | float | bool | DaysAgo
Value = Scalar | tuple[Scalar, ...] | None


@dataclass(frozen=True)
class Compare:
    """``field op value`` on a profile field, aggregate or score (or, inside ``where``, an event property)."""

    field: str
    op: str
    value: Value = None

    def __post_init__(self) -> None:
        _name(self.field, "field")
        _check_value(self.op, self.value, FIELD_OPS)


@dataclass(frozen=True)
class Performed:
    """The contact performed ``event`` (matching ``where``) ``count_op count`` times, in the last ``within_days``."""

    event: str
    where: tuple[Compare, ...] = ()
    count_op: str = "gte"
    count: int = 1
    within_days: int | None = None

    def __post_init__(self) -> None:
        _text(self.event, "event")
        _where(self.where)
        _choice(self.count_op, COUNT_OPS, "count operator")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or not 0 <= self.count <= MAX_COUNT:
            raise RuleError(f"a count is a whole number from 0 to {MAX_COUNT:,}", "count")
        if self.count_op == "lt" and self.count == 0:
            raise RuleError("fewer than 0 times can never hold", "count")
        if self.within_days is not None:
            _days(self.within_days, "within_days")


@dataclass(frozen=True)
class EventTime:
    """The first or last time the contact performed ``event``, compared with a date or window."""

    event: str
    which: str  # first | last
    op: str
    value: Scalar

    def __post_init__(self) -> None:
        _text(self.event, "event")
        _choice(self.which, ("first", "last"), "which")
        _check_value(self.op, self.value, EVENT_TIME_OPS)


@dataclass(frozen=True)
class EventMetric:
    """An aggregate of a numeric event property (``sum`` of revenue ...), compared with a number."""

    aggregate: str
    event: str
    property: str
    op: str
    value: Value
    within_days: int | None = None
    where: tuple[Compare, ...] = ()

    def __post_init__(self) -> None:
        _choice(self.aggregate, METRIC_AGGREGATES, "aggregate")
        _text(self.event, "event")
        _name(self.property, "property")
        _check_value(self.op, self.value, METRIC_OPS)
        for number in self.value if isinstance(self.value, tuple) else (self.value,):
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise RuleError(f"{self.aggregate}() is compared with numbers", "value")
        if self.within_days is not None:
            _days(self.within_days, "within_days")
        _where(self.where)


@dataclass(frozen=True)
class Near:
    """Within ``km`` kilometres (great-circle) of a point."""

    latitude: float
    longitude: float
    km: float

    def __post_init__(self) -> None:
        for name, value, limit in (("latitude", self.latitude, 90), ("longitude", self.longitude, 180)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not -limit <= value <= limit:
                raise RuleError(f"a number from -{limit} to {limit}", name)
        if isinstance(self.km, bool) or not isinstance(self.km, int | float) or not 0 < self.km <= 20_038:
            raise RuleError("a distance above 0 and at most 20,038 km (half the equator)", "km")


@dataclass(frozen=True)
class Engaged:
    """Engagement with our messages: received, opened, clicked or converted (one campaign or any)."""

    action: str
    campaign: int | None = None
    count_op: str = "gte"
    count: int = 1
    within_days: int | None = None

    def __post_init__(self) -> None:
        _choice(self.action, ENGAGEMENTS, "action")
        if self.campaign is not None and (isinstance(self.campaign, bool) or not isinstance(self.campaign, int)
                                          or self.campaign < 1):
            raise RuleError("a campaign id is a positive whole number", "campaign")
        Performed("x", count_op=self.count_op, count=self.count, within_days=self.within_days)


@dataclass(frozen=True)
class Reachable:
    """Consented and reachable on ``channel`` (for ``topic``, else the channel as a whole)."""

    channel: str
    topic: str | None = None

    def __post_init__(self) -> None:
        _text(self.channel, "channel")
        if self.topic is not None:
            _text(self.topic, "topic")


@dataclass(frozen=True)
class InSegment:
    """Member of another segment (by name); cycles are refused by the segment service."""

    segment: str

    def __post_init__(self) -> None:
        _text(self.segment, "segment")


@dataclass(frozen=True)
class Bucket:
    """A deterministic bucket 0..99 from a hash of the contact id and ``salt``, for holdouts and splits."""

    salt: str
    op: str
    value: Value

    def __post_init__(self) -> None:
        _text(self.salt, "salt")
        _check_value(self.op, self.value, COMPARISONS + RANGE_OPS)
        for number in self.value if isinstance(self.value, tuple) else (self.value,):
            if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < BUCKETS:
                raise RuleError(f"a bucket is a whole number from 0 to {BUCKETS - 1}", "value")


@dataclass(frozen=True)
class All:
    items: tuple[Rule, ...]

    def __post_init__(self) -> None:
        _group(self.items, "all")


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Rule, ...]

    def __post_init__(self) -> None:
        _group(self.items, "any")


@dataclass(frozen=True)
class Not:
    item: Rule


Condition = Compare | Performed | EventTime | EventMetric | Near | Engaged | Reachable | InSegment | Bucket
Rule = All | AnyOf | Not | Condition


def walk(rule: Rule, depth: int = 1):
    """Every node of the tree with its depth (the root is 1), parents first."""
    yield rule, depth
    children = rule.items if isinstance(rule, All | AnyOf) else (rule.item,) if isinstance(rule, Not) else ()
    for child in children:
        yield from walk(child, depth + 1)


def check_size(rule: Rule) -> Rule:
    """Refuse trees deeper than MAX_DEPTH or with more than MAX_CONDITIONS conditions."""
    conditions = 0
    for node, depth in walk(rule):
        if depth > MAX_DEPTH:
            raise RuleError(f"nested more than {MAX_DEPTH} levels deep")
        if not isinstance(node, All | AnyOf | Not):
            conditions += 1
    if conditions > MAX_CONDITIONS:
        raise RuleError(f"more than {MAX_CONDITIONS} conditions")
    return rule


# -- shape checks -------------------------------------------------------------------------
def _group(items: tuple, name: str) -> None:
    if not isinstance(items, tuple) or len(items) < 2:
        raise RuleError(f"'{name}' needs at least two rules (an empty group would match everyone)", name)


def _choice(value: object, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise RuleError(f"unknown {what} {value!r}; expected one of: {', '.join(allowed)}", what)


def _name(value: object, what: str) -> None:
    _text(value, what)
    if any(char in value for char in "\n\r\t") or value != value.strip():  # type: ignore[operator]
        raise RuleError("a name has no surrounding blanks or control characters", what)


def _text(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise RuleError("must be a non-empty string", what)
    if len(value) > MAX_STRING:
        raise RuleError(f"longer than {MAX_STRING} characters", what)


def _days(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise RuleError(f"a whole number of days from 1 to {MAX_DAYS:,}", what)


def _scalar(value: object, what: str = "value") -> None:
    if isinstance(value, DaysAgo):
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise RuleError(f"longer than {MAX_STRING} characters", what)
        return
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        raise RuleError("not a finite number", what)
    if isinstance(value, int | float) and not isinstance(value, bool) and not -MAX_NUMBER < value < MAX_NUMBER:
        raise RuleError("a number beyond 64 bits (±9.2e18), which the stores cannot compare", what)
    if not isinstance(value, str | int | float | bool):
        raise RuleError(f"{type(value).__name__} is not a value (text, number, true/false or N days ago)", what)


def _check_value(op: str, value: object, allowed: tuple[str, ...]) -> None:  # noqa: C901 - one branch per op kind
    _choice(op, allowed, "op")
    if op in PRESENCE_OPS:
        if value is not None:
            raise RuleError(f"'{op}' takes no value", "value")
    elif op in LIST_OPS:
        if not isinstance(value, tuple) or not value:
            raise RuleError(f"'{op}' takes a non-empty list of values", "value")
        if len(value) > MAX_LIST:
            raise RuleError(f"'{op}' lists at most {MAX_LIST:,} values", "value")
        for item in value:
            _scalar(item)
            if isinstance(item, DaysAgo):
                raise RuleError("a list holds text, numbers or true/false", "value")
    elif op in RANGE_OPS:
        if not isinstance(value, tuple) or len(value) != 2:
            raise RuleError("'between' takes two values, low and high", "value")
        for item in value:
            _scalar(item)
    elif op in WINDOW_OPS + ANNIVERSARY_OPS:
        _days(value, "value")
    elif op in DATE_OPS:
        if not isinstance(value, str | DaysAgo):
            raise RuleError(f"'{op}' takes a date ('2026-01-31') or N days ago", "value")
        _scalar(value)
    else:
        if value is None or isinstance(value, tuple):
            raise RuleError(f"'{op}' takes one value", "value")
        _scalar(value)
        if op in TEXT_OPS and not isinstance(value, str):
            raise RuleError(f"'{op}' takes a text value", "value")


def _where(filters: tuple) -> None:
    if not isinstance(filters, tuple):
        raise RuleError("a list of property conditions", "where")
    for index, item in enumerate(filters):
        if not isinstance(item, Compare) or item.op not in PROPERTY_OPS:
            raise RuleError(f"property conditions use: {', '.join(PROPERTY_OPS)}", f"where[{index}]")
