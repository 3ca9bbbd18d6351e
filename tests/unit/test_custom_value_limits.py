"""The limits on custom attributes and event properties hold in the shared parsing code every entry point uses."""

from __future__ import annotations

import json

import pytest

from clarion.domain.errors import FieldError
from clarion.domain.events import check_properties, properties_json
from clarion.domain.traits import check_attributes, parse_traits
from clarion.services.imports.mappings import ColumnPlan, generic_event
from clarion.services.imports.staging import csv_event_parser, staged_from


def traits(values: dict) -> dict:
    return parse_traits(values, default_region="US").attributes


def test_a_profile_may_hold_500_attributes_and_not_one_more():
    assert len(traits({"attributes": {f"a{n}": n for n in range(500)}})) == 500
    with pytest.raises(FieldError) as refused:
        traits({"attributes": {f"a{n}": n for n in range(501)}})
    assert (refused.value.field, refused.value.reason) == ("attributes", "at most 500 attribute names are allowed, "
                                                                         "not 501")


def test_unknown_traits_count_as_attributes():
    # given Segment-style traits where every unknown key becomes an attribute: 90,000 of them
    with pytest.raises(FieldError, match="at most 500 attribute names are allowed, not 90,000"):
        traits({f"t{n}": n for n in range(90_000)})


def test_a_long_attribute_name_is_refused_and_shown_short():
    with pytest.raises(FieldError) as refused:
        traits({"attributes": {"x" * 10_000: 1}})
    assert refused.value.reason.endswith("must be 1..100 characters")
    assert len(str(refused.value)) < 120  # one readable line, not the 10,000-character name


def test_the_attributes_json_is_bounded():
    with pytest.raises(FieldError, match="70,0[0-9]{2} bytes of JSON is over the 65,536 allowed"):
        traits({"attributes": {"a": "x" * 70_000}})
    with pytest.raises(FieldError, match="custom_dates"):
        parse_traits({"custom_dates": {f"d{n}": "2026-01-01" for n in range(501)}}, default_region="US")


def test_integers_beyond_64_bits_become_doubles_and_beyond_a_double_are_refused():
    assert check_attributes({"n": 10**30, "ok": 2**64 - 1, "low": -(2**63)}) == {"n": 1e30, "ok": 2**64 - 1,
                                                                                 "low": -(2**63)}
    assert check_properties({"deep": {"list": [1, 10**20]}}) == {"deep": {"list": [1, 1e20]}}
    assert json.loads(properties_json({"n": -(10**25)})) == {"n": -1e25}
    with pytest.raises(FieldError) as refused:
        check_properties({"deep": {"list": [1, 10**400]}})
    assert refused.value.field == "properties.deep.list[1]"


@pytest.mark.parametrize(("properties", "reason"), [
    ({f"p{n}": n for n in range(256)}, "at most 255 property names are allowed, not 256"),
    ({"": 1}, "property name '' must be 1..100 characters"),
    ({"blob": "x" * 32_768}, "over the 32,768 allowed (Segment's limit for one call)"),
])
def test_event_properties_are_bounded(properties, reason):
    with pytest.raises(FieldError) as refused:
        check_properties(properties)
    assert refused.value.field == "properties" and reason in refused.value.reason


HEADER = ["userId", "event", "timestamp", "properties"]


@pytest.mark.parametrize("properties", [{f"p{n}": n for n in range(256)}, {"blob": "x" * 40_000}])
def test_both_import_paths_apply_the_property_limits(properties):
    # given a CSV row whose properties column is over a limit
    values = ["u1", "Product Viewed", "2026-01-01T00:00:00Z", json.dumps(properties)]
    raw = ",".join(values)
    plan = ColumnPlan("events", {}, False)
    # when the fast CSV parser and the reference path each read it
    with pytest.raises(FieldError) as fast:
        csv_event_parser(HEADER, plan, "events")(2, raw, values)
    with pytest.raises(FieldError) as reference:
        staged_from(generic_event(2, raw, plan.apply(dict(zip(HEADER, values, strict=True))), "events"))
    # then both refuse the row with the same reason
    assert fast.value.field == reference.value.field == "properties"
    assert str(fast.value) == str(reference.value)


def test_the_import_paths_store_big_integers_as_the_apis_do():
    values = ["u1", "Product Viewed", "2026-01-01T00:00:00Z", '{"n": 1000000000000000000000000000000}']
    staged = csv_event_parser(HEADER, ColumnPlan("events", {}, False), "events")(2, ",".join(values), values)
    assert json.loads(staged[6]) == {"n": 1e30}
