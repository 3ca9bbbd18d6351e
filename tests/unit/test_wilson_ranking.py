"""The intervals behind the reports, against published values, and the ranking they give."""

from __future__ import annotations

import pytest

from clarion.services.reports.intervals import difference, wilson
from clarion.services.reports.ranking import Measured, rank


@pytest.mark.parametrize(("successes", "n", "lower", "upper"), [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3 (Wilson)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_the_published_intervals(successes, n, lower, upper):
    bounds = wilson(successes, n)
    assert (round(bounds.lower, 4), round(bounds.upper, 4)) == (lower, upper)


@pytest.mark.parametrize(("a", "n_a", "b", "n_b", "lower", "upper"), [
    # Newcombe (1998), "Interval estimation for the difference between independent proportions", Table II,
    # method 10 (hybrid score)
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
])
def test_the_difference_interval_matches_newcombes_method_10(a, n_a, b, n_b, lower, upper):
    bounds = difference(a, n_a, b, n_b)
    assert (round(bounds.lower, 4), round(bounds.upper, 4)) == (lower, upper)


def test_no_recipients_no_interval():
    assert wilson(0, 0) is None and difference(1, 10, 0, 0) is None
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_twelve_with_three_clicks_does_not_top_forty_thousand_with_eight_percent():
    # given a template sent to 12 people with 3 clicks (25%) and one sent to 40,000 with 8% clicks
    rows = [Measured("small", 12, 3), Measured("big", 40_000, 3_200)]
    # when they are ranked
    ranked = rank(rows)
    # then the big one comes first, and each row says how many recipients it rests on
    assert [(row["key"], row["n"], row["ranked"]) for row in ranked] == [("big", 40_000, True), ("small", 12, False)]
    assert ranked[0]["rate"] == 0.08 and ranked[1]["rate"] == 0.25


def test_ranked_rows_follow_the_lower_bound_not_the_raw_rate():
    # given 60% of 100 (lower bound 50.2%) and 55% of 1,000 (lower bound 51.9%)
    ranked = rank([Measured("bold", 100, 60), Measured("steady", 1_000, 550)])
    # then the steady one ranks first, though its raw rate is lower
    assert [row["key"] for row in ranked] == ["steady", "bold"]
    assert ranked[0]["lower"] == pytest.approx(0.5190, abs=1e-4) and ranked[1]["lower"] == pytest.approx(0.5020,
                                                                                                          abs=1e-4)


def test_a_row_with_nothing_sent_comes_last_without_a_rate():
    ranked = rank([Measured("unsent", 0, 0), Measured("sent", 50, 1)], min_sent=1)
    assert ranked[-1] == {"key": "unsent", "campaigns": 1, "n": 0, "successes": 0, "rate": None, "lower": None,
                          "upper": None, "ranked": False}
