"""The text form of segment rules: parsing, canonical printing, round trips and errors that say where."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from rule_strategies import rules

from clarion.domain.rules import (
    MAX_CONDITIONS,
    MAX_DEPTH,
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
    RuleSyntaxError,
)
from clarion.segments.rule_text import format_rule, parse_rule

COUNTRY_US = Compare("country", "eq", "US")


def test_the_issue_example_parses_to_the_expected_tree():
    # given
    text = ('country in ("US", "CA") and orders.count >= 2 and orders.last_at within 90 days\n'
            '  and not performed("Unsubscribed") and rfm.segment = "at_risk"')

    # when
    rule = parse_rule(text)

    # then
    assert rule == All((
        Compare("country", "in", ("US", "CA")),
        Compare("orders.count", "gte", 2),
        Compare("orders.last_at", "within", 90),
        Not(Performed("Unsubscribed")),
        Compare("rfm.segment", "eq", "at_risk"),
    ))
    assert format_rule(rule) == " ".join(text.split())


# text as written -> the model -> the canonical text (None: the text is already canonical)
CONDITION_FORMS = [
    ('country = "US"', COUNTRY_US, None),
    ('country != "US"', Compare("country", "ne", "US"), None),
    ("orders.count > 2", Compare("orders.count", "gt", 2), None),
    ("orders.total >= 10.5", Compare("orders.total", "gte", 10.5), None),
    ("score < -3", Compare("score", "lt", -3), None),
    ("score <= 1e3", Compare("score", "lte", 1000.0), "score <= 1000.0"),
    ("attributes.vip = TRUE", Compare("attributes.vip", "eq", True), "attributes.vip = true"),
    ("attributes.vip = false", Compare("attributes.vip", "eq", False), None),
    ("signed_up_at > 30 days ago", Compare("signed_up_at", "gt", DaysAgo(30)), None),
    ('country IN ("US", "CA",)', Compare("country", "in", ("US", "CA")), 'country in ("US", "CA")'),
    ("plan in (1)", Compare("plan", "in", (1,)), None),
    ('country not in ("FR", 2, true)', Compare("country", "not_in", ("FR", 2, True)), None),
    ('email contains "@example.com"', Compare("email", "contains", "@example.com"), None),
    ('email Starts With "ana"', Compare("email", "starts_with", "ana"), 'email starts with "ana"'),
    ("phone exists", Compare("phone", "exists"), None),
    ("phone not exists", Compare("phone", "not_exists"), None),
    ("orders.count between 2 and 5", Compare("orders.count", "between", (2, 5)), None),
    ("signed_up_at between 60 days ago and 30 days ago",
     Compare("signed_up_at", "between", (DaysAgo(60), DaysAgo(30))), None),
    ('signed_up_at before "2026-01-31"', Compare("signed_up_at", "before", "2026-01-31"), None),
    ('signed_up_at after "2026-01-31T10:00:00Z"', Compare("signed_up_at", "after", "2026-01-31T10:00:00Z"), None),
    ("signed_up_at after 7 days ago", Compare("signed_up_at", "after", DaysAgo(7)), None),
    ("orders.last_at within 90 days", Compare("orders.last_at", "within", 90), None),
    ("orders.last_at not within 90 days", Compare("orders.last_at", "not_within", 90), None),
    ("birthday in next 7 days", Compare("birthday", "in_next", 7), None),
    ('attributes.`favourite colour` = "blue"', Compare("attributes.favourite colour", "eq", "blue"), None),
    ('performed("Order Completed")', Performed("Order Completed"), None),
    ('performed("Order Completed", total > 50, currency in ("USD", "EUR")) >= 2 times within 90 days',
     Performed("Order Completed", (Compare("total", "gt", 50), Compare("currency", "in", ("USD", "EUR"))),
               "gte", 2, 90), None),
    ('performed("Order Completed") = 0 times', Performed("Order Completed", count_op="eq", count=0), None),
    ('performed("Order Completed") >= 1 times', Performed("Order Completed"), 'performed("Order Completed")'),
    ('performed("Login") < 3 times within 30 days', Performed("Login", count_op="lt", count=3, within_days=30), None),
    ('first_performed("Order Completed") before "2025-01-01"',
     EventTime("Order Completed", "first", "before", "2025-01-01"), None),
    ('last_performed("Order Completed") after 30 days ago', EventTime("Order Completed", "last", "after", DaysAgo(30)),
     None),
    ('last_performed("Login") within 14 days', EventTime("Login", "last", "within", 14), None),
    ('last_performed("Login") not within 14 days', EventTime("Login", "last", "not_within", 14), None),
    ('sum("Order Completed", revenue) > 100 within 90 days',
     EventMetric("sum", "Order Completed", "revenue", "gt", 100, 90), None),
    ('AVG("Order Completed", revenue, currency = "USD") between 10 and 99.5',
     EventMetric("avg", "Order Completed", "revenue", "between", (10, 99.5), where=(Compare("currency", "eq", "USD"),)),
     'avg("Order Completed", revenue, currency = "USD") between 10 and 99.5'),
    ('min("Order Completed", items.count) >= 2', EventMetric("min", "Order Completed", "items.count", "gte", 2), None),
    ('max("Order Completed", revenue) != 0', EventMetric("max", "Order Completed", "revenue", "ne", 0), None),
    ("near(40.7, -74.0, 25 km)", Near(40.7, -74.0, 25), None),
    ("received()", Engaged("received"), None),
    ("opened(campaign = 12) >= 2 times within 30 days", Engaged("opened", 12, "gte", 2, 30), None),
    ("clicked() within 7 days", Engaged("clicked", within_days=7), None),
    ("converted(campaign=3) = 0 times", Engaged("converted", 3, "eq", 0), "converted(campaign = 3) = 0 times"),
    ('reachable("email")', Reachable("email"), None),
    ('reachable("email", topic = "newsletter")', Reachable("email", "newsletter"), None),
    ('in_segment("vip")', InSegment("vip"), None),
    ('bucket("holdout-2026") < 10', Bucket("holdout-2026", "lt", 10), None),
    ('bucket("split") between 0 and 49', Bucket("split", "between", (0, 49)), None),
]


@pytest.mark.parametrize(("text", "expected", "canonical"), CONDITION_FORMS, ids=[row[0] for row in CONDITION_FORMS])
def test_every_condition_form_parses_and_prints_back_canonically(text, expected, canonical):
    # given
    canonical = canonical or text

    # when
    rule = parse_rule(text)

    # then
    assert rule == expected
    assert format_rule(rule) == canonical
    assert parse_rule(canonical) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("a exists and b exists and c exists", All((Compare("a", "exists"), Compare("b", "exists"),
                                                Compare("c", "exists")))),
    ("a exists and (b exists and c exists)", All((Compare("a", "exists"),
                                                  All((Compare("b", "exists"), Compare("c", "exists")))))),
    ("a exists or b exists and c exists", AnyOf((Compare("a", "exists"),
                                                 All((Compare("b", "exists"), Compare("c", "exists")))))),
    ("not a exists and b exists", All((Not(Compare("a", "exists")), Compare("b", "exists")))),
    ("not (a exists or b exists)", Not(AnyOf((Compare("a", "exists"), Compare("b", "exists"))))),
    ("not not a exists", Not(Not(Compare("a", "exists")))),
    ("((a exists))", Compare("a", "exists")),
    ("n between 1 and 2 and m exists", All((Compare("n", "between", (1, 2)), Compare("m", "exists")))),
])
def test_structure_follows_the_text_and_parentheses(text, expected):
    # when
    rule = parse_rule(text)

    # then
    assert rule == expected
    assert parse_rule(format_rule(rule)) == expected


def test_comments_newlines_and_case_are_free():
    # given
    text = ('# people to win back\nCOUNTRY = "US"   # only the US\n  AND\n'
            '\tNot Performed("Order Completed") WITHIN 30 DAYS')

    # when
    rule = parse_rule(text)

    # then
    assert rule == All((Compare("COUNTRY", "eq", "US"), Not(Performed("Order Completed", within_days=30))))
    assert format_rule(rule) == 'COUNTRY = "US" and not performed("Order Completed") within 30 days'


@pytest.mark.parametrize(("field", "printed"), [
    ("not", "`not`"),
    ("Performed", "`Performed`"),
    ("orders.min", "orders.`min`"),
    ("attributes.favourite colour", "attributes.`favourite colour`"),
    ("back`tick", "`back``tick`"),
    (".leading", "`.leading`"),
    ("a..b", "`a..b`"),
    ("größe", "`größe`"),
    ("_plain.name_2", "_plain.name_2"),
])
def test_names_that_are_keywords_or_not_plain_are_backtick_quoted(field, printed):
    # given
    rule = Compare(field, "exists")

    # when
    text = format_rule(rule)

    # then
    assert text == f"{printed} exists"
    assert parse_rule(text) == rule


@pytest.mark.parametrize(("text", "expected"), [
    ("sum = 3", Compare("sum", "eq", 3)),
    ("bucket > 3", Compare("bucket", "gt", 3)),
    ("attributes.not exists", Compare("attributes.not", "exists")),
    ('performed("X", in in ("a"))', Performed("X", (Compare("in", "in", ("a",)),))),
])
def test_bare_keywords_are_names_where_they_cannot_mean_anything_else(text, expected):
    # when
    rule = parse_rule(text)

    # then
    assert rule == expected


def test_strings_use_json_escapes_and_numbers_read_back_exactly():
    # given
    rule = All((Compare("note", "eq", 'say "hi"\\ \n\t\u00e9 \U0001F600 \x00'), Compare("ratio", "eq", 0.1 + 0.2),
                Compare("big", "eq", 2**63 - 1), Compare("tiny", "eq", -5e-324)))

    # when
    text = format_rule(rule)

    # then
    assert text == ('note = "say \\"hi\\"\\\\ \\n\\t\u00e9 \U0001F600 \\u0000" and ratio = 0.30000000000000004'
                    ' and big = 9223372036854775807 and tiny = -5e-324')
    assert repr(parse_rule(text)) == repr(rule)
    assert parse_rule(r'x = "\u00e9\ud83d\ude00\/"') == Compare("x", "eq", "\u00e9\U0001F600/")


def test_numbers_beyond_64_bits_are_refused_where_they_stand():
    # given a number the stores cannot compare with an integer column, when parsed, then a located error
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule("orders.count > 10000000000000000000")
    assert (caught.value.line, caught.value.column) == (1, 1) and "64 bits" in caught.value.reason


def test_a_tree_as_deep_as_allowed_round_trips():
    # given
    rule = COUNTRY_US
    for depth in range(MAX_DEPTH - 1):
        rule = Not(rule) if depth % 3 == 0 else All((COUNTRY_US, rule)) if depth % 3 == 1 else AnyOf((rule, COUNTRY_US))

    # when
    text = format_rule(rule)

    # then
    assert parse_rule(text) == rule


# text -> (line, column, words the reason contains)
BAD_TEXTS = [
    ('(country = "US" and plan = "pro"', 1, 33, "unexpected end of the rule, expected 'and', 'or' or ')' to close"
                                                " the '(' at line 1, column 1"),
    ('country ~ "US"', 1, 9, "expected an operator after 'country' (=, !=, >, >=, <, <=, in, not in"),
    ("orders.last_at within 90", 1, 25, "unexpected end of the rule, expected 'days' after the number"),
    ("orders.last_at within 90 weeks", 1, 26, "expected 'days' after the number, found 'weeks'"),
    ('orders.last_at within "90" days', 1, 23, 'expected a whole number of days, found "90"'),
    ('sum("Order Completed", revenue) > "100"', 1, 35, "expected a number after '>', found \"100\""),
    ("country in ()", 1, 13, "expected a value after 'in' (a list like (\"a\", \"b\")), found ')'"),
    ('country = "US"\n  and plan in )', 2, 15, "expected a list after 'in' (like (\"a\", \"b\")), found ')'"),
    ('country = "x"; DROP TABLE contacts', 1, 14, "expected 'and', 'or' or the end of the rule, found ';'"),
    ('country = "x" OR 1=1 --', 1, 18, "expected a condition"),
    ('country = "US" and', 1, 19, "unexpected end of the rule, expected a condition"),
    ('and country = "US"', 1, 1, "expected a condition"),
    ('country = "US" plan = "pro"', 1, 16, "expected 'and', 'or' or the end of the rule, found 'plan'"),
    ('country = "US', 1, 11, "unterminated string"),
    ('country = "U\nS"', 1, 11, "unterminated string"),
    ('country = "\\q"', 1, 12, "invalid escape in a string"),
    ("`favourite colour = 1", 1, 1, "unterminated quoted name"),
    ("`` = 1", 1, 1, "a quoted name is not empty"),
    ("score = 007", 1, 9, "no leading zeros"),
    ("größe > 3", 1, 1, "is written in backticks: `größe`"),
    ("score == 1", 1, 8, "expected a value after '='"),
    ("signed_up_at > 30 days", 1, 23, "expected 'ago' after 'days'"),
    ("signed_up_at before 30", 1, 23, "expected 'days ago' after the number"),
    ("signed_up_at before tomorrow", 1, 21, "expected a date after 'before'"),
    ("n between 1 2", 1, 13, "expected 'and' between the two values of 'between'"),
    ("email starts \"a\"", 1, 14, "expected 'with' after 'starts'"),
    ("email not like \"a\"", 1, 11, "expected 'in', 'exists' or 'within' after 'not'"),
    ('performed("Order Completed") >= 2', 1, 34, "expected 'times' after the count"),
    ('performed("Order Completed", total within 3 days)', 1, 36, "'within' is not for property conditions"),
    ("performed(Order)", 1, 11, "expected the event name in double quotes"),
    ('performd("Order Completed")', 1, 1, "unknown function 'performd'"),
    ('first_performed("Login") = 3', 1, 26, "expected 'before', 'after', 'within' or 'not within'"),
    ("near(40.7, -74.0, 25)", 1, 21, "expected 'km' after the distance"),
    ('bucket("h") < 5.5', 1, 15, "expected a number after '<'"),
    ("orders.last_at within 0 days", 1, 1, "a whole number of days from 1 to 36,500"),
    ('country = "US" and\n  bucket("h") < 100', 2, 3, "a bucket is a whole number from 0 to 99"),
    ("signed_up_at before 0 days ago", 1, 21, "a whole number of days"),
    ("opened() < 0 times", 1, 1, "fewer than 0 times can never hold"),
    ("near(91, 0, 5 km)", 1, 1, "latitude: a number from -90 to 90"),
    ("x = 1e999", 1, 1, "not a finite number"),
    ('x in ("a", 3 days ago)', 1, 1, "a list holds text, numbers or true/false"),
    ("", 1, 1, "the rule is empty"),
    ("  # just a comment\n", 1, 1, "the rule is empty"),
]


@pytest.mark.parametrize(("text", "line", "column", "reason"), BAD_TEXTS, ids=[row[0][:40] for row in BAD_TEXTS])
def test_errors_say_where_and_what_was_expected(text, line, column, reason):
    # when
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)

    # then
    assert (caught.value.line, caught.value.column) == (line, column), str(caught.value)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"line {line}, column {column}: ")


def test_a_syntax_error_is_a_rule_error():
    # when
    with pytest.raises(RuleError):
        parse_rule("country =")

    # then: callers that handle RuleError (the API's 422) handle syntax errors too


def test_an_in_list_over_the_limit_is_refused_at_the_first_value_too_many():
    # given
    text = "plan in (" + ", ".join(str(number) for number in range(2_000)) + ")"

    # when
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)

    # then
    assert caught.value.column == text.index(", 1000,") + 3
    assert "at most 1,000 values" in caught.value.reason


@pytest.mark.parametrize(("text", "column"), [("(" * 10_000, MAX_DEPTH + 1), ("not " * 10_000, 4 * MAX_DEPTH + 1)])
def test_deep_nesting_is_refused_without_exhausting_the_stack(text, column):
    # when
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)

    # then
    assert (caught.value.line, caught.value.column) == (1, column)
    assert caught.value.reason == f"nested more than {MAX_DEPTH} levels deep"


def test_groups_nested_deeper_than_allowed_are_refused():
    # given: 16 parentheses, each around a group, make a tree 18 levels deep
    text = "a exists and (" * 16 + "a exists" + ")" * 16

    # when
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)

    # then
    assert caught.value.reason == f"nested more than {MAX_DEPTH} levels deep"


def test_too_many_conditions_are_refused_at_the_first_one_too_many():
    # given
    text = " or ".join(f"n = {number}" for number in range(MAX_CONDITIONS + 1))

    # when
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)

    # then
    assert caught.value.column == text.index(f"n = {MAX_CONDITIONS}") + 1
    assert caught.value.reason == f"more than {MAX_CONDITIONS} conditions"


def test_text_longer_than_the_limit_is_refused_before_parsing():
    # given
    text = 'country = "US" or\n' + "x" * 100_000

    # when
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)

    # then
    assert "at most 100,000 characters" in caught.value.reason
    assert caught.value.line == 2


def test_text_that_is_not_a_string_is_refused():
    # when / then
    with pytest.raises(RuleError):
        parse_rule(None)  # type: ignore[arg-type]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules)
def test_every_valid_rule_round_trips_through_the_text_form(rule):
    # when
    text = format_rule(rule)
    parsed = parse_rule(text)

    # then: the same tree, with the same types (True is not 1, 2.0 is not 2)
    assert parsed == rule
    assert repr(parsed) == repr(rule)
    assert format_rule(parsed) == text
