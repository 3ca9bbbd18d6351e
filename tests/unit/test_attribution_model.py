"""The attribution model as a pure function: goal matching, windows per touch kind, last touch by kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clarion.domain.campaigns import ConversionGoal
from clarion.services.currency import CurrencySettings
from clarion.tracking.attribution import CandidateTouch, Conversion, credit, goal_matches, longest_window

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ORDERS = ConversionGoal()  # Order Completed; 5 days after a click, 1 after an open or a delivery


def touch(kind: str, hours_before: float, *, delivery_id: int = 1, campaign_id: int = 1,
          goal: ConversionGoal = ORDERS, machine: bool = False) -> CandidateTouch:
    return CandidateTouch(delivery_id, campaign_id, "main", "email", kind, T0 - timedelta(hours=hours_before), goal,
                          machine=machine)


def order(**properties) -> Conversion:
    return Conversion(contact_id=7, at=T0, event="Order Completed", properties=properties)


def test_a_click_in_its_window_beats_a_later_open():
    # given a click four days before the order (window 5 days) and an open an hour before it
    click, opened = touch("click", 96, delivery_id=1), touch("open", 1, delivery_id=2)
    # when the order is attributed; then the click wins
    assert credit(order(), [opened, click]) == click


def test_an_open_beats_a_later_delivery_and_the_latest_of_a_kind_wins():
    # given two opens and a delivery after both
    early, late = touch("open", 20, delivery_id=1), touch("open", 5, delivery_id=2)
    delivered = touch("delivery", 1, delivery_id=3)
    # then the later open is credited
    assert credit(order(), [early, delivered, late]) == late


def test_equal_times_go_to_the_higher_delivery_id_whatever_the_order_given():
    first, second = touch("click", 3, delivery_id=4), touch("click", 3, delivery_id=9)
    assert credit(order(), [second, first]) == second
    assert credit(order(), [first, second]) == second


@pytest.mark.parametrize(("kind", "hours", "credited"), [
    ("click", 5 * 24, True),  # the window's end is included
    ("click", 5 * 24 + 0.01, False),
    ("open", 24, True),
    ("open", 25, False),
    ("delivery", 23, True),
    ("delivery", 24.5, False),
    ("click", 0, True),  # at the same moment
    ("click", -0.01, False),  # a click after the conversion did not cause it
])
def test_a_touch_counts_only_within_its_kinds_window_before_the_conversion(kind, hours, credited):
    candidate = touch(kind, hours)
    assert (credit(order(), [candidate]) == candidate) is credited


def test_a_campaigns_own_windows_apply():
    # given a campaign that credits opens for three days
    patient = ConversionGoal(open_days=3)
    candidate = touch("open", 60, goal=patient)
    # then an order 60 hours after its open is credited (the default, one day, would not)
    assert credit(order(), [candidate]) == candidate
    assert credit(order(), [touch("open", 60)]) is None


def test_machine_clicks_and_opens_are_never_touches():
    # given a scanner's click an hour before the order and a person's open two hours before
    scanner = touch("click", 1, delivery_id=1, machine=True)
    person = touch("open", 2, delivery_id=2)
    # then the person's open is credited, and without it nothing is
    assert credit(order(), [scanner, person]) == person
    assert credit(order(), [scanner]) is None


def test_only_campaigns_whose_goal_is_the_event_are_credited():
    # given a click of a campaign whose goal is a sign-up, and an older open of an order campaign
    signups = ConversionGoal(event="Signed Up")
    click = touch("click", 1, delivery_id=1, campaign_id=1, goal=signups)
    opened = touch("open", 3, delivery_id=2, campaign_id=2)
    # then the order goes to the order campaign's open, and a sign-up to the sign-up campaign
    assert credit(order(), [click, opened]) == opened
    assert credit(Conversion(7, T0, "Signed Up"), [click, opened]) == click


def test_a_goal_with_a_where_filter_matches_only_equal_properties():
    goal = ConversionGoal(where={"plan": "pro", "seats": 5, "annual": True})
    assert goal_matches(goal, "Order Completed", {"plan": "pro", "seats": 5.0, "annual": True, "other": 1})
    assert not goal_matches(goal, "Order Completed", {"plan": "pro", "seats": 5})  # annual is missing
    assert not goal_matches(goal, "Order Completed", {"plan": "Pro", "seats": 5, "annual": True})
    assert not goal_matches(goal, "Order Completed", {"plan": "pro", "seats": "5", "annual": True})
    assert not goal_matches(goal, "Order Completed", {"plan": "pro", "seats": 5, "annual": 1})
    assert not goal_matches(goal, "Signed Up", {"plan": "pro", "seats": 5, "annual": True})


def test_the_where_filter_decides_which_campaign_is_credited():
    # given a click of a "pro plan" campaign and an older click of a general one
    pro = touch("click", 1, delivery_id=1, campaign_id=1, goal=ConversionGoal(where={"plan": "pro"}))
    general = touch("click", 30, delivery_id=2, campaign_id=2)
    # then a basic order goes to the general campaign, a pro order to the pro campaign
    assert credit(order(plan="basic"), [pro, general]) == general
    assert credit(order(plan="pro"), [pro, general]) == pro


def test_two_campaigns_touches_the_last_one_wins():
    spring = touch("click", 48, delivery_id=1, campaign_id=1)
    summer = touch("click", 2, delivery_id=2, campaign_id=2)
    assert credit(order(), [spring, summer]).campaign_id == 2


def test_no_touches_no_credit():
    assert credit(order(), []) is None


def test_the_longest_window_covers_every_goal_and_kind():
    goals = [ORDERS, ConversionGoal(open_days=7)]
    assert longest_window(goals) == timedelta(days=7)
    assert longest_window(goals, "click") == timedelta(days=5)
    assert longest_window(goals, "delivery") == timedelta(days=1)
    assert longest_window([]) == timedelta(0)


def test_an_unknown_touch_kind_is_refused():
    with pytest.raises(ValueError, match="touch kind"):
        touch("view", 1)


def test_revenue_is_converted_with_the_users_rates_only():
    rates = CurrencySettings(currency="usd", rates={"eur": 1.08})
    assert rates.convert(100.0, None).amount == 100.0  # no currency: the workspace's
    assert rates.convert(100.0, "USD").amount == 100.0
    assert rates.convert(100.0, "eur").amount == pytest.approx(108.0)
    missing = rates.convert(100.0, "GBP")
    assert (missing.amount, missing.missing_rate) == (None, "GBP")
    assert rates.convert(None, "GBP").missing_rate is None  # no revenue: nothing to convert
