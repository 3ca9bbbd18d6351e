"""Purchases to model inputs: lifetimes' summary semantics, checked against the published CDNOW summary."""

import csv
from datetime import date, datetime

import numpy as np
import pytest
from cdnow_sample import cdnow_sample_purchases

from clarion.scoring.summary import summarize

CALIBRATION_END = date(1997, 9, 30)  # 1997-01-01 + 272 days: the paper's 39-week calibration period
HOLDOUT_END = date(1998, 6, 30)  # the last day of the CDNOW data, 39 weeks after the calibration end


@pytest.fixture
def published_summary(cdnow_dir) -> dict[str, np.ndarray]:
    with open(cdnow_dir / "cdnow_customers_summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {column: np.array([float(row[column]) for row in rows]) for column in ("ID", "frequency", "recency", "T")}


def test_summarising_the_cdnow_sample_reproduces_the_published_summary(cdnow_dir, published_summary):
    # given the CDNOW sample's purchases keyed by its sample id (the summary file's ID)
    purchases = cdnow_sample_purchases(cdnow_dir)
    # when they are summarised in weeks up to 30 September 1997 inclusive
    summary = summarize(purchases, observation_end=CALIBRATION_END, period_days=7.0)
    # then every customer comes out as in cdnow_customers_summary.csv: frequency exactly, recency and T
    # once rounded to the file's two decimals
    assert summary.keys.tolist() == published_summary["ID"].astype(int).tolist()
    assert np.array_equal(summary.frequency, published_summary["frequency"])
    assert np.array_equal(np.round(summary.recency, 2), published_summary["recency"])
    assert np.array_equal(np.round(summary.T, 2), published_summary["T"])


def test_the_published_summary_ends_on_30_september(cdnow_dir, published_summary):
    # given the CDNOW sample summarised up to a day earlier
    summary = summarize(cdnow_sample_purchases(cdnow_dir), observation_end=date(1997, 9, 29))
    # then every customer's T is one day (1/7 week) short of the file's, so the end date is exactly 30 September
    assert np.allclose(published_summary["T"] - summary.T, 1 / 7, atol=0.005)


def test_a_calibration_end_adds_the_holdout_period(cdnow_dir):
    # given the CDNOW sample and the paper's split: 39 calibration weeks, then 39 holdout weeks
    purchases = cdnow_sample_purchases(cdnow_dir)
    calibration = summarize(purchases, observation_end=CALIBRATION_END)
    # when it is summarised with a calibration end
    split = summarize(purchases, observation_end=HOLDOUT_END, calibration_end=CALIBRATION_END)
    # then the calibration columns are the plain summary's, and the holdout lasts 39 weeks
    assert np.array_equal(split.frequency, calibration.frequency)
    assert np.array_equal(split.T, calibration.T)
    assert np.array_equal(split.monetary_value, calibration.monetary_value)
    assert split.duration_holdout == 39.0
    assert calibration.frequency_holdout is None and calibration.duration_holdout is None


def test_same_day_purchases_are_one_purchase_worth_their_sum():
    # given a customer who buys twice on the first day, twice on a later day, and once more
    purchases = [("ana", date(2024, 1, 1), 10.0), ("ana", date(2024, 1, 1), 5.0),
                 ("ana", date(2024, 1, 8), 20.0), ("ana", date(2024, 1, 8), 4.0), ("ana", date(2024, 1, 22), 12.0)]
    # when they are summarised in weeks up to 29 January
    summary = summarize(purchases, observation_end=date(2024, 1, 29))
    # then two repeat purchase days, the last 3 weeks after the first, observed for 4 weeks, worth (24 + 12) / 2
    assert summary.keys.tolist() == ["ana"]
    assert (summary.frequency[0], summary.recency[0], summary.T[0]) == (2.0, 3.0, 4.0)
    assert summary.monetary_value[0] == 18.0


def test_one_time_buyers_have_no_repeat_value_and_later_purchases_are_ignored():
    # given a customer whose only purchase within the window is their first, and one who bought on its last day
    purchases = [("bo", date(2024, 1, 10), 30.0), ("bo", date(2024, 3, 1), 99.0),
                 ("cy", date(2024, 1, 1), 8.0), ("cy", date(2024, 1, 31), 2.0)]
    # when they are summarised in days up to 31 January
    summary = summarize(purchases, observation_end=date(2024, 1, 31), period_days=1.0)
    # then customers keep their first-seen order; bo has no repeat purchase (value 0), cy's last-day one counts
    assert summary.keys.tolist() == ["bo", "cy"]
    assert summary.frequency.tolist() == [0.0, 1.0]
    assert summary.recency.tolist() == [0.0, 30.0]
    assert summary.T.tolist() == [21.0, 30.0]
    assert summary.monetary_value.tolist() == [0.0, 2.0]


def test_holdout_counts_purchase_days_after_the_calibration_end():
    # given one customer active in both periods and one who first buys after the calibration end
    purchases = [("dee", date(2024, 1, 1), 10.0), ("dee", date(2024, 1, 15), 6.0),
                 ("dee", date(2024, 2, 5), 3.0), ("dee", date(2024, 2, 5), 1.0), ("dee", date(2024, 2, 12), 8.0),
                 ("eli", date(2024, 2, 1), 50.0)]
    # when they are summarised with calibration to 28 January and observation to 25 February
    split = summarize(purchases, observation_end=date(2024, 2, 25), calibration_end=date(2024, 1, 28))
    # then the newcomer is left out, and the holdout has two purchase days worth (4 + 8) / 2, over 4 weeks
    assert split.keys.tolist() == ["dee"]
    assert (split.frequency[0], split.recency[0], split.T[0], split.monetary_value[0]) == (1.0, 2.0, 27 / 7, 6.0)
    assert (split.frequency_holdout[0], split.monetary_value_holdout[0]) == (2.0, 6.0)
    assert split.duration_holdout == 4.0


def test_a_datetime_counts_on_its_calendar_date():
    purchases = [(1, datetime(2024, 1, 1, 9), 1.0), (1, datetime(2024, 1, 1, 18), 2.0), (1, date(2024, 1, 2), 4.0)]
    summary = summarize(purchases, observation_end=datetime(2024, 1, 2, 23, 59), period_days=1.0)
    assert (summary.frequency[0], summary.T[0], summary.monetary_value[0]) == (1.0, 1.0, 4.0)


def test_no_purchases_give_an_empty_summary():
    summary = summarize([], observation_end=date(2024, 1, 1))
    assert len(summary) == 0
    assert summary.frequency.shape == (0,)


@pytest.mark.parametrize("purchases, options, message", [
    ([], {"calibration_end": date(2024, 3, 1)}, "calibration_end is after observation_end"),
    ([], {"period_days": 0}, "period_days must be positive"),
    ([(1, "2024-01-01", 1.0)], {}, "purchase 1's date must be a date"),
    ([(1, date(2024, 1, 1), 1.0), (1, date(2024, 1, 2), float("nan"))], {}, "purchase 2 has a missing"),
])
def test_bad_input_is_rejected_with_a_reason(purchases, options, message):
    with pytest.raises(ValueError, match=message):
        summarize(purchases, observation_end=date(2024, 2, 1), **options)
