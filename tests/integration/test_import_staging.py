"""The compiled CSV event parser agrees with ``generic_event``, the reference rules, row by row."""

from __future__ import annotations

import pytest

from clarion.domain.errors import FieldError
from clarion.services.imports.mappings import ColumnPlan, generic_event
from clarion.services.imports.staging import csv_event_parser, staged_from

HEADER = ["messageId", "userId", "email", "event", "timestamp", "properties", "revenue", "currency", "price", "tier"]
ROWS = [
    ["m1", "u1", "", "Order Completed", "2024-05-01T10:00:00Z", "", "12.50", "eur", "3", "gold"],
    ["", " u2 ", "", "Product Viewed", "2024-05-01T10:00:00+02:00", '{"sku": "A1"}', "", "", "", ""],
    ["m3", "", "Ana@Example.com", " Order Completed ", " 2024-05-02t10:00:00z ", "", "7", "USD", "", ""],
    ["m4", "u4", "", "Cart Viewed", "2024-05-02", "", "", "", "1.5", ""],
    ["m5", "u5", "", "Order Completed", "2024-05-02T10:00:00.123456-03:00", '{"total": 9}', "", "", "", ""],
    ["m6", "u6", "", "Product Viewed", "yesterday", "", "", "", "", ""],  # bad time
    ["m7", "", "", "Product Viewed", "2024-05-02T10:00:00Z", "", "", "", "", ""],  # no sender
    ["m8", "u8", "", "", "2024-05-02T10:00:00Z", "", "", "", "", ""],  # no name
    ["m9", "u9", "", "Order Completed", "2024-05-02T10:00:00Z", "", "abc", "", "", ""],  # bad revenue
    ["m10", "u10", "", "Product Viewed", "2024-05-02T10:00:00Z", "[1]", "", "", "", ""],  # not an object
    ["m11", "u11", "", "Order Completed", "2024-05-02T10:00:00Z", "", "1", "EURO", "", ""],  # bad currency
    ["m12", "u12", "", "Product Viewed", "", "", "", "", "", ""],  # no time
    ["m13", "u13", "not-an-email", "Product Viewed", "2024-05-02T10:00:00Z", "", "", "", "", ""],
]


def _reference(line: int, raw: str, values: list[str], keep_unknown: bool):
    plan = ColumnPlan("events", {}, keep_unknown)
    return staged_from(generic_event(line, raw, plan.apply(dict(zip(HEADER, values, strict=True))), "events"))


@pytest.mark.parametrize("keep_unknown", [False, True])
def test_csv_parser_matches_generic_event(keep_unknown):
    # given the compiled parser for a header with aliases, a JSON properties column and an unknown column
    parse = csv_event_parser(HEADER, ColumnPlan("events", {}, keep_unknown), "events")
    for line, values in enumerate(ROWS, start=2):
        raw = ",".join(values)
        # when a row is parsed both ways, then the staged events (or the reasons) are the same
        try:
            expected = _reference(line, raw, values, keep_unknown)
        except FieldError as exc:
            with pytest.raises(FieldError) as caught:
                parse(line, raw, values)
            assert str(caught.value) == str(exc)
            continue
        assert parse(line, raw, values) == expected
