"""in_segment(): other segments inlined, cycles and runaway nesting refused; bucket(): the same bucket in
SQL on both stores and in Python, roughly uniform.
"""

from __future__ import annotations

import pytest
from segment_world import CONTEXT, NOW, World
from sqlalchemy import BigInteger, literal, select

from clarion.domain.rules import Rule, RuleError
from clarion.segments.buckets import bucket_expression, bucket_of
from clarion.segments.compiler import CompileContext, compile_rule
from clarion.segments.rule_text import parse_rule

SEGMENTS = {
    "portugal": 'country = "PT"',
    "vip_pt": 'in_segment("portugal") and attributes.vip = true',
    "loop_a": 'city = "x" and in_segment("loop_b")',
    "loop_b": 'city = "y" or in_segment("loop_a")',
    "wide": " or ".join(f'city = "c{i}"' for i in range(150)),
    **{f"chain{i}": f'in_segment("chain{i + 1}")' for i in range(9)},
    "chain9": 'country = "PT"',
}


def resolve(name: str) -> Rule:
    if name not in SEGMENTS:
        raise RuleError(f"unknown segment {name!r}", "segment")
    return parse_rule(SEGMENTS[name])


WITH_SEGMENTS = CompileContext(now=NOW, resolve_segment=resolve)


def test_in_segment_inlines_the_other_segments_rule(app):
    with app.store.write() as conn:
        # given
        world = World(app, conn)
        world.contact("ana", country="PT", attributes={"vip": True})
        world.contact("bob", country="PT")
        world.contact("cyd", country="US", attributes={"vip": True})
        # when / then
        assert world.mismatches([
            ('in_segment("portugal")', {"ana", "bob"}),
            ('in_segment("vip_pt")', {"ana"}),
            ('not in_segment("vip_pt")', {"bob", "cyd"}),
            ('in_segment("portugal") and not in_segment("vip_pt")', {"bob"}),
            ('in_segment("chain2")', {"ana", "bob"}),  # eight segments deep: chain2 .. chain9
        ], WITH_SEGMENTS) == []


@pytest.mark.parametrize(("text", "context", "message"), [
    ('in_segment("loop_a")', WITH_SEGMENTS, "cycle: loop_a -> loop_b -> loop_a"),
    ('in_segment("vip_pt")', CompileContext(now=NOW, resolve_segment=resolve, segment_name="portugal"),
     "cycle: portugal -> vip_pt -> portugal"),
    ('in_segment("chain1")', WITH_SEGMENTS, "nested more than 8"),  # nine
    ('in_segment("nope")', WITH_SEGMENTS, "unknown segment 'nope'"),
    ('in_segment("portugal")', CONTEXT, "cannot be looked up"),
    (" or ".join(['in_segment("wide")'] * 7), WITH_SEGMENTS, "more than 1,000 conditions"),
])
def test_in_segment_refuses_cycles_runaway_nesting_and_unknown_segments(text, context, message):
    # given a rule referring to other segments / when compiled / then refused, saying why
    with pytest.raises(RuleError, match=message):
        compile_rule(parse_rule(text), context)


def test_bucket_in_sql_equals_bucket_in_python(app):
    # given ids 1..10,000 and a few up to 2^40 (intermediates stay below 2^63)
    ids = select(literal(1, BigInteger).label("id")).cte("ids", recursive=True)
    ids = ids.union_all(select(ids.c.id + 1).where(ids.c.id < 10_000))
    large = [2**31 - 2, 2**31 - 1, 2**31, 2**35 + 7, 2**40 - 1]
    with app.store.read() as conn:
        # when
        in_sql = dict(conn.execute(select(ids.c.id, bucket_expression("holdout-2026", ids.c.id))).all())
        large_in_sql = [conn.execute(select(bucket_expression("holdout-2026", literal(i, BigInteger)))).scalar()
                        for i in large]
    # then
    assert in_sql == {i: bucket_of(i, "holdout-2026") for i in range(1, 10_001)}
    assert large_in_sql == [bucket_of(i, "holdout-2026") for i in large]


@pytest.mark.parametrize("salt", ["holdout-2026", "a", "split:email-subject"])
def test_buckets_are_roughly_uniform(salt):
    # given 10,000 consecutive ids / when bucketed
    counts = [0] * 100
    for contact_id in range(1, 10_001):
        counts[bucket_of(contact_id, salt)] += 1
    # then a chi-square with 99 degrees of freedom below 160 (p < 0.0001 for a uniform hash)
    chi_square = sum((count - 100) ** 2 / 100 for count in counts)
    assert chi_square < 160


def test_bucket_rules_select_the_python_buckets(app):
    with app.store.write() as conn:
        # given 30 contacts
        world = World(app, conn)
        for i in range(30):
            world.contact(f"c{i}")
        prefixed = CompileContext(now=NOW, bucket_salt_prefix="ws1:")

        def expected(test, salt="holdout"):
            return {name for name, cid in world.ids.items() if test(bucket_of(cid, salt))}
        # when / then
        assert world.mismatches([
            ('bucket("holdout") < 30', expected(lambda b: b < 30)),
            ('bucket("holdout") between 30 and 99', expected(lambda b: b >= 30)),
            ('bucket("holdout") != 5', expected(lambda b: b != 5)),
            ('bucket("holdout") >= 50', expected(lambda b: b >= 50)),
        ]) == []
        assert world.mismatches([('bucket("holdout") < 50', expected(lambda b: b < 50, "ws1:holdout"))],
                                prefixed) == []
