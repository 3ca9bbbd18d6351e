"""The JSON form of segment rules: strict reading with located errors, canonical writing, round trips."""

from __future__ import annotations

import json

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
)
from clarion.segments.rule_json import rule_from_json, rule_to_json

US = {"field": "country", "op": "eq", "value": "US"}
COUNTRY_US = Compare("country", "eq", "US")


def test_a_stored_rule_reads_into_the_model():
    # given
    data = {"all": [
        {"field": "country", "op": "in", "value": ["US", "CA"]},
        {"field": "orders.count", "op": "gte", "value": 2},
        {"not": {"performed": "Unsubscribed"}},
        {"any": [{"in_segment": "vip"}, {"field": "rfm.segment", "op": "eq", "value": "at_risk"}]},
    ]}

    # when
    rule = rule_from_json(data)

    # then
    assert rule == All((
        Compare("country", "in", ("US", "CA")),
        Compare("orders.count", "gte", 2),
        Not(Performed("Unsubscribed")),
        AnyOf((InSegment("vip"), Compare("rfm.segment", "eq", "at_risk"))),
    ))
    assert rule_to_json(rule) == data


# canonical JSON <-> model
CANONICAL = [
    (US, COUNTRY_US),
    ({"field": "phone", "op": "exists"}, Compare("phone", "exists")),
    ({"field": "n", "op": "between", "value": [1, 2.5]}, Compare("n", "between", (1, 2.5))),
    ({"field": "signed_up_at", "op": "before", "value": {"days_ago": 30}},
     Compare("signed_up_at", "before", DaysAgo(30))),
    ({"field": "birthday", "op": "in_next", "value": 7}, Compare("birthday", "in_next", 7)),
    ({"performed": "Order Completed"}, Performed("Order Completed")),
    ({"performed": "Order Completed", "where": [{"field": "total", "op": "gt", "value": 50}],
      "count": {"op": "gte", "value": 2}, "within_days": 90},
     Performed("Order Completed", (Compare("total", "gt", 50),), "gte", 2, 90)),
    ({"first_performed": "Order Completed", "op": "within", "value": 30},
     EventTime("Order Completed", "first", "within", 30)),
    ({"last_performed": "Login", "op": "before", "value": "2026-01-01"},
     EventTime("Login", "last", "before", "2026-01-01")),
    ({"metric": "sum", "event": "Order Completed", "property": "revenue", "op": "gt", "value": 100, "within_days": 90,
      "where": [{"field": "currency", "op": "eq", "value": "USD"}]},
     EventMetric("sum", "Order Completed", "revenue", "gt", 100, 90, (Compare("currency", "eq", "USD"),))),
    ({"near": {"latitude": 40.7, "longitude": -74.0, "km": 25}}, Near(40.7, -74.0, 25)),
    ({"engaged": "opened"}, Engaged("opened")),
    ({"engaged": "clicked", "campaign": 12, "count": {"op": "eq", "value": 0}, "within_days": 30},
     Engaged("clicked", 12, "eq", 0, 30)),
    ({"reachable": "email"}, Reachable("email")),
    ({"reachable": "email", "topic": "newsletter"}, Reachable("email", "newsletter")),
    ({"in_segment": "vip"}, InSegment("vip")),
    ({"bucket": "holdout-2026", "op": "lt", "value": 10}, Bucket("holdout-2026", "lt", 10)),
    ({"bucket": "split", "op": "between", "value": [0, 49]}, Bucket("split", "between", (0, 49))),
    ({"not": {"not": US}}, Not(Not(COUNTRY_US))),
]


@pytest.mark.parametrize(("data", "expected"), CANONICAL, ids=[next(iter(row[0])) for row in CANONICAL])
def test_every_kind_reads_and_writes_canonically(data, expected):
    # when
    rule = rule_from_json(data)

    # then
    assert rule == expected
    assert rule_to_json(expected) == data


def test_a_group_of_one_is_its_rule_and_defaults_may_be_written_out():
    # given: what a rule builder produces
    data = {"all": [{"any": [{"performed": "Login", "where": [], "count": {"op": "gte", "value": 1}}]}]}

    # when
    rule = rule_from_json(data)

    # then
    assert rule == Performed("Login")
    assert rule_to_json(rule) == {"performed": "Login"}


# data -> (the path of the problem, words of the reason)
BAD_JSON = [
    ({"all": []}, "all", "an empty group would match everyone"),
    ({"any": "x"}, "any", "a list of rules"),
    ([US], "", "a rule is an object"),
    ({"value": 1}, "", "one of the keys"),
    ({"field": "a", "performed": "b"}, "", "found both 'field' and 'performed'"),
    ({**US, "values": 1}, "values", "unknown key in a 'field' rule"),
    ({"all": [US, {"field": "country", "op": "in", "value": []}]}, "all[1].value", "a non-empty list"),
    ({"all": [US, US, {"field": 5, "op": "eq", "value": "US"}]}, "all[2].field", "a non-empty string"),
    ({"all": [US, {"field": "a", "op": "eq"}]}, "all[1].value", "'eq' takes one value"),
    ({"field": "a", "op": "~", "value": 1}, "op", "unknown op '~'"),
    ({"field": "a", "op": "eq", "value": None}, "value", "null is not a value"),
    ({"field": "a", "op": "exists", "value": "x"}, "value", "'exists' takes no value"),
    ({"field": "a", "op": "in", "value": [["x"]]}, "value[0]", "a list does not hold lists"),
    ({"field": "a", "op": "in", "value": list(range(2_000))}, "value", "at most 1,000 values"),
    ({"field": "a", "op": "contains", "value": 5}, "value", "'contains' takes a text value"),
    ({"field": "a", "op": "before", "value": {"days": 3}}, "value", '{"days_ago": 30}'),
    ({"field": "a", "op": "before", "value": {"days_ago": True}}, "value.days_ago", "a whole number of days"),
    ({"field": "a", "op": "within", "value": 0}, "value", "a whole number of days"),
    ({"any": [US, {"not": {"performed": "x", "where": [US, {"field": "a", "op": "within", "value": 3}]}}]},
     "any[1].not.where[1].op", "property conditions use"),
    ({"performed": "x", "where": [{"performed": "y"}]}, "where[0]", "a property condition"),
    ({"performed": 5}, "performed", "a non-empty string"),
    ({"performed": "x", "count": 2}, "count", "a count is an object"),
    ({"performed": "x", "count": {"op": "gte"}}, "count.value", "missing 'value'"),
    ({"performed": "x", "count": {"op": "gte", "value": True}}, "count.value", "a count is a whole number"),
    ({"performed": "x", "count": {"op": "ne", "value": 1}}, "count.op", "unknown count operator 'ne'"),
    ({"performed": "x", "within_days": 1.5}, "within_days", "a whole number of days"),
    ({"performed": "x", "within_days": None}, "within_days", "leave the key out"),
    ({"first_performed": "x", "op": "within"}, "value", "missing 'value'"),
    ({"last_performed": "", "op": "within", "value": 3}, "last_performed", "a non-empty string"),
    ({"metric": "median", "event": "x", "property": "p", "op": "gt", "value": 1}, "metric", "unknown aggregate"),
    ({"metric": "sum", "event": "x", "property": "p", "op": "gt", "value": "1"}, "value", "compared with numbers"),
    ({"metric": "sum", "event": "x", "op": "gt", "value": 1}, "property", "missing 'property'"),
    ({"near": {"latitude": True, "longitude": 0, "km": 5}}, "near.latitude", "a number from -90 to 90"),
    ({"near": {"latitude": 0, "longitude": 0}}, "near.km", "missing 'km'"),
    ({"near": {"latitude": 0, "longitude": 0, "km": 5, "miles": 3}}, "near.miles", "unknown key"),
    ({"engaged": "liked"}, "engaged", "unknown action 'liked'"),
    ({"engaged": "opened", "campaign": True}, "campaign", "a campaign id is a positive whole number"),
    ({"reachable": "email", "topic": 3}, "topic", "a non-empty string"),
    ({"in_segment": ["vip"]}, "in_segment", "a non-empty string"),
    ({"bucket": "x", "op": "lt", "value": 100}, "value", "a bucket is a whole number from 0 to 99"),
    ({"bucket": "x", "op": "lt", "value": True}, "value", "a bucket is a whole number"),
]


@pytest.mark.parametrize(("data", "path", "reason"), BAD_JSON, ids=[str(row[0])[:50] for row in BAD_JSON])
def test_errors_name_the_path_of_the_offending_part(data, path, reason):
    # when
    with pytest.raises(RuleError) as caught:
        rule_from_json(data)

    # then
    assert caught.value.path == path
    assert reason in caught.value.reason


def test_a_very_deep_document_is_refused_without_exhausting_the_stack():
    # given: 100,000 levels, built without recursion
    data = US
    for _ in range(100_000):
        data = {"not": data}

    # when
    with pytest.raises(RuleError) as caught:
        rule_from_json(data)

    # then: refused at the first level too deep
    assert caught.value.path == ".".join(["not"] * MAX_DEPTH)
    assert caught.value.reason == f"nested more than {MAX_DEPTH} levels deep"


def test_a_tree_as_deep_as_allowed_is_read():
    # given
    data = US
    for _ in range(MAX_DEPTH - 1):
        data = {"not": data}

    # when
    rule = rule_from_json(data)

    # then
    assert rule_to_json(rule) == data


def test_too_many_conditions_are_refused_at_the_first_one_too_many():
    # given
    data = {"any": [{"field": "n", "op": "eq", "value": number} for number in range(MAX_CONDITIONS + 1)]}

    # when
    with pytest.raises(RuleError) as caught:
        rule_from_json(data)

    # then
    assert caught.value.path == f"any[{MAX_CONDITIONS}]"
    assert caught.value.reason == f"more than {MAX_CONDITIONS} conditions"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules)
def test_every_valid_rule_round_trips_through_json_text(rule):
    # when
    data = json.loads(json.dumps(rule_to_json(rule)))
    parsed = rule_from_json(data)

    # then: the same tree, with the same types (True is not 1, 2.0 is not 2)
    assert parsed == rule
    assert repr(parsed) == repr(rule)
    assert rule_to_json(parsed) == data
