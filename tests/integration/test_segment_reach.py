"""reachable(): address, suppression and consent (topics, double opt-in, opt-out); near(): great-circle
distance, across the antimeridian and a pole; and the SQLite math functions near() needs.
"""

from __future__ import annotations

import math
import sqlite3

import pytest
from segment_world import NOW, World

from clarion.domain.consent import SuppressionReason
from clarion.domain.rules import RuleError
from clarion.segments.compiler import CompileContext, compile_rule
from clarion.segments.rule_text import parse_rule
from clarion.segments.spatial import distance_km
from clarion.store.sqlite_math import register_sqlite_math


def audience(world: World) -> None:
    """Email contacts e*, topic cases t*, phones p*, devices d*, in-app i1 (see each line)."""
    consent = world.app.consent
    consent.create_topic(world.conn, "news", "News")
    consent.create_topic(world.conn, "vip", "VIP offers", double_opt_in=True)
    for name in ("e1", "e2", "e3", "e5", "t1", "t2", "t3", "t4", "t5"):
        world.contact(name, email=f"{name}@example.com")
    for name in ("e4", "d1", "d2", "d3", "i1"):
        world.contact(name)
    world.contact("p1", phone="+351912345678")
    world.contact("p2", phone="+351912345679")
    for name in ("e1", "e2", "e4", "t1", "t2", "t5"):
        world.consent(name, "email", "opted_in")
    consent.suppress(world.conn, "email", "e2@example.com", SuppressionReason.HARD_BOUNCE)
    world.consent("e5", "email", "opted_out")
    world.consent("t1", "email", "opted_in", topic="vip", confirmed_at="2026-03-01T10:00:00Z")
    world.consent("t2", "email", "opted_in", topic="vip")  # not confirmed: pending_confirmation
    world.consent("t3", "email", "opted_out")
    world.consent("t3", "email", "opted_in", topic="news")
    world.consent("t4", "email", "opted_in", topic="news")  # no channel-level row
    world.consent("t5", "email", "opted_out", topic="news")
    for name in ("p1", "p2"):
        world.consent(name, "sms", "opted_in")
    world.consent("p1", "whatsapp", "opted_in")
    consent.suppress(world.conn, "phone", "+351912345679", SuppressionReason.COMPLAINT)
    world.device("d1", "fcm")
    world.device("d2", "apns", invalidated=True)
    world.device("d3", "webpush")
    for name in ("d1", "d2", "d3"):
        world.consent(name, "push", "opted_in")
    world.consent("d3", "webpush", "opted_in")
    world.consent("i1", "inapp", "opted_in")


def test_reachable_needs_an_address_no_suppression_and_consent(app):
    with app.store.write() as conn:
        # given
        world = World(app, conn)
        audience(world)
        # when / then
        assert world.mismatches([
            ('reachable("email")', {"e1", "t1", "t2", "t5"}),
            ('not reachable("email")', world.everyone_but("e1", "t1", "t2", "t5")),
            # a topic: its own opt-in, or the channel's opt-in when the topic has no row and is not double opt-in
            ('reachable("email", topic = "news")', {"e1", "t1", "t2", "t4"}),
            ('reachable("email", topic = "vip")', {"t1"}),
            ('reachable("email", topic = "never created")', {"e1", "t1", "t2", "t5"}),
            ('reachable("sms")', {"p1"}),
            ('reachable("whatsapp")', {"p1"}),
            ('reachable("voice")', set()),
            ('reachable("push")', {"d1"}),
            ('reachable("webpush")', {"d3"}),
            ('reachable("inapp")', {"i1"}),
        ]) == []


def test_reachable_refuses_a_channel_that_does_not_reach_the_contact():
    # given / when / then
    with pytest.raises(RuleError, match="reachable"):
        compile_rule(parse_rule('reachable("webhook")'), CompileContext(now=NOW))


LISBON, PORTO, MADRID = (38.7223, -9.1393), (41.1579, -8.6291), (40.4168, -3.7038)


def test_near_uses_the_great_circle_distance(app):
    with app.store.write() as conn:
        # given Lisbon, Porto (274 km away), Madrid (502 km), a contact without coordinates, and points
        # beside the antimeridian and the north pole
        world = World(app, conn)
        for name, (latitude, longitude) in {"lisbon": LISBON, "porto": PORTO, "madrid": MADRID,
                                            "fiji": (-18.0, 179.9), "pole": (89.9, 0.0)}.items():
            world.contact(name, latitude=latitude, longitude=longitude)
        world.contact("nowhere")
        # when / then
        assert world.mismatches([
            ("near(38.7223, -9.1393, 280 km)", {"lisbon", "porto"}),
            ("near(38.7223, -9.1393, 270 km)", {"lisbon"}),
            ("near(38.7223, -9.1393, 510 km)", {"lisbon", "porto", "madrid"}),
            ("not near(38.7223, -9.1393, 280 km)", {"madrid", "fiji", "pole", "nowhere"}),
            ("near(-18.0, -179.9, 25 km)", {"fiji"}),  # 21 km across the antimeridian
            ("near(89.9, 180.0, 25 km)", {"pole"}),  # 22 km across the pole
            ("near(0, 0, 20038 km)", world.everyone_but("nowhere")),
        ]) == []


def test_lisbon_to_porto_is_about_274_km():
    assert distance_km(*LISBON, *PORTO) == pytest.approx(274.3, abs=0.1)


def test_python_math_functions_stand_in_for_missing_sqlite_ones():
    # given a connection whose SQLite already has sin and cos, and one given Python ones
    builtin, patched = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    # when
    added = (register_sqlite_math(builtin), register_sqlite_math(patched, force=True))
    # then
    assert added == (False, True)
    assert patched.execute("SELECT sin(0.5), cos(0.5), sin(NULL)").fetchone() == (math.sin(0.5), math.cos(0.5), None)
