"""Behaviour conditions: performed (counts, windows, property filters), first/last performed, event
metrics and engagement. Given events at day offsets from NOW, when each rule runs, then exactly these members.
"""

from __future__ import annotations

import pytest
from segment_world import World


def shoppers(world: World) -> None:
    for name in ("ana", "bob", "cyd", "dee"):
        world.contact(name)
    world.event("ana", "Order Completed", 40, revenue=30, coupon="SPRING")
    world.event("ana", "Order Completed", 5, revenue=50)
    world.event("ana", "Order Completed", 1, revenue=10, coupon="spring")
    world.event("ana", "Product Viewed", 2, sku="A", price=12.5)
    world.event("bob", "Order Completed", 100, revenue=20)
    for days in (1, 2, 60):
        world.event("bob", "Product Viewed", days, sku="B", price="cheap")  # a price that is not a number
    world.event("cyd", "Signed Up", 10)
    world.event("cyd", "Product Viewed", 20, sku="C", price=100)


PERFORMED = [
    ('performed("Order Completed")', {"ana", "bob"}),
    ('performed("order completed")', set()),  # event names match exactly
    ('not performed("Order Completed")', {"cyd", "dee"}),
    ('performed("Order Completed") >= 3 times', {"ana"}),
    ('performed("Order Completed") > 1 times', {"ana"}),
    ('performed("Order Completed") = 1 times', {"bob"}),
    ('performed("Order Completed") = 0 times', {"cyd", "dee"}),
    ('performed("Order Completed") <= 1 times', {"bob", "cyd", "dee"}),
    ('performed("Order Completed") < 3 times', {"bob", "cyd", "dee"}),
    ('performed("Order Completed") >= 0 times', {"ana", "bob", "cyd", "dee"}),
    ('performed("Order Completed") within 30 days', {"ana"}),
    ('performed("Order Completed") >= 2 times within 30 days', {"ana"}),
    ('performed("Order Completed") = 0 times within 30 days', {"bob", "cyd", "dee"}),
    ('performed("Order Completed") <= 1 times within 45 days', {"bob", "cyd", "dee"}),
    ('performed("Product Viewed") >= 3 times within 36500 days', {"bob"}),  # the events path = the stats path
    ('performed("Product Viewed") >= 3 times', {"bob"}),
    ('performed("Order Completed", revenue > 25)', {"ana"}),
    ('performed("Order Completed", revenue >= 20) >= 2 times', {"ana"}),
    ('performed("Order Completed", revenue > 25) within 10 days', {"ana"}),
    ('performed("Order Completed", revenue > 25) = 0 times', {"bob", "cyd", "dee"}),
    ('performed("Order Completed", coupon = "SPRING") = 2 times', {"ana"}),  # property text ignores case
    ('performed("Order Completed", coupon exists)', {"ana"}),
    ('performed("Order Completed", coupon not exists)', {"ana", "bob"}),
    ('performed("Order Completed", coupon != "spring")', {"ana", "bob"}),
    ('performed("Product Viewed", price > 10)', {"ana", "cyd"}),  # bob's "cheap" is not a number
    ('performed("Product Viewed", sku in ("a", "b")) >= 3 times', {"bob"}),
    ('performed("Product Viewed", price between 10 and 20, sku = "a")', {"ana"}),
]

EVENT_TIMES = [
    ('last_performed("Order Completed") within 3 days', {"ana"}),
    ('last_performed("Order Completed") not within 3 days', {"bob", "cyd", "dee"}),
    ('not last_performed("Order Completed") within 3 days', {"bob", "cyd", "dee"}),
    ('first_performed("Order Completed") before 50 days ago', {"bob"}),
    ('first_performed("Order Completed") after 50 days ago', {"ana"}),
    ('first_performed("Order Completed") after "2026-01-01"', {"ana"}),
    ('last_performed("Signed Up") before "2026-03-06"', {"cyd"}),  # 5 March, 12:00
    ('last_performed("Signed Up") after "2026-03-05"', set()),  # after that day, not on it
    ('not first_performed("Order Completed") before 50 days ago', {"ana", "cyd", "dee"}),
]

METRICS = [
    ('sum("Order Completed", revenue) > 50', {"ana"}),
    ('sum("Order Completed", revenue) < 50', {"bob"}),  # only contacts with orders
    ('not sum("Order Completed", revenue) >= 50', {"bob", "cyd", "dee"}),
    ('sum("Order Completed", revenue) != 90', {"bob"}),
    ('avg("Order Completed", revenue) = 30', {"ana"}),
    ('min("Order Completed", revenue) between 10 and 20', {"ana", "bob"}),
    ('max("Order Completed", revenue) >= 50 within 10 days', {"ana"}),
    ('max("Order Completed", revenue) >= 50 within 3 days', set()),
    ('sum("Order Completed", revenue, coupon exists) = 40', {"ana"}),
    ('max("Product Viewed", price) > 50', {"cyd"}),
    ('sum("Product Viewed", price) > 0', {"ana", "cyd"}),  # bob's prices are text: no numeric value
]


@pytest.mark.parametrize("table", ["performed", "event times", "metrics"])
def test_behaviour_conditions_match_exactly_the_expected_contacts(app, table):
    cases = {"performed": PERFORMED, "event times": EVENT_TIMES, "metrics": METRICS}[table]
    with app.store.write() as conn:
        # given
        world = World(app, conn)
        shoppers(world)
        # when / then
        assert world.mismatches(cases) == []


def test_order_revenue_reads_the_revenue_column_filled_from_total(app):
    with app.store.write() as conn:
        # given an order that sends only a total, and one with products
        world = World(app, conn)
        world.contact("ana")
        world.contact("bob")
        world.event("ana", "Order Completed", 1, total=70)
        world.event("bob", "Order Completed", 1, products=[{"price": 5, "quantity": 2}])
        # when / then
        assert world.mismatches([
            ('performed("Order Completed", revenue > 60)', {"ana"}),
            ('sum("Order Completed", revenue) = 10', {"bob"}),
            ('performed("Order Completed", total > 60)', {"ana"}),  # other properties read the JSON
        ]) == []


def test_engagement_counts_like_performed(app):
    with app.store.write() as conn:
        # given ana received, opened and clicked campaign 1 and received campaign 2; bob received campaign 1;
        # cyd opened campaign 2 long ago
        world = World(app, conn)
        for name in ("ana", "bob", "cyd", "dee"):
            world.contact(name)
        for action, days in (("received", 10), ("opened", 9), ("clicked", 9)):
            world.engagement("ana", action, days, campaign=1)
        world.engagement("ana", "received", 2, campaign=2)
        world.engagement("bob", "received", 10, campaign=1)
        world.engagement("cyd", "received", 40, campaign=2)
        world.engagement("cyd", "opened", 40, campaign=2)
        # when / then
        assert world.mismatches([
            ("opened()", {"ana", "cyd"}),
            ("received() >= 2 times", {"ana"}),
            ("received() within 30 days", {"ana", "bob"}),
            ("received(campaign = 1)", {"ana", "bob"}),
            ("opened(campaign = 1) = 0 times", {"bob", "cyd", "dee"}),
            ("opened() within 30 days", {"ana"}),
            ("clicked() = 0 times within 30 days", {"bob", "cyd", "dee"}),
            ("received(campaign = 2) within 5 days", {"ana"}),
            ("converted()", set()),
            ("not converted()", {"ana", "bob", "cyd", "dee"}),
        ]) == []
