"""Segment rules as text, the form people write: ``country in ("US", "CA") and orders.count >= 2``.

``parse_rule`` reads the text into the rule model (``domain.rules``) and ``format_rule`` writes the canonical
text back (``segments.rule_format``), so that ``parse_rule(format_rule(rule)) == rule`` for every valid rule.

The parser is a recursive descent, one method per grammar rule. Its recursion is bounded: nesting (parentheses
and 'not') deeper than ``MAX_DEPTH`` is refused as soon as it is seen. Errors are :class:`RuleSyntaxError` with
the line and column of the offending token and what was expected there; a node's own shape errors (0 days, a
bucket of 100) point at the start of its condition.

Names: a bare word is a name unless the grammar needs it there (``and``, ``or`` and ``not`` never start a field;
a function word followed by ``(`` is the function). The printer is stricter and backtick-quotes every keyword,
so printed text never depends on that context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from clarion.domain.rules import (
    COUNT_OPS,
    ENGAGEMENTS,
    FIELD_OPS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_LIST,
    METRIC_AGGREGATES,
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
    RuleSyntaxError,
    check_size,
    walk,
)

from .rule_format import COMPARISON_SYMBOLS, format_rule
from .rule_lexer import Token, TokenStream, tokenize

__all__ = ["format_rule", "parse_rule"]

_COMPARISONS = {symbol: op for op, symbol in COMPARISON_SYMBOLS.items()}
_COUNTS = {symbol: op for symbol, op in _COMPARISONS.items() if op in COUNT_OPS}
_PROPERTY_OPERATORS = "=, !=, >, >=, <, <=, in, not in, contains, starts with, exists, not exists or between"
_FIELD_OPERATORS = _PROPERTY_OPERATORS.replace(" or between", ", between, before, after, within, not within or in next")
_CONDITION = "a condition (a field such as country, a function such as performed(...), '(' or 'not')"


def parse_rule(text: str) -> Rule:
    """The rule written in ``text``; raises :class:`RuleSyntaxError` saying where and what was expected."""
    if not isinstance(text, str):
        raise RuleError("a rule's text is a string")
    rule = _Parser(tokenize(text)).parse()
    try:
        return check_size(rule)
    except RuleError as error:  # the parser refuses these earlier, with a position; this is the backstop
        raise RuleSyntaxError(error.reason, 1, 1) from None


class _Parser(TokenStream):
    def __init__(self, tokens: list[Token]) -> None:
        super().__init__(tokens)
        self._nesting = 0  # open parentheses and 'not's: bounds the recursion
        self._conditions = 0

    def parse(self) -> Rule:
        if self._peek().kind == "end":
            raise RuleSyntaxError('the rule is empty; expected a condition such as country = "US"', 1, 1)
        rule = self._or()
        if self._peek().kind != "end":
            self._fail("'and', 'or' or the end of the rule")
        return rule

    def _build(self, start: Token, node: Callable, *args: object):
        """``node(*args)``, its own shape errors reported at the start of the condition."""
        try:
            return node(*args)
        except RuleError as error:
            raise RuleSyntaxError(str(error), start.line, start.column) from None

    # -- structure ---------------------------------------------------------------------------
    def _or(self) -> Rule:
        start = self._peek()
        items = [self._and()]
        while self._accept_word("or"):
            items.append(self._and())
        return items[0] if len(items) == 1 else self._tree(start, AnyOf, tuple(items))

    def _and(self) -> Rule:
        start = self._peek()
        items = [self._unary()]
        while self._accept_word("and"):
            items.append(self._unary())
        return items[0] if len(items) == 1 else self._tree(start, All, tuple(items))

    def _unary(self) -> Rule:
        start = self._peek()
        if self._accept_word("not"):
            with self._nested(start):
                return self._tree(start, Not, self._unary())
        if self._is_symbol("("):
            self._next()
            with self._nested(start):
                rule = self._or()
            self._expect_symbol(")", f"'and', 'or' or ')' to close the '(' at line {start.line}, column {start.column}")
            return rule
        return self._condition()

    @contextmanager
    def _nested(self, start: Token) -> Iterator[None]:
        self._nesting += 1
        if self._nesting > MAX_DEPTH:
            raise RuleSyntaxError(f"nested more than {MAX_DEPTH} levels deep", start.line, start.column)
        yield
        self._nesting -= 1

    def _tree(self, start: Token, node: Callable, items: object) -> Rule:
        tree = self._build(start, node, items)
        if max(depth for _, depth in walk(tree)) > MAX_DEPTH:
            raise RuleSyntaxError(f"nested more than {MAX_DEPTH} levels deep", start.line, start.column)
        return tree

    def _condition(self) -> Rule:
        start = self._peek()
        self._conditions += 1
        if self._conditions > MAX_CONDITIONS:
            raise RuleSyntaxError(f"more than {MAX_CONDITIONS} conditions", start.line, start.column)
        if start.kind == "word" and self._is_symbol("(", ahead=1):
            function = _FUNCTIONS.get(start.text.lower())
            if function is None:
                known = ", ".join(_FUNCTIONS)
                raise RuleSyntaxError(f"unknown function '{start.text}'; there are: {known}", start.line, start.column)
            self._next()
            self._next()
            return function(self, start)
        if start.kind == "name" or (start.kind == "word" and start.text.lower() not in ("and", "or", "not")):
            return self._field_condition(FIELD_OPS, "a field name")
        self._fail(_CONDITION)

    # -- field conditions ----------------------------------------------------------------------
    def _field_condition(self, allowed: tuple[str, ...], expected: str) -> Compare:
        start = self._peek()
        field = self._field(expected)
        operator = self._peek()
        op, value = self._operator(field)
        if op not in allowed:
            reason = f"'{op.replace('_', ' ')}' is not for property conditions; they use {_PROPERTY_OPERATORS}"
            raise RuleSyntaxError(reason, operator.line, operator.column)
        return self._build(start, Compare, field, op, value)

    def _field(self, expected: str) -> str:
        names = [self._name(expected)]
        while self._is_symbol("."):
            self._next()
            names.append(self._name("a name after '.'"))
        return ".".join(names)

    def _name(self, expected: str) -> str:
        token = self._peek()
        if token.kind not in ("word", "name"):
            self._fail(expected)
        self._next()
        return str(token.value)

    def _operator(self, field: str) -> tuple[str, object]:
        token = self._peek()
        if token.kind == "symbol" and token.text in _COMPARISONS:
            self._next()
            return _COMPARISONS[token.text], self._value(f"a value after '{token.text}' (\"text\", a number, "
                                                         "true, false or N days ago)")
        word = token.text.lower() if token.kind == "word" else ""
        if word == "not":
            self._next()
            return self._negated_operator()
        if word not in _OPERATORS:
            self._fail(f"an operator after '{field}' ({_FIELD_OPERATORS})")
        self._next()
        return _OPERATORS[word](self)

    def _negated_operator(self) -> tuple[str, object]:
        if self._accept_word("in"):
            return "not_in", self._list("not in")
        if self._accept_word("exists"):
            return "not_exists", None
        if self._accept_word("within"):
            return "not_within", self._days()
        self._fail("'in', 'exists' or 'within' after 'not'")

    def _in(self) -> tuple[str, object]:
        if self._accept_word("next"):
            return "in_next", self._days()
        return "in", self._list("in")

    def _starts_with(self) -> tuple[str, object]:
        self._expect_word("with", "'with' after 'starts'")
        return "starts_with", self._string("a string after 'starts with'")

    def _between(self, read: Callable[[str], object]) -> tuple[object, object]:
        low = read("a value after 'between'")
        self._expect_word("and", "'and' between the two values of 'between'")
        return low, read("a value after 'and'")

    # -- values --------------------------------------------------------------------------------
    def _value(self, expected: str) -> object:
        token = self._peek()
        if token.kind == "string":
            self._next()
            return token.value
        if token.kind == "number":
            self._next()
            if not self._accept_word("days"):
                return token.value
            self._expect_word("ago", "'ago' after 'days' (like 30 days ago)")
            return self._build(token, DaysAgo, token.value)
        if self._is_word("true", "false"):
            self._next()
            return token.text.lower() == "true"
        self._fail(expected)

    def _date(self, op: str) -> object:
        token = self._peek()
        if token.kind == "number":
            self._next()
            self._expect_word("days", "'days ago' after the number (like 30 days ago)")
            self._expect_word("ago", "'ago' after 'days' (like 30 days ago)")
            return self._build(token, DaysAgo, token.value)
        return self._string(f"a date after '{op}' (\"2026-01-31\" or N days ago)")

    def _list(self, op: str) -> tuple[object, ...]:
        self._expect_symbol("(", f"a list after '{op}' (like (\"a\", \"b\"))")
        values: list[object] = []
        while not (values and self._is_symbol(")")):  # a trailing comma is allowed
            if len(values) == MAX_LIST:
                token = self._peek()
                raise RuleSyntaxError(f"a list holds at most {MAX_LIST:,} values", token.line, token.column)
            values.append(self._value(f"a value after '{op}' (a list like (\"a\", \"b\"))" if not values
                                      else "a value or ')'"))
            if not self._is_symbol(","):
                break
            self._next()
        self._expect_symbol(")", "',' or ')' in the list")
        return tuple(values)

    def _string(self, expected: str) -> str:
        token = self._peek()
        if token.kind != "string":
            self._fail(expected)
        self._next()
        return str(token.value)

    def _number(self, expected: str) -> object:
        token = self._peek()
        if token.kind != "number":
            self._fail(expected)
        self._next()
        return token.value

    def _int(self, expected: str) -> object:
        token = self._peek()
        if token.kind != "number" or not isinstance(token.value, int):
            self._fail(expected)
        self._next()
        return token.value

    def _days(self) -> object:
        days = self._int("a whole number of days")
        self._expect_word("days", "'days' after the number")
        return days

    def _count(self) -> tuple[str, object]:
        token = self._peek()
        if token.kind != "symbol" or token.text not in _COUNTS:
            return "gte", 1
        self._next()
        count = self._int(f"a whole number of times after '{token.text}'")
        self._expect_word("times", "'times' after the count")
        return _COUNTS[token.text], count

    def _window(self) -> object:
        return self._days() if self._accept_word("within") else None

    # -- functions -------------------------------------------------------------------------------
    def _performed(self, start: Token) -> Performed:
        event = self._string('the event name in double quotes, like performed("Order Completed")')
        where = self._filters()
        self._expect_symbol(")", "',' and a property condition, or ')'")
        count_op, count = self._count()
        return self._build(start, Performed, event, where, count_op, count, self._window())

    def _filters(self) -> tuple[Compare, ...]:
        filters = []
        while self._is_symbol(","):
            self._next()
            filters.append(self._field_condition(PROPERTY_OPS, "a property condition (like amount > 10)"))
        return tuple(filters)

    def _event_time(self, start: Token) -> EventTime:
        which = start.text.lower().split("_")[0]
        event = self._string(f'the event name in double quotes, like {which}_performed("Order Completed")')
        self._expect_symbol(")", "')' after the event name")
        for op in ("before", "after"):
            if self._accept_word(op):
                return self._build(start, EventTime, event, which, op, self._date(op))
        if self._accept_word("within"):
            return self._build(start, EventTime, event, which, "within", self._days())
        if self._accept_word("not"):
            self._expect_word("within", "'within' after 'not'")
            return self._build(start, EventTime, event, which, "not_within", self._days())
        self._fail(f"'before', 'after', 'within' or 'not within' after {which}_performed(...)")

    def _metric(self, start: Token) -> EventMetric:
        aggregate = start.text.lower()
        event = self._string(f'the event name in double quotes, like {aggregate}("Order Completed", revenue)')
        self._expect_symbol(",", f"',' and the property after the event name, like {aggregate}(\"Order\", revenue)")
        prop = self._field("the name of a numeric property")
        where = self._filters()
        self._expect_symbol(")", "',' and a property condition, or ')'")
        op, value = self._numeric_comparison(self._number, f"{aggregate}(...)")
        return self._build(start, EventMetric, aggregate, event, prop, op, value, self._window(), where)

    def _numeric_comparison(self, read: Callable[[str], object], after: str) -> tuple[str, object]:
        token = self._peek()
        if token.kind == "symbol" and token.text in _COMPARISONS:
            self._next()
            return _COMPARISONS[token.text], read(f"a number after '{token.text}'")
        if self._accept_word("between"):
            return "between", self._between(read)
        self._fail(f"a comparison (=, !=, >, >=, <, <=) or 'between' after {after}")

    def _near(self, start: Token) -> Near:
        latitude = self._number("the latitude, like near(40.7, -74.0, 25 km)")
        self._expect_symbol(",", "',' and the longitude")
        longitude = self._number("the longitude, like near(40.7, -74.0, 25 km)")
        self._expect_symbol(",", "',' and the distance in km")
        km = self._number("the distance, like near(40.7, -74.0, 25 km)")
        self._expect_word("km", "'km' after the distance")
        self._expect_symbol(")", "')' after the distance")
        return self._build(start, Near, latitude, longitude, km)

    def _engaged(self, start: Token) -> Engaged:
        campaign = None
        if self._accept_word("campaign"):
            self._expect_symbol("=", "'=' after 'campaign'")
            campaign = self._int("a campaign id (a whole number)")
        self._expect_symbol(")", "'campaign = N' or ')'")
        count_op, count = self._count()
        return self._build(start, Engaged, start.text.lower(), campaign, count_op, count, self._window())

    def _reachable(self, start: Token) -> Reachable:
        channel = self._string('the channel in double quotes, like reachable("email")')
        topic = None
        if self._is_symbol(","):
            self._next()
            self._expect_word("topic", "'topic' after ','")
            self._expect_symbol("=", "'=' after 'topic'")
            topic = self._string('the topic in double quotes, like topic = "newsletter"')
        self._expect_symbol(")", "', topic = \"...\"' or ')'")
        return self._build(start, Reachable, channel, topic)

    def _in_segment(self, start: Token) -> InSegment:
        segment = self._string('the segment name in double quotes, like in_segment("vip")')
        self._expect_symbol(")", "')' after the segment name")
        return self._build(start, InSegment, segment)

    def _bucket(self, start: Token) -> Bucket:
        salt = self._string('the bucket salt in double quotes, like bucket("holdout-2026") < 10')
        self._expect_symbol(")", "')' after the salt")
        op, value = self._numeric_comparison(self._int, "bucket(...)")
        return self._build(start, Bucket, salt, op, value)


_OPERATORS: dict[str, Callable[[_Parser], tuple[str, object]]] = {
    "in": _Parser._in,
    "contains": lambda parser: ("contains", parser._string("a string after 'contains'")),
    "starts": _Parser._starts_with,
    "exists": lambda parser: ("exists", None),
    "between": lambda parser: ("between", parser._between(parser._value)),
    "before": lambda parser: ("before", parser._date("before")),
    "after": lambda parser: ("after", parser._date("after")),
    "within": lambda parser: ("within", parser._days()),
}

_FUNCTIONS: dict[str, Callable[[_Parser, Token], Rule]] = {
    "performed": _Parser._performed,
    "first_performed": _Parser._event_time,
    "last_performed": _Parser._event_time,
    **{aggregate: _Parser._metric for aggregate in METRIC_AGGREGATES},
    "near": _Parser._near,
    **{action: _Parser._engaged for action in ENGAGEMENTS},
    "reachable": _Parser._reachable,
    "in_segment": _Parser._in_segment,
    "bucket": _Parser._bucket,
}
