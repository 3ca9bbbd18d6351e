"""Hypothesis strategies for valid segment rules, shared by the text and JSON round-trip tests.

They aim at the awkward corners: names that are keywords or need backticks, strings with quotes, backslashes,
newlines and unicode, negative and float numbers, relative dates, nested groups and ``not not x``.
"""

from __future__ import annotations

from hypothesis import strategies as st

from clarion.domain.rules import (
    ANNIVERSARY_OPS,
    BUCKETS,
    COMPARISONS,
    COUNT_OPS,
    DATE_OPS,
    ENGAGEMENTS,
    EVENT_TIME_OPS,
    FIELD_OPS,
    LIST_OPS,
    MAX_COUNT,
    MAX_DAYS,
    METRIC_AGGREGATES,
    PRESENCE_OPS,
    PROPERTY_OPS,
    RANGE_OPS,
    TEXT_OPS,
    WINDOW_OPS,
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
    RuleError,
    check_size,
)
from clarion.segments.rule_lexer import KEYWORDS

_AWKWARD_PIECES = st.sampled_from(['"', "\\", "\n", "\\n", "`", "``", "#", "é", "日本", "\u2028", "\x00", "\t", " "])
strings = st.lists(st.one_of(st.text(max_size=6), _AWKWARD_PIECES), max_size=4).map("".join)
non_empty_strings = strings.filter(bool)


def _valid_name(name: str) -> bool:
    try:
        Compare(name, "exists")
    except RuleError:
        return False
    return True


_keywords = st.sampled_from(sorted(KEYWORDS)).flatmap(lambda word: st.sampled_from([word, word.upper(), word.title()]))
_name_parts = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), _keywords, st.text(min_size=1, max_size=8)
)
names = st.one_of(
    _name_parts,
    st.lists(_name_parts, min_size=2, max_size=3).map(".".join),
    st.sampled_from([".a", "a.", "a..b", "`", "a.`b", "x`` y", "attributes.favourite colour"]),
).filter(_valid_name)

days = st.integers(1, MAX_DAYS)
days_ago = st.builds(DaysAgo, days)
# Within the model's limit (|x| < 2**63, rules.MAX_NUMBER), floats at its edge included.
numbers = st.one_of(st.integers(-(10**12), 10**12),
                   st.floats(-9.2e18, 9.2e18, allow_nan=False, allow_infinity=False))
plain_scalars = st.one_of(strings, numbers, st.booleans())
scalars = st.one_of(plain_scalars, days_ago)
within_days = st.none() | days


def _values_for(op: str) -> st.SearchStrategy:
    if op in COMPARISONS:
        return scalars
    if op in LIST_OPS:
        return st.lists(plain_scalars, min_size=1, max_size=4).map(tuple)
    if op in TEXT_OPS:
        return strings
    if op in PRESENCE_OPS:
        return st.none()
    if op in DATE_OPS:
        return strings | days_ago
    if op in WINDOW_OPS + ANNIVERSARY_OPS:
        return days
    assert op in RANGE_OPS
    return st.tuples(scalars, scalars)


def compares(ops: tuple[str, ...]) -> st.SearchStrategy[Compare]:
    return st.sampled_from(ops).flatmap(lambda op: st.builds(Compare, names, st.just(op), _values_for(op)))


where = st.lists(compares(PROPERTY_OPS), max_size=2).map(tuple)


@st.composite
def _counts(draw) -> tuple[str, int]:
    count_op = draw(st.sampled_from(COUNT_OPS))
    return count_op, draw(st.integers(1 if count_op == "lt" else 0, MAX_COUNT))


def _performed(counted: tuple[str, int], event: str, filters: tuple, window: int | None) -> Performed:
    return Performed(event, filters, counted[0], counted[1], window)


def _engaged(counted: tuple[str, int], action: str, campaign: int | None, window: int | None) -> Engaged:
    return Engaged(action, campaign, counted[0], counted[1], window)


def _event_times(op: str) -> st.SearchStrategy[EventTime]:
    values = days if op in WINDOW_OPS else strings | days_ago
    return st.builds(EventTime, non_empty_strings, st.sampled_from(("first", "last")), st.just(op), values)


def _metrics(op: str) -> st.SearchStrategy[EventMetric]:
    values = numbers if op in COMPARISONS else st.tuples(numbers, numbers)
    return st.builds(EventMetric, st.sampled_from(METRIC_AGGREGATES), non_empty_strings, names, st.just(op), values,
                     within_days, where)


def _buckets(op: str) -> st.SearchStrategy[Bucket]:
    number = st.integers(0, BUCKETS - 1)
    return st.builds(Bucket, non_empty_strings, st.just(op), number if op in COMPARISONS else st.tuples(number, number))


def _coordinate(limit: int) -> st.SearchStrategy:
    return st.integers(-limit, limit) | st.floats(-limit, limit)


conditions = st.one_of(
    compares(FIELD_OPS),
    st.builds(_performed, _counts(), non_empty_strings, where, within_days),
    st.sampled_from(EVENT_TIME_OPS).flatmap(_event_times),
    st.sampled_from(COMPARISONS + RANGE_OPS).flatmap(_metrics),
    st.builds(Near, _coordinate(90), _coordinate(180), st.integers(1, 20_038) | st.floats(0, 20_038, exclude_min=True)),
    st.builds(_engaged, _counts(), st.sampled_from(ENGAGEMENTS), st.none() | st.integers(1, 10**9), within_days),
    st.builds(Reachable, non_empty_strings, st.none() | non_empty_strings),
    st.builds(InSegment, non_empty_strings),
    st.sampled_from(COMPARISONS + RANGE_OPS).flatmap(_buckets),
)


def _within_limits(rule) -> bool:
    try:
        check_size(rule)
    except RuleError:
        return False
    return True


def _groups(children: st.SearchStrategy) -> st.SearchStrategy:
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(children.map(Not), items.map(All), items.map(AnyOf))


rules = st.recursive(conditions, _groups, max_leaves=8).filter(_within_limits)
