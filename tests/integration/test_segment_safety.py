"""What reaches SQL: user values only as bound parameters, field names only from the allow-list, operators
only where they fit the field's type, and a statement within SQLite's bound-parameter limit.
"""

from __future__ import annotations

import pytest
from segment_world import CONTEXT, NOW, World
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from clarion.domain.rules import (
    AnyOf,
    Bucket,
    Compare,
    EventMetric,
    EventTime,
    InSegment,
    Performed,
    Reachable,
    RuleError,
)
from clarion.segments.compiler import CompileContext, compile_rule, members
from clarion.segments.rule_text import parse_rule
from clarion.store.schema import contacts

HOSTILE = "x'); DROP TABLE contacts; --"
HOSTILE_RULES = [
    Compare("city", "eq", HOSTILE),
    Compare("city", "contains", HOSTILE),
    Compare("city", "starts_with", HOSTILE),
    Compare("city", "in", (HOSTILE, "Porto")),
    Compare(f"attributes.{HOSTILE}", "eq", HOSTILE),
    Compare(f"attributes.{HOSTILE}", "exists"),
    Compare(f"custom_dates.{HOSTILE}", "in_next", 3),
    Performed(HOSTILE, where=(Compare(HOSTILE, "eq", HOSTILE),), count_op="gte", count=2, within_days=3),
    EventMetric("sum", HOSTILE, HOSTILE, "gt", 1.0, 30, (Compare(HOSTILE, "ne", HOSTILE),)),
    EventTime(HOSTILE, "last", "within", 3),
    Reachable("email", topic=HOSTILE),
    InSegment(HOSTILE),
]
# A segment named x is the rule city = x (a free-text field: country takes only codes and names of countries).
SEGMENT_CONTEXT = CompileContext(now=NOW, resolve_segment=lambda name: Compare("city", "eq", name))
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.psycopg.dialect()}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("rule", HOSTILE_RULES, ids=lambda rule: type(rule).__name__)
def test_user_values_reach_sql_only_as_bound_parameters(rule, dialect):
    # given a rule carrying a hostile text as value, key, event, property, topic or segment name
    # when compiled for the store
    compiled = compile_rule(rule, SEGMENT_CONTEXT).compile(dialect=DIALECTS[dialect])
    # then the SQL text holds none of it, and a bound parameter holds it (case-folded for text comparisons)
    sql = str(compiled)
    assert HOSTILE not in sql and "DROP TABLE" not in sql.upper()
    assert any(HOSTILE.lower() in str(value).lower() for value in compiled.params.values())


def test_a_hostile_rule_runs_harmlessly(app):
    with app.store.write() as conn:
        # given a contact whose attribute key looks like an injection
        world = World(app, conn)
        world.contact("ana", city=HOSTILE, attributes={"x') OR 1=1 --": "y"})
        world.contact("bob", city="Porto")
        # when
        found = {rule: world.names.get(cid) for rule in HOSTILE_RULES[:5]
                 for cid in members(conn, rule, SEGMENT_CONTEXT)}
        injected_key = world.members("attributes.`x') OR 1=1 --` = \"Y\"")
        # then the values matched as plain data and the table is still there
        assert set(found.values()) == {"ana", "bob"} and injected_key == {"ana"}
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 2


@pytest.mark.parametrize(("rule", "message"), [
    (Compare("contacts; drop", "eq", "x"), "unknown field 'contacts; drop'"),
    (Compare("attributes.", "eq", "x"), "unknown field 'attributes.'"),
    (Compare("custom_dates", "exists"), "unknown field 'custom_dates'"),
    (Compare("Country", "eq", "PT"), "unknown field 'Country'"),
    (Compare("id", "eq", 1), "unknown field 'id'"),
    (Compare("merged_into", "exists"), "unknown field 'merged_into'"),
])
def test_field_names_come_only_from_the_allow_list(rule, message):
    with pytest.raises(RuleError, match=message):
        compile_rule(rule, CONTEXT)


@pytest.mark.parametrize(("text", "message"), [
    ("email within 3 days", "'within' does not apply to email \\(text\\); it takes: eq, ne, in"),
    ('orders.count contains "1"', "'contains' does not apply to orders.count \\(integer\\)"),
    ("country in next 3 days", "'in_next' does not apply to country"),
    ("created_at in next 3 days", "'in_next' does not apply to created_at \\(datetime\\)"),
    ('attributes.plan > "a"', "'gt' does not apply to attributes.plan \\(text\\)"),
    ("attributes.vip between true and false", "'between' does not apply to attributes.vip \\(boolean\\)"),
    ("rfm.cell = 545", "rfm.cell is text"),  # the digits are text: "545"
    ("utc_offset exists", "'exists' does not apply to utc_offset"),
    ("country = 1", "country is text"),
    ('orders.count = "2"', "orders.count is a number"),
    ('birthday before "31/01/2026"', "not an ISO date"),
    ("birthday = true", "birthday is a date"),
    ('attributes.x in (1, "a")', "mix types"),
    ("attributes.x > 3 days ago", "custom attribute"),
    ('performed("Order Completed", coupon > "a")', "'gt' does not apply to coupon"),
])
def test_operators_and_values_must_fit_the_fields_type(text, message):
    with pytest.raises(RuleError, match=message):
        compile_rule(parse_rule(text), CONTEXT)


def test_long_lists_cost_one_bound_parameter_each(app):
    # given 200 conditions of 1,000 values each: 200,000 values, far above SQLite's 32,766 parameters
    rule = AnyOf(tuple(Compare("attributes.n", "in", tuple(range(i * 1000, i * 1000 + 1000))) for i in range(200)))
    wide = AnyOf((rule, Compare("utc_offset", "in", (1, 2)), Bucket("s", "lt", 0)))
    with app.store.write() as conn:
        world = World(app, conn)
        world.contact("ana", attributes={"n": 150_500})
        world.contact("bob", attributes={"n": 200_000})
        # when
        compiled = compile_rule(wide, CONTEXT).compile(dialect=DIALECTS[conn.dialect.name])
        found = {world.names[cid] for cid in members(conn, wide, CONTEXT)}
    # then
    assert len(compiled.params) < 1_000 and found == {"ana"}
