"""Values a rule can never match are refused with the nearest valid one; names that are no field or channel
suggest the nearest. Pure: the checks need no store (the compiler only builds the statement here)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import sqlite

from clarion.domain.rules import All, Compare, Not, Performed, RuleError
from clarion.segments.compiler import CompileContext, compile_rule
from clarion.segments.rule_text import format_rule, parse_rule
from clarion.segments.suggest import nearest
from clarion.segments.vocabulary import canonical_rule

CONTEXT = CompileContext(now=datetime(2026, 3, 15, 12, tzinfo=UTC))


def canonical_text(text: str) -> str:
    return format_rule(canonical_rule(parse_rule(text)))


@pytest.mark.parametrize(("text", "canonical"), [
    ('rfm.segment = "Can\'t lose them"', 'rfm.segment = "cant_lose"'),  # the label rfm summary shows
    ('rfm.segment in ("CHAMPIONS", "loyal", "Need attention")',
     'rfm.segment in ("champions", "loyal", "need_attention")'),
    ('rfm.segment != "at risk"', 'rfm.segment != "at_risk"'),
    ('country = "pt"', 'country = "PT"'),
    ('country = "USA"', 'country = "US"'),
    ('country not in ("United States", "united kingdom", "France")', 'country not in ("US", "GB", "FR")'),
    ('timezone = "america/new_york"', 'timezone = "America/New_York"'),
    ('rfm.cell in ("545", "111")', 'rfm.cell in ("545", "111")'),
    ("rfm.r in (1, 5) and rfm.m = 3", "rfm.r in (1, 5) and rfm.m = 3"),
    # fragments and orderings are not values of the set, and other fields are free text
    ('rfm.segment starts with "champ" and country contains "U"', 'rfm.segment starts with "champ" and country '
                                                                 'contains "U"'),
    ("rfm.r >= 4", "rfm.r >= 4"),
    ('city = "paris"', 'city = "paris"'),
    ('not (rfm.segment = "Lost" or country = "fr")', 'not (rfm.segment = "lost" or country = "FR")'),
])
def test_closed_set_values_are_stored_in_their_canonical_spelling(text, canonical):
    # given a rule naming values of closed sets in another case, by label or by name
    # when it is made canonical
    # then each value is the spelling stored in contacts and scores, and it still compiles
    assert canonical_text(text) == canonical
    compile_rule(canonical_rule(parse_rule(text)), CONTEXT)


@pytest.mark.parametrize(("text", "message"), [
    ('rfm.segment in ("champion")', "rfm.segment: 'champion' is not an RFM segment (champions, loyal, "
                                    "potential_loyalist, new_customers, promising, need_attention, about_to_sleep, "
                                    "at_risk, cant_lose, hibernating, lost); did you mean 'champions'?"),
    ('rfm.segment = "Cant lose them"', "did you mean 'cant_lose' (Can't lose them)?"),
    ('rfm.segment != "sleeping"', "'sleeping' is not an RFM segment (champions, "),
    ('country = "Germny"', "country: 'Germny' is not an ISO 3166-1 country code or name; did you mean 'DE' "
                           "(Germany)?"),
    ('country in ("US", "XX")', "country: 'XX' is not an ISO 3166-1 country code or name"),
    ('timezone = "Europe/Lisbin"', "timezone: 'Europe/Lisbin' is not an IANA time zone; did you mean "
                                   "'Europe/Lisbon'?"),
    ('timezone = "America/New York"', "did you mean 'America/New_York'?"),
    ('rfm.cell = "655"', "rfm.cell: '655' is not an RFM cell (three scores 1 to 5, R F M, such as '545')"),
    ("rfm.r = 6", "rfm.r: 6 is not an RFM score (a whole number from 1 to 5)"),
    ("rfm.f in (0, 1)", "rfm.f: 0 is not an RFM score"),
    ("rfm.m != 4.5", "rfm.m: 4.5 is not an RFM score"),
])
def test_a_value_outside_a_closed_set_is_refused_with_the_nearest_one(text, message):
    # given a rule comparing a closed-set field with a value that no contact can have
    rule = parse_rule(text)
    # when it is made canonical, or compiled as it is (a stored rule, a lead-score rule)
    # then both refuse it in one line naming the field, the value and what it may be
    for check in (lambda: canonical_rule(rule), lambda: compile_rule(rule, CONTEXT)):
        with pytest.raises(RuleError) as refused:
            check()
        assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_compiler_matches_the_canonical_value_of_a_rule_never_made_canonical():
    # given the same condition written with a label and with the stored value
    label, value = parse_rule('rfm.segment = "Can\'t lose them"'), parse_rule('rfm.segment = "cant_lose"')
    # when both are compiled
    compiled = [compile_rule(rule, CONTEXT).compile(dialect=sqlite.dialect()) for rule in (label, value)]
    # then they bind the same value
    assert compiled[0].params == compiled[1].params and "cant_lose" in compiled[0].params.values()


def test_values_of_another_type_are_left_to_the_type_check():
    # given a closed-set text field compared with a number
    # when compiled / then the error is the type's, not the set's
    with pytest.raises(RuleError, match="country is text"):
        compile_rule(canonical_rule(parse_rule("country = 1")), CONTEXT)


def test_event_property_conditions_are_not_fields_and_keep_their_values():
    # given a performed() whose property is named like a closed-set field
    rule = All((Performed("Order Completed", where=(Compare("country", "eq", "Narnia"),)),
                Not(Compare("country", "eq", "pt"))))
    # when made canonical / then the property condition is untouched and the field's value is canonical
    assert canonical_rule(rule) == All((rule.items[0], Not(Compare("country", "eq", "PT"))))


@pytest.mark.parametrize(("text", "message"), [
    ("orders.cnt >= 1", "orders.cnt: unknown field 'orders.cnt'; did you mean orders.count, orders.revenue, "
                        "orders.last_at? (custom data: attributes.<name>, custom_dates.<name>)"),
    ('Country = "PT"', "unknown field 'Country'; did you mean country?"),
    ("order_cnt > 1", "did you mean orders.count"),  # an alias is suggested by its field's name
    ("xyzzy = 1", "unknown field 'xyzzy'; the fields are listed in docs/segments.md (custom data: "
                  "attributes.<name>, custom_dates.<name>)"),
    ('reachable("emial")', "channel: reachable() takes one of: email, sms, whatsapp, voice, push, webpush, inapp, "
                           "not 'emial'; did you mean 'email'?"),
    ('reachable("Email")', "not 'Email'; did you mean 'email'?"),
])
def test_unknown_names_suggest_the_nearest_instead_of_listing_all(text, message):
    # given a rule naming a field or channel that does not exist
    # when compiled / then the error suggests the nearest (at most three), not all 45 fields
    with pytest.raises(RuleError) as refused:
        compile_rule(parse_rule(text), CONTEXT)
    assert message in str(refused.value)
    assert "anniversary" not in str(refused.value)


def test_an_unknown_field_suggests_at_most_three_distinct_fields():
    # given a name close to many fields / when compiled
    with pytest.raises(RuleError) as refused:
        compile_rule(parse_rule("orders.x = 1"), CONTEXT)
    # then three different fields are named
    suggested = str(refused.value).split("did you mean ")[1].split("?")[0].split(", ")
    assert len(suggested) == 3 and len(set(suggested)) == 3


@pytest.mark.parametrize(("word", "choices", "n", "expected"), [
    ("order completed", ["Order Completed", "Order Refunded", "Product Viewed"], 1, ["Order Completed"]),
    ("Ordr Completed", ["Product Viewed", "Orders Completed", "Order Completed"], 2,
     ["Order Completed", "Orders Completed"]),
    ("ORDER REFUNDED", ["Order Completed", "order refunded", "Order Refunded"], 1, ["order refunded"]),
    ("newsleter", ["newsletter", "offers"], 3, ["newsletter"]),
    ("zzz", ["newsletter", "offers"], 3, []),
    ("anything", [], 1, []),
])
def test_nearest_prefers_a_match_but_for_case_then_the_closest(word, choices, n, expected):
    # given a misspelt name and the known ones / when the nearest are asked for / then
    assert nearest(word, choices, n) == expected
